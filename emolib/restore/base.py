"""The ``Restorer`` interface and the pixel helpers every backend shares.

A restorer maps a batch of uint8 images (each (h, w) grayscale or (h, w, 3) RGB) to images
of ``output_size`` x ``output_size`` with the same colour mode: grayscale in, grayscale out
(FER faces stay (S, S) uint8). Neural backends see an RGB copy (gray replicated x3) and
their output is turned back to gray with Pillow's ITU-R 601 luma (``convert("L")``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image


class RestorerUnavailable(RuntimeError):
    """A backend that cannot run on this machine; the message says why and how to fix it."""


class Restorer(ABC):
    """One restoration backend with fixed settings.

    ``backend`` is its public name (``bicubic``, ``realesrgan-x4``, ``gfpgan-v1.4``);
    ``settings()`` returns everything that changes its output (the per-image cache key).
    """

    backend: str
    output_size: int

    @abstractmethod
    def settings(self) -> dict[str, Any]:
        """JSON-able settings that, with the backend name, decide the output pixels."""

    @abstractmethod
    def restore_images(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Restore a batch: n uint8 images (h, w) or (h, w, 3) -> n uint8 (S, S) or (S, S, 3)."""


def check_image(image: np.ndarray) -> np.ndarray:
    """``image`` as a uint8 (h, w) or (h, w, 3) array; ValueError for anything else."""
    image = np.asarray(image)
    rgb = image.ndim == 3 and image.shape[2] == 3
    if image.dtype != np.uint8 or not (image.ndim == 2 or rgb):
        raise ValueError(f"expected uint8 (h, w) or (h, w, 3), got {image.dtype} {image.shape}")
    return image


def to_rgb(image: np.ndarray) -> np.ndarray:
    """(h, w) or (h, w, 3) uint8 -> (h, w, 3) uint8 (gray replicated to three channels)."""
    image = check_image(image)
    return np.repeat(image[:, :, None], 3, axis=2) if image.ndim == 2 else image


def match_mode(rgb: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Return ``rgb`` (h, w, 3) as gray (h, w) when ``like`` is gray, else unchanged."""
    if like.ndim == 2:
        return np.asarray(Image.fromarray(rgb, "RGB").convert("L"))
    return rgb


def resize_image(image: np.ndarray, size: int,
                 resample: int = Image.Resampling.LANCZOS) -> np.ndarray:
    """Resize a uint8 image to ``size`` x ``size`` with Pillow (no-op when already that size)."""
    if image.shape[:2] == (size, size):
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), resample))
