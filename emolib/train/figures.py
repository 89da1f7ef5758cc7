"""Figures of notebook 03: learning curves and a row of confusion matrices."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from emolib.plots import plot_confusion


def plot_learning_curves(curves: pd.DataFrame) -> plt.Figure:
    """Loss (left) and accuracy (right) per epoch; one colour per model, solid = train,
    dashed = PublicTest (model selection). curves: output of ``stage.learning_curves``."""
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 3.8))
    for (model, seed), group in curves.groupby(["model", "seed"], sort=False):
        label = f"{model} s{seed}"
        line = ax_loss.plot(group["epoch"], group["train_loss"], marker="o", label=f"{label} train")[0]
        ax_loss.plot(group["epoch"], group["val_loss"], ls="--", marker="o", color=line.get_color(),
                     label=f"{label} val")
        ax_acc.plot(group["epoch"], group["train_acc"], marker="o", color=line.get_color())
        ax_acc.plot(group["epoch"], group["val_acc"], ls="--", marker="o", color=line.get_color())
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="accuracy (dashed: PublicTest)")
    ax_loss.legend(fontsize=7)
    fig.tight_layout()
    return fig


def plot_confusions(matrices: dict[str, np.ndarray], class_names: tuple[str, ...]) -> plt.Figure:
    """One normalised confusion matrix per entry of ``matrices`` (title -> (k, k+1) counts)."""
    fig, axes = plt.subplots(1, len(matrices), figsize=(5.2 * len(matrices), 4.4), squeeze=False)
    for ax, (title, cm) in zip(axes[0], matrices.items(), strict=True):
        plot_confusion(cm[:, : len(class_names)], class_names, ax=ax, title=title)
    fig.tight_layout()
    return fig
