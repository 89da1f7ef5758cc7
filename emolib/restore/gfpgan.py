"""GFPGAN (v1.3 / v1.4, the "clean" architecture) on faces that are already aligned.

FER-2013 faces are cropped and roughly aligned already, so the detector is skipped: this is
GFPGAN's aligned-face path (``GFPGANer.enhance(img, has_aligned=True, paste_back=False)``):
the face is resized to 512 x 512 (``cv2.resize``, bilinear), normalised to [-1, 1], run
through the network, and the 512 x 512 result is what we keep (resized to ``output_size``
with Pillow Lanczos, and to gray for gray input). We call the network ourselves instead of
``GFPGANer`` because its constructor always builds the RetinaFace detector and the parsing
net (two more downloads, unused on this path), and ``enhance`` returns the *input* face
when inference fails, which would silently fake a result. The StyleGAN2 decoder's noise
is the checkpoint's stored noise (``randomize_noise=False``) so a face restores to the same
pixels in any batch; GFPGANer samples fresh noise per call (a small stochastic texture).

Weights: ``GFPGANv1.3.pth`` / ``GFPGANv1.4.pth`` from the official release, looked up in
``restoration.gfpgan_weights_dir`` (default: torch hub's ``checkpoints`` folder) and fetched
there on first use through emolib's downloader (``emolib.vlm.fetch``) unless the profile says
``weights: offline``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from emolib.compat import import_gfpgan
from emolib.registry import GFPGAN_WEIGHT_FILES
from emolib.restore.base import Restorer, RestorerUnavailable, match_mode, resize_image, to_rgb

WEIGHT_FILES = GFPGAN_WEIGHT_FILES
FACE_SIZE = 512


def gfpgan_status(backend: str, weights_dir: str | Path | None, mode: str = "auto") -> tuple[bool, str]:
    """(available, reason): the package imports and the weights are here, or were fetched now
    through emolib's downloader (``mode`` auto, online; ``emolib.vlm.fetch.ensure_weight``)."""
    try:
        import_gfpgan()
    except ImportError as err:
        return False, str(err)
    try:
        path = ensure_weights(backend, weights_dir, mode)
    except RestorerUnavailable as err:
        return False, str(err)
    return True, f"weights at {path}"


def build_gfpgan_net(channel_multiplier: int = 2) -> Any:
    """GFPGANv1Clean with the settings GFPGANer uses for v1.3/v1.4 (random weights, eval mode)."""
    import_gfpgan()
    from gfpgan.archs.gfpganv1_clean_arch import GFPGANv1Clean

    net = GFPGANv1Clean(out_size=FACE_SIZE, num_style_feat=512,
                        channel_multiplier=channel_multiplier, decoder_load_path=None,
                        fix_decoder=False, num_mlp=8, input_is_latent=True,
                        different_w=True, narrow=1, sft_half=True)
    return net.eval()


def ensure_weights(backend: str, weights_dir: str | Path | None, mode: str = "auto") -> Path:
    """Path of the backend's .pth, fetched first when missing (``mode`` auto: resumable,
    verified, from ``EMOLIB_WEIGHTS_MIRROR`` when set; offline: never); RestorerUnavailable
    with the reason and the fetch command when it cannot be had."""
    from emolib.vlm.fetch import ensure_weight
    from emolib.vlm.types import ModelUnavailable
    from emolib.vlm.weights import gfpgan_weight, gfpgan_weights_path

    try:
        return ensure_weight(gfpgan_weight(backend, weights_dir), f"no {backend} weights at "
                             f"{gfpgan_weights_path(backend, weights_dir)}", mode)[0]
    except ModelUnavailable as err:
        raise RestorerUnavailable(str(err)) from None


def file_sha1(path: Path, chunk: int = 2**20) -> str:
    digest = hashlib.sha1()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def load_gfpgan_net(path: Path, device: str = "cpu") -> Any:
    """The network with the weights in ``path`` (``params_ema`` if present, else ``params``;
    strict: every tensor of the architecture must be in the file)."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    net = build_gfpgan_net()
    key = "params_ema" if "params_ema" in state else "params"
    net.load_state_dict(state[key], strict=True)
    return net.to(device)


class GFPGANRestorer(Restorer):
    """GFPGAN on aligned faces, batched. ``net`` may be given (e.g. a random-weight network
    for tests, with ``weights_id`` naming it in the cache key); otherwise the weights file is
    found (or downloaded) when the cache key is first needed, identified by its SHA-1, and
    loaded on the first batch."""

    def __init__(self, backend: str, output_size: int, weights_dir: str | Path | None = None,
                 device: str = "cpu", net: Any = None, weights_id: str | None = None, mode: str = "auto") -> None:
        if backend not in WEIGHT_FILES:
            raise ValueError(f"unknown GFPGAN backend {backend!r}; known: {sorted(WEIGHT_FILES)}")
        if net is not None and weights_id is None:
            raise ValueError("a given `net` needs a `weights_id` for the cache key")
        self.backend, self.output_size = backend, output_size
        self.weights_dir, self.device, self._net = weights_dir, device, net
        self._weights_id, self.mode = weights_id, mode

    @property
    def weights_id(self) -> str:
        """``GFPGANv1.4.pth:<sha1[:12]>`` of the weights file (or the id given with ``net``)."""
        if self._weights_id is None:
            path = ensure_weights(self.backend, self.weights_dir, self.mode)
            self._weights_id = f"{path.name}:{file_sha1(path)[:12]}"
        return self._weights_id

    def settings(self) -> dict[str, Any]:
        return {"output_size": self.output_size, "weights": self.weights_id, "face_size": FACE_SIZE,
                "noise": "stored", "resize": "lanczos", "gray": "pillow-L"}

    @property
    def net(self) -> Any:
        if self._net is None:
            path = ensure_weights(self.backend, self.weights_dir, self.mode)
            self._net = load_gfpgan_net(path, self.device)
        return self._net

    def enhance_faces(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """n uint8 faces -> (n, 512, 512, 3) uint8 RGB network outputs."""
        import torch

        faces = np.stack([cv2.resize(to_rgb(img), (FACE_SIZE, FACE_SIZE)) for img in images])
        x = torch.from_numpy(faces).permute(0, 3, 1, 2).contiguous().float().div(255.0)
        x = x.sub(0.5).div(0.5)  # [-1, 1] as GFPGANer normalises
        with torch.inference_mode():
            out = self.net(x.to(self.device), return_rgb=False, randomize_noise=False)[0]
        out = out.float().cpu().clamp(-1, 1).add(1).div(2).mul(255).round()
        return out.permute(0, 2, 3, 1).numpy().astype(np.uint8)

    def restore_images(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        if len(images) == 0:
            return []
        faces = self.enhance_faces(images)
        return [match_mode(resize_image(face, self.output_size), img)
                for face, img in zip(faces, images, strict=True)]
