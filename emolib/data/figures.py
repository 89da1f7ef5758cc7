"""What notebook 01 shows about the data: distributions, samples, duplicate pairs, FER vs FER+,
Emotion6's valence, arousal and vote entropy."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from emolib.data.imageset import ImageSet
from emolib.labels import get_label_set


def class_distribution(*image_sets: ImageSet) -> pd.DataFrame:
    """Long table: dataset, split, label, count, share within the split."""
    frames = []
    for s in image_sets:
        counts = s.class_counts().drop(columns="total").stack().rename("count").reset_index()
        counts.insert(0, "dataset", s.name)
        counts["share"] = counts["count"] / counts.groupby("split")["count"].transform("sum")
        frames.append(counts.rename(columns={"label_name": "label"}))
    return pd.concat(frames, ignore_index=True)


def plot_class_distribution(distribution: pd.DataFrame, ncols: int = 3) -> plt.Figure:
    """One panel per data set of ``distribution`` (``class_distribution``): images per class,
    coloured by split where a set has several; panels as wide as their number of classes."""
    datasets = list(dict.fromkeys(distribution["dataset"]))
    ncols = min(ncols, len(datasets))
    nrows = -(-len(datasets) // ncols)
    widths = [distribution.loc[distribution["dataset"] == d, "label"].nunique() for d in datasets]
    ratios = widths if nrows == 1 else None  # rows of panels share one column layout
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(6.5, 0.6 * sum(widths[:ncols]) + 2 * ncols), 4 * nrows),
                             width_ratios=ratios, squeeze=False)
    for ax in axes.flat[len(datasets):]:
        ax.axis("off")
    for ax, dataset in zip(axes.flat, datasets, strict=False):
        part = distribution[distribution["dataset"] == dataset]
        several = part["split"].nunique() > 1
        sns.barplot(part, x="label", y="count", hue="split" if several else None, ax=ax)
        ax.set(title=f"{dataset}: images per class" + (" and split" if several else ""), xlabel="", ylabel="images")
        ax.tick_params(axis="x", rotation=30)
    return fig


def sample_per_class(image_set: ImageSet, per_class: int, seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """``per_class`` random images of each class (label-set order) and their titles."""
    rng = np.random.default_rng(seed)
    images, titles = [], []
    for label, name in enumerate(image_set.label_set.names):
        rows = np.flatnonzero(image_set.labels == label)
        for i in rng.choice(rows, size=min(per_class, len(rows)), replace=False):
            images.append(image_set.image(int(i)))
            titles.append(name)
    return images, titles


def cross_split_examples(audit: dict[str, pd.DataFrame], image_set: ImageSet, n: int = 6,
                         seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """Pairs of duplicates where one image is in train and the other in a test split:
    exact pairs first, then near ones; images in pair order, with split/label titles."""
    rng = np.random.default_rng(seed)
    exact = audit["exact"]
    pairs = []
    for _, group in exact.groupby("group"):
        train, test = group[group["split"] == "train"], group[group["split"] != "train"]
        if len(train) and len(test):
            pairs.append((int(train["index"].iloc[0]), int(test["index"].iloc[0]), "exact"))
    near = audit["near"]
    if len(near):
        cross = near[(near["split_i"] == "train") != (near["split_j"] == "train")]
        pairs += [(int(r.i), int(r.j), f"pHash d={int(r.distance)}") for r in cross.itertuples()]
    exact_pairs = [p for p in pairs if p[2] == "exact"]
    near_pairs = [p for p in pairs if p[2] != "exact"]
    chosen = []
    for pool, k in ((exact_pairs, n // 2), (near_pairs, n - n // 2)):
        idx = rng.choice(len(pool), size=min(k, len(pool)), replace=False) if pool else []
        chosen += [pool[i] for i in idx]
    names = image_set.label_set.names
    images, titles = [], []
    for i, j, kind in chosen:
        for k in (i, j):
            images.append(image_set.image(k))
            titles.append(f"{image_set.splits[k]}\n{names[image_set.labels[k]]} ({kind})")
    return images, titles


def fer_vs_ferplus(faces: ImageSet) -> pd.DataFrame:
    """Crosstab of FER-2013 labels (rows) against FER+ majority labels (columns, 'none' when
    FER+ has no label); empty if FER+ votes are not attached."""
    if faces.meta is None or "ferplus_label" not in faces.meta:
        return pd.DataFrame()
    plus = get_label_set("ferplus8").names + ("none",)
    ferplus = np.array(plus, dtype=object)[faces.meta["ferplus_label"].to_numpy()]
    # FER+ columns in FER-7 order (matching emotions on the diagonal), then contempt, none
    order = [plus[get_label_set("ferplus8").index(n)] for n in faces.label_set.names] + ["contempt", "none"]
    table = pd.crosstab(pd.Categorical(faces.label_names, faces.label_set.names),
                        pd.Categorical(ferplus, order), dropna=False)
    table.index.name, table.columns.name = "FER-2013", "FER+ majority"
    return table


def ferplus_agreement(faces: ImageSet) -> float:
    """Share of images with a FER+ label whose FER+ majority names the same emotion."""
    if faces.meta is None or "ferplus_label" not in faces.meta:
        return float("nan")
    fer7, plus = faces.label_set, get_label_set("ferplus8")
    labelled = faces.meta["ferplus_label"].to_numpy() >= 0
    mapped = np.array([plus.index(n) for n in fer7.names])[faces.labels]
    return float((mapped[labelled] == faces.meta["ferplus_label"].to_numpy()[labelled]).mean())


def label_entropy(soft_labels: np.ndarray) -> np.ndarray:
    """(n,) Shannon entropy in bits of each vote distribution (rows of ``soft_labels``)."""
    p = np.asarray(soft_labels, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, -p * np.log2(p), 0.0)
    return terms.sum(axis=1)


def evoked_frame(evoked: ImageSet) -> pd.DataFrame:
    """Per image: label, valence, arousal, vote entropy and the share of votes for its label."""
    frame = evoked.to_frame()
    frame["entropy_bits"] = label_entropy(evoked.soft_labels)
    columns = list(evoked.soft_label_names)
    own = [columns.index(n) for n in evoked.label_names]
    frame["own_label_share"] = evoked.soft_labels[np.arange(len(evoked)), own]
    return frame


def plot_valence_arousal(evoked_table: pd.DataFrame) -> plt.Figure:
    """Emotion6 per image (``evoked_frame``): valence against arousal (left) and the entropy of
    the votes per class (right), with one legend of the classes outside both panels (inside,
    it would hide points)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    order = sorted(evoked_table["label_name"].unique())
    sns.scatterplot(evoked_table, x="valence", y="arousal", hue="label_name", hue_order=order, s=14, alpha=0.7,
                    ax=axes[0], legend=False)
    sns.histplot(evoked_table, x="entropy_bits", hue="label_name", hue_order=order, element="step", fill=False,
                 ax=axes[1])
    sns.move_legend(axes[1], "upper left", bbox_to_anchor=(1.01, 1), title="class", frameon=False)
    axes[0].set(title="valence against arousal (1-9)", xlabel="valence", ylabel="arousal")
    axes[1].set(title="disagreement: entropy of the votes", xlabel="entropy (bits)", ylabel="images")
    fig.tight_layout()
    return fig
