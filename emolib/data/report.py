"""What notebook 01 shows about the data: distributions, samples, audit, FER vs FER+, Emotion6."""

from __future__ import annotations

import numpy as np
import pandas as pd

from emolib.config import Profile
from emolib.cost import CostRecorder
from emolib.data.audit import (
    audit_summary,
    find_exact_duplicates,
    find_near_duplicates,
    leakage_free_mask,
    near_duplicate_pairs,
    perceptual_hashes,
    summarize_groups,
)
from emolib.data.imageset import ImageSet
from emolib.labels import get_label_set
from emolib.store import StageStore, write_parquet


def class_distribution(*image_sets: ImageSet) -> pd.DataFrame:
    """Long table: dataset, split, label, count, share within the split."""
    frames = []
    for s in image_sets:
        counts = s.class_counts().drop(columns="total").stack().rename("count").reset_index()
        counts.insert(0, "dataset", s.name)
        counts["share"] = counts["count"] / counts.groupby("split")["count"].transform("sum")
        frames.append(counts.rename(columns={"label_name": "label"}))
    return pd.concat(frames, ignore_index=True)


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


def data_store(profile: Profile) -> StageStore:
    return StageStore(profile, "data", profile.data, profile.seed)


def run_audit(profile: Profile, image_set: ImageSet) -> dict[str, pd.DataFrame]:
    """Exact and near-duplicate audit, cached in the data stage folder.

    Returns ``summary`` (check, count), ``groups`` (per exact duplicate group), ``exact``
    (rows of duplicated images), ``near`` (near-duplicate pairs) and ``leakage``
    (image_id, split, keep_exact, keep_near: the leakage-free split masks).
    """
    store = data_store(profile)
    names = ("summary", "groups", "exact", "near", "leakage")
    if store.is_complete() and all(store.path(f"audit_{n}.parquet").is_file() for n in names):
        return {n: pd.read_parquet(store.path(f"audit_{n}.parquet")) for n in names}
    recorder = CostRecorder(store.dir, "data", profile.cost.sample_interval_s)
    threshold = profile.data.phash_threshold if profile.data.near_duplicates else None
    with recorder.phase("preprocess", model="audit", items=len(image_set)):
        exact = find_exact_duplicates(image_set)
        hashes = perceptual_hashes(image_set) if threshold is not None else None
        pairs = near_duplicate_pairs(hashes, threshold) if threshold is not None else None
        out = {
            "summary": audit_summary(image_set, threshold, hashes),
            "groups": summarize_groups(exact).reset_index(),
            "exact": exact,
            "near": find_near_duplicates(image_set, threshold, pairs) if threshold is not None
            else pd.DataFrame(columns=["i", "j", "distance"]),
            "leakage": pd.DataFrame({
                "image_id": image_set.ids, "split": image_set.splits,
                "keep_exact": leakage_free_mask(image_set),
                "keep_near": leakage_free_mask(image_set, threshold, pairs) if threshold is not None
                else leakage_free_mask(image_set),
            }),
        }
    for name, frame in out.items():
        text_columns = {c: str for c in frame.columns if frame[c].dtype == object}
        write_parquet(store.path(f"audit_{name}.parquet"), frame.astype(text_columns))
    store.write_meta(n_images=len(image_set))
    return out


def leakage_table(leakage: pd.DataFrame) -> pd.DataFrame:
    """Images per split in the standard and the two leakage-free versions of each split."""
    table = leakage.groupby("split").agg(
        standard=("image_id", "size"), leakage_free_exact=("keep_exact", "sum"),
        leakage_free_near=("keep_near", "sum"),
    )
    return table.reset_index()


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
