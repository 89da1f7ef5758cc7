"""What notebook 02 shows: preview grids per class, image statistics per backend."""

from __future__ import annotations

import numpy as np
import pandas as pd

from emolib.data import ImageSet
from emolib.restore.stats import image_stats


def preview_grid(sets: dict[str, ImageSet], label: int) -> tuple[list[np.ndarray], list[str]]:
    """Images and titles for one class: one row per backend (in ``sets`` order), one column
    per face of that class (the same faces in every row). For ``plot_image_grid`` with
    ``ncols`` = faces per class."""
    images, titles = [], []
    for backend, image_set in sets.items():
        for j, i in enumerate(np.flatnonzero(image_set.labels == label)):
            img = image_set.image(int(i))
            images.append(img)
            titles.append(f"{backend} {img.shape[0]}px" if j == 0 else "")
    return images, titles


def comparison_grid(sets: dict[str, ImageSet]) -> tuple[list[np.ndarray], list[str], int]:
    """One grid for every backend: a row per backend (in ``sets`` order), a column per class
    (the first preview face of that class, the same face in every row). Returns images,
    titles and the number of columns, for ``plot_image_grid``."""
    first = next(iter(sets.values()))
    names = first.label_set.names
    picks = [int(np.flatnonzero(first.labels == c)[0]) for c in range(len(names)) if (first.labels == c).any()]
    images, titles = [], []
    for backend, image_set in sets.items():
        for j, i in enumerate(picks):
            img = image_set.image(i)
            images.append(img)
            name = names[first.labels[i]]
            titles.append(f"{backend} ({img.shape[0]} px)\n{name}" if j == 0 else name)
    return images, titles, len(picks)


def stats_by_backend(sets: dict[str, ImageSet]) -> pd.DataFrame:
    """One row per (backend, image): backend, image_id, label_name, size, sharpness,
    contrast, mean (see ``emolib.restore.stats``)."""
    frames = []
    for backend, image_set in sets.items():
        stats = image_stats(image_set.images())
        stats.insert(0, "label_name", image_set.label_names)
        stats.insert(0, "image_id", image_set.ids)
        stats.insert(0, "backend", backend)
        frames.append(stats)
    return pd.concat(frames, ignore_index=True)


def summarize_stats(stats: pd.DataFrame, reference: str = "bicubic") -> pd.DataFrame:
    """Per backend: images, size, median sharpness and contrast, and the median over images
    of each image's sharpness relative to the same image under ``reference`` (NaN where
    the sizes differ: the Laplacian variance depends on the size)."""
    table = stats.groupby("backend", sort=False).agg(
        images=("image_id", "size"), size=("size", "first"),
        sharpness_median=("sharpness", "median"), contrast_median=("contrast", "median"))
    if reference in set(stats["backend"]):
        ref = stats[stats["backend"] == reference].set_index("image_id")
        ratio = stats["sharpness"] / stats["image_id"].map(ref["sharpness"]).replace(0, np.nan)
        ratio = ratio.where(stats["size"] == stats["image_id"].map(ref["size"]))  # same size only
        table[f"sharpness_vs_{reference}"] = ratio.groupby(stats["backend"], sort=False).median()
    return table.reset_index()
