"""Classical baselines: Pillow bicubic and Lanczos interpolation, Lanczos + unsharp mask.

Every comparison with a neural restorer needs them: a gain that bicubic upscaling also
gives is a gain of resolution, not of restoration.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from emolib.restore.base import Restorer, check_image

RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "lanczos": Image.Resampling.LANCZOS}


class ClassicalRestorer(Restorer):
    """``bicubic``, ``lanczos`` or ``lanczos-unsharp`` resizing to ``output_size`` (Pillow).

    ``lanczos-unsharp`` applies ``ImageFilter.UnsharpMask(radius, percent, threshold)`` after
    the Lanczos resize. Grayscale stays grayscale; RGB stays RGB.
    """

    def __init__(self, backend: str, output_size: int, unsharp_radius: float = 1.5,
                 unsharp_percent: int = 120, unsharp_threshold: int = 2) -> None:
        method = backend.removesuffix("-unsharp")
        if method not in RESAMPLE or (backend.endswith("-unsharp") and method != "lanczos"):
            raise ValueError(f"unknown classical backend {backend!r}")
        self.backend = backend
        self.output_size = output_size
        self.resample = RESAMPLE[method]
        self.unsharp = (unsharp_radius, unsharp_percent, unsharp_threshold) if backend.endswith(
            "-unsharp") else None

    def settings(self) -> dict[str, Any]:
        return {"output_size": self.output_size, "unsharp": self.unsharp}

    def restore_one(self, image: np.ndarray) -> np.ndarray:
        """One uint8 image -> (S, S) or (S, S, 3) uint8."""
        img = Image.fromarray(check_image(image)).resize((self.output_size,) * 2, self.resample)
        if self.unsharp is not None:
            radius, percent, threshold = self.unsharp
            img = img.filter(ImageFilter.UnsharpMask(radius=radius, percent=percent,
                                                     threshold=threshold))
        return np.asarray(img)

    def restore_images(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        return [self.restore_one(img) for img in images]
