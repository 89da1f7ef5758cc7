"""Stratified, seeded subsets of an ImageSet."""

from __future__ import annotations

import numpy as np

from emolib.data.imageset import ImageSet


def stratified_indices(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Sorted positions of ``n`` items whose class shares follow ``labels``'s shares.

    Each class gets ``round(n * share)`` items (largest remainders fix the total), at least
    one if it is present and ``n`` allows, never more than it has. Same seed, same subset.
    """
    labels = np.asarray(labels)
    if n >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    exact = n * counts / counts.sum()
    take = np.minimum(np.maximum(np.floor(exact).astype(int), 1 if n >= len(classes) else 0), counts)
    order = np.argsort(-(exact - np.floor(exact)))
    i = 0
    while take.sum() < n:
        c = order[i % len(order)]
        if take[c] < counts[c]:
            take[c] += 1
        i += 1
    while take.sum() > n:
        c = np.argmax(take - exact)
        take[c] -= 1
    picked = [rng.choice(np.flatnonzero(labels == c), size=k, replace=False)
              for c, k in zip(classes, take, strict=True)]
    return np.sort(np.concatenate(picked))


def stratified_subsample(image_set: ImageSet, sizes: dict[str, int | None], seed: int = 0) -> ImageSet:
    """Per split, keep ``sizes[split]`` images drawn stratified by class (None: keep all)."""
    keep = []
    for split in np.unique(image_set.splits):
        rows = np.flatnonzero(image_set.splits == split)
        n = sizes.get(split)
        chosen = rows if n is None else rows[stratified_indices(image_set.labels[rows], n, seed)]
        keep.append(chosen)
    return image_set.subset(np.sort(np.concatenate(keep)))
