"""What notebook 04 draws: CNNs and VLMs side by side, and their confusion matrices."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from emolib.labels import get_label_set
from emolib.metrics import confusion
from emolib.plots import colors_for, plot_confusion
from emolib.vlm.compare import who_labels
from emolib.vlm.scores import note_of


def plot_head_to_head(scores: pd.DataFrame, ax: plt.Axes | None = None) -> plt.Axes:
    """Horizontal bars of accuracy with 95% CIs, one per (backend, model, prompt, and seed where
    a model has several: ``compare.who_labels``); ValueError if two rows would share a bar."""
    ax = ax or plt.subplots(figsize=(8, 0.45 * max(len(scores), 2) + 1))[1]
    table = scores.sort_values("accuracy").reset_index(drop=True)
    names = [w + (f" [{p}]" if p not in ("-", "default") else "") + (" *random*" if n else "")
             for w, p, n in zip(who_labels(table), table["prompt"], table["note"], strict=True)]
    if len(set(names)) < len(names):
        raise ValueError(f"several rows per bar among {sorted(names)}: one score row per configuration")
    err = np.vstack([table["accuracy"] - table["accuracy_lo"], table["accuracy_hi"] - table["accuracy"]])
    ax.barh(names, table["accuracy"], xerr=err, color=colors_for(table["backend"]), capsize=3)
    ax.set_xlabel("accuracy (95% bootstrap CI)")
    ax.set_xlim(0, 1)
    return ax


def plot_confusions(predictions: pd.DataFrame, max_panels: int = 32) -> plt.Figure:
    """Row-normalised confusion matrix (last column: no answer) per configuration."""
    keys = ["backend", "model", "dataset", "restoration", "subset"]
    groups = list(predictions.groupby(keys, sort=False))[:max_panels]
    cols = min(4, max(len(groups), 1))
    rows = int(np.ceil(max(len(groups), 1) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4.8 * rows), squeeze=False)
    for ax, ((backend, model, _dataset, restoration, subset), group) in zip(axes.flat, groups, strict=False):
        labels = get_label_set(group["label_set"].iloc[0])
        cm = confusion(group["y_true"].to_numpy(), group["y_pred"].to_numpy(), len(labels))
        flag = " (random weights)" if note_of(backend, model) else ""
        title = f"{backend}:{model}{flag}\n{subset}, restoration {restoration}"
        plot_confusion(cm, labels.names, ax=ax, title=title[:90])
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def plot_versus(scores: pd.DataFrame, per_class: pd.DataFrame) -> plt.Figure:
    """CNNs and GPT-4V on the same FER+ faces: accuracy (95% CI) and soft accuracy per model
    (left), F1 per FER+ class and model (right); one bar per seed where a model has several
    (``compare.who_labels``). ``scores`` from ``compare.score_versus``, ``per_class`` from
    ``compare.per_class_versus``."""
    names = who_labels(scores)
    if names.duplicated().any():
        raise ValueError(f"several score rows per bar {sorted(set(names[names.duplicated()]))}: give each "
                         "seed its own row (compare.score_versus)")
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 0.5 * len(scores) + 3.5), width_ratios=[1, 2])
    y = np.arange(len(scores))
    err = np.vstack([scores["accuracy"] - scores["accuracy_lo"], scores["accuracy_hi"] - scores["accuracy"]])
    left.barh(y - 0.2, scores["accuracy"], 0.4, xerr=err, capsize=3, label="accuracy (95% CI)")
    left.barh(y + 0.2, scores["soft_accuracy"], 0.4, label="share of annotators agreeing")
    left.set(yticks=y, yticklabels=names, xlim=(0, 1), xlabel="FER+ plurality as truth")
    left.legend(loc="lower left", bbox_to_anchor=(0, 1.01), fontsize=8, frameon=False)  # above: bars fill the axes
    table = per_class.assign(who=who_labels(per_class))
    wide = table.pivot(index="class", columns="who", values="f1")  # a repeated (class, bar) is a ValueError
    wide = wide.loc[list(dict.fromkeys(table["class"])), list(dict.fromkeys(table["who"]))]
    wide.plot.bar(ax=right, width=0.8)
    right.set(ylabel="F1", xlabel="", ylim=(0, 1), title="F1 per FER+ class")
    right.tick_params(axis="x", rotation=0)
    right.legend(fontsize=8, title="", loc="upper left", bbox_to_anchor=(1.01, 1))  # outside: never over a bar
    fig.tight_layout()
    return fig
