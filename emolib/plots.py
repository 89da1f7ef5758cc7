"""One house style for every figure, and the plots more than one notebook draws.

Figures are saved as ``figures/<profile>/fig_NN_<what>.png``. The Agg backend is chosen
only when no display backend was set (notebooks keep their inline backend).
"""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

_INTERACTIVE = ("module://", "nbagg", "widget")
if "MPLBACKEND" not in os.environ and not matplotlib.get_backend().lower().startswith(_INTERACTIVE):
    matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import seaborn as sns  # noqa: E402

from emolib.paths import figures_dir  # noqa: E402


def use_house_style() -> None:
    """Seaborn whitegrid, colour-blind palette, readable sizes, 150 dpi."""
    sns.set_theme(style="whitegrid", palette="colorblind", context="notebook")
    plt.rcParams.update({"figure.dpi": 110, "savefig.dpi": 150, "savefig.bbox": "tight",
                         "axes.titleweight": "bold"})


def save_figure(fig: plt.Figure, profile: str, name: str) -> Path:
    """Write ``fig`` to ``figures/<profile>/<name>.png`` and return the path."""
    path = figures_dir(profile) / (name if name.endswith(".png") else f"{name}.png")
    fig.savefig(path)
    return path


def show_figure(fig: plt.Figure, profile: str, name: str, caption: str) -> None:
    """Save ``fig`` (``save_figure``), show it inline with ``caption`` (what to look for) in a
    notebook, and close it so it is not drawn twice."""
    from IPython.display import Markdown, display

    save_figure(fig, profile, name)
    display(fig)
    plt.close(fig)
    display(Markdown(f"*{caption}*"))


def plot_confusion(cm: np.ndarray, class_names: list[str] | tuple[str, ...], ax: plt.Axes | None = None,
                   normalize: bool = True, title: str = "", pred_names: list[str] | None = None,
                   xlabel: str = "predicted", ylabel: str = "true") -> plt.Axes:
    """Heatmap of a confusion matrix (rows true, columns predicted); rows sum to 1 if normalised."""
    ax = ax or plt.subplots(figsize=(5.5, 4.5))[1]
    cm = np.asarray(cm, dtype=float)
    if normalize:
        cm = cm / np.clip(cm.sum(axis=1, keepdims=True), 1, None)
    columns = pred_names or list(class_names)[: cm.shape[1]] + ["none"] * (cm.shape[1] - len(class_names))
    sns.heatmap(cm, annot=True, fmt=".2f" if normalize else ".0f", cmap="Blues", cbar=False,
                xticklabels=columns,
                yticklabels=list(class_names), ax=ax, vmin=0, vmax=1 if normalize else None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    return ax


def plot_image_grid(images: list[np.ndarray], titles: list[str] | None = None, ncols: int = 8,
                    size: float = 1.3, suptitle: str = "") -> plt.Figure:
    """Images (gray or RGB uint8) in a grid with optional titles."""
    nrows = max(1, int(np.ceil(len(images) / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, nrows * size * 1.15), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, img) in enumerate(zip(axes.flat, images, strict=False)):
        ax.imshow(img, cmap="gray" if img.ndim == 2 else None, vmin=0, vmax=255)
        if titles:
            ax.set_title(titles[i], fontsize=8)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout()
    return fig
