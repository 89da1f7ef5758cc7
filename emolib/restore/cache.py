"""Per-image cache of restored images: one small file per (backend settings, input image).

A file holds the ``.npy`` bytes of the restored image followed by the SHA-1 of those bytes,
so a truncated or corrupted entry is detected on read (and recomputed by the caller), never
served. Files are written atomically (temp file + rename): an interrupted run leaves only
complete entries, and the next run resumes from them.
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np

from emolib.store import write_bytes

DIGEST = 20  # bytes of a SHA-1 digest


def encode_entry(image: np.ndarray) -> bytes:
    """``.npy`` bytes of ``image`` + their SHA-1 digest."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(image), allow_pickle=False)
    body = buf.getvalue()
    return body + hashlib.sha1(body).digest()


def decode_entry(data: bytes) -> np.ndarray | None:
    """The image stored in ``data``, or None when it is truncated or corrupt."""
    if len(data) <= DIGEST:
        return None
    body, digest = data[:-DIGEST], data[-DIGEST:]
    if hashlib.sha1(body).digest() != digest:
        return None
    try:
        return np.load(io.BytesIO(body), allow_pickle=False)
    except (ValueError, OSError, EOFError):
        return None


class ImageCache:
    """Restored images of one backend+settings, keyed by the input's ``image_hash``.

    ``get`` returns None for a missing entry and also for a bad one (counted in
    ``self.corrupt``); ``put`` writes atomically.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.corrupt = 0

    def path(self, key: str) -> Path:
        return self.folder / key[:2] / f"{key}.npy"

    def get(self, key: str, shape: tuple[int, ...] | None = None) -> np.ndarray | None:
        """The cached image for ``key`` if intact (and of ``shape`` when given), else None."""
        path = self.path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        image = decode_entry(data)
        if image is None or image.dtype != np.uint8 or (shape is not None and image.shape != shape):
            self.corrupt += 1
            return None
        return image

    def put(self, key: str, image: np.ndarray) -> Path:
        return write_bytes(self.path(key), encode_entry(image))

    def __len__(self) -> int:
        return sum(1 for _ in self.folder.glob("*/*.npy"))
