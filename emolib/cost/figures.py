"""What notebook 06 draws: accuracy against cost, and inference time against images."""

from __future__ import annotations

import numpy as np
import pandas as pd


def plot_pareto(frame: pd.DataFrame, cost_col: str, front_col: str, ax, xlabel: str) -> None:
    """Accuracy against ``cost_col`` (log x), one point per row labelled by model; the
    Pareto front drawn as a step line. ``frame`` as from ``accuracy_vs_cost``."""
    shown = frame.dropna(subset=[cost_col, "accuracy"])
    if shown.empty:
        ax.text(0.5, 0.5, "no model has both accuracy and cost yet", ha="center",
                transform=ax.transAxes)
        ax.set_xlabel(xlabel)
        return
    for backend, group in shown.groupby("backend"):
        ax.scatter(group[cost_col], group["accuracy"], label=backend, s=40)
    for _, row in shown.iterrows():
        name = row["model"] if row["backend"] == "cnn" else f"{row['backend']}:{row['model']}"
        ax.annotate(name, (row[cost_col], row["accuracy"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    front = shown[shown[front_col]].sort_values(cost_col)
    ax.step(front[cost_col], front["accuracy"], where="post", color="grey", lw=1, ls="--")
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy")
    ax.legend(fontsize=8)


def plot_scaling(measured: pd.DataFrame, fits: pd.DataFrame, ax, time_col: str = "wall_s") -> None:
    """Measured ``time_col`` against images per model (all repeats) with the fitted lines."""
    if measured.empty:
        ax.text(0.5, 0.5, "no model could be timed", ha="center", transform=ax.transAxes)
        return
    fit_of = fits.set_index("model")
    for model, group in measured.groupby("model", sort=False):
        points = ax.scatter(group["n_images"], group[time_col], s=18, label=model)
        if model in fit_of.index and pd.notna(fit_of.loc[model, "per_image_s"]):
            n = np.linspace(0, group["n_images"].max(), 50)
            f = fit_of.loc[model]
            ax.plot(n, f["overhead_s"] + f["per_image_s"] * n, color=points.get_facecolor()[0])
    ax.set_xlabel("images")
    ax.set_ylabel(f"{time_col.replace('_s', '')} time (s)")
    ax.legend(fontsize=8)
