"""Simple image statistics for before/after comparisons: sharpness and contrast."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
import pandas as pd
from PIL import Image


def to_gray(image: np.ndarray) -> np.ndarray:
    """(h, w) or (h, w, 3) uint8 -> (h, w) uint8 (Pillow ITU-R 601 luma for RGB)."""
    return image if image.ndim == 2 else np.asarray(Image.fromarray(image, "RGB").convert("L"))


def laplacian_variance(image: np.ndarray) -> float:
    """Sharpness: variance of the 3x3 Laplacian (``cv2.Laplacian``, float64) of the gray image.
    It grows with fine detail and noise and shrinks with blur; it depends on the image size,
    so compare images of the same size."""
    return float(cv2.Laplacian(to_gray(image).astype(np.float64), cv2.CV_64F).var())


def rms_contrast(image: np.ndarray) -> float:
    """RMS contrast: standard deviation of the gray levels scaled to [0, 1]."""
    return float((to_gray(image).astype(np.float64) / 255.0).std())


def image_stats(images: Sequence[np.ndarray] | np.ndarray) -> pd.DataFrame:
    """One row per image: size (px), sharpness (Laplacian variance), contrast (RMS), mean."""
    rows = [{"size": img.shape[0], "sharpness": laplacian_variance(img),
             "contrast": rms_contrast(img), "mean": float(to_gray(img).mean())} for img in images]
    return pd.DataFrame(rows, columns=["size", "sharpness", "contrast", "mean"])
