"""Settings of face restoration (notebook 02)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from emolib.config.checks import check_threads
from emolib.registry import RESTORATION_BACKENDS
from emolib.schema import at_least, check_names, within


@dataclass(frozen=True)
class RestorationConfig:
    """Face restoration (notebook 02); see ``emolib.restore`` for the backend names.

    ``backends`` are compared in notebook 02 on a small preview (``preview_per_class`` faces
    per class). ``selected`` (and any ``eval_backends``) restore the evaluation subset
    (``emolib.catalog.fer_eval_name``: ``data.eval_size`` PrivateTest faces) that notebooks
    03/04 score beside ``none`` (the original 48 px faces) on the same ids.
    """

    backends: tuple[str, ...] = ("none", "bicubic")
    output_size: int = field(default=96, metadata=at_least(8))
    selected: str = "bicubic"
    eval_backends: tuple[str, ...] = ()  # restored on the evaluation subset besides `selected`
    # faces per class every backend restores for notebook 02
    preview_per_class: int = field(default=4, metadata=at_least(1))
    batch_size: int = field(default=32, metadata=at_least(1))
    gfpgan_weights_dir: str | None = None  # holds GFPGANv1.x.pth; null = torch hub checkpoints
    realesrgan_gpuid: int = field(default=-1, metadata=at_least(-1))  # -1: CPU; >= 0: Vulkan device
    realesrgan_threads: int | Literal["auto"] = 1  # ncnn instances side by side (auto: emolib.machine decides)
    unsharp_radius: float = field(default=1.5, metadata=at_least(0))  # lanczos-unsharp: Pillow UnsharpMask settings
    unsharp_percent: int = field(default=120, metadata=at_least(0))
    unsharp_threshold: int = field(default=2, metadata=within(0, 255))

    def __post_init__(self) -> None:
        check_threads(self.realesrgan_threads, "restoration.realesrgan_threads")
        for key in ("backends", "selected", "eval_backends"):
            check_names(getattr(self, key), RESTORATION_BACKENDS, f"restoration.{key}")
