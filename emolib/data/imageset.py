"""The one image-set type every loader returns, and the image readers behind it."""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from emolib.labels import LabelSet, get_label_set

SPLITS = ("train", "public_test", "private_test")
ZIP_SEP = "::"  # a source "archive.zip::member/name.jpg" is a member of a zip archive


class DataError(ValueError):
    """Input data that cannot be used; the message names the file and how to fix it."""


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Images with labels, one row per image.

    ``ids``, ``splits`` (n,) str; ``labels`` (n,) int64 index into ``label_set`` (-1: none);
    pixels either in memory (``pixels``: (n, H, W) or (n, H, W, 3) uint8) or read on demand
    from ``sources`` (a file path or ``archive.zip::member`` per image). Optional:
    ``soft_labels`` (n, k) float32 with column names ``soft_label_names`` (FER+ votes,
    Emotion6 distributions), ``valence``/``arousal`` (n,), and ``meta`` (extra columns).
    ``variant`` names a processed copy (``none`` for the original pixels, ``bicubic-96``, ...)
    and ``subset_name`` the named evaluation subset (``emolib.catalog``) the rows were
    selected as (``all``: not selected).
    """

    name: str
    label_set_name: str
    ids: np.ndarray
    splits: np.ndarray
    labels: np.ndarray
    pixels: np.ndarray | None = None
    sources: tuple[str, ...] | None = None
    soft_labels: np.ndarray | None = None
    soft_label_names: tuple[str, ...] | None = None
    valence: np.ndarray | None = None
    arousal: np.ndarray | None = None
    meta: pd.DataFrame | None = None
    variant: str = "none"
    subset_name: str = "all"
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        n = len(self.ids)
        for attr in ("splits", "labels", "pixels", "soft_labels", "valence", "arousal", "meta"):
            value = getattr(self, attr)
            if value is not None and len(value) != n:
                raise ValueError(f"ImageSet {self.name}: {attr} has {len(value)} rows, ids {n}")
        if self.sources is not None and len(self.sources) != n:
            raise ValueError(f"ImageSet {self.name}: sources has {len(self.sources)} rows, ids {n}")
        if self.pixels is None and self.sources is None:
            raise ValueError(f"ImageSet {self.name}: needs pixels or sources")

    def __len__(self) -> int:
        return len(self.ids)

    def __repr__(self) -> str:
        counts = pd.Series(self.splits).value_counts().to_dict()
        return (f"ImageSet({self.name!r}, {self.variant}, {self.label_set_name}, subset {self.subset_name}, "
                f"n={len(self)}, {counts})")

    @property
    def label_set(self) -> LabelSet:
        return get_label_set(self.label_set_name)

    @property
    def label_names(self) -> np.ndarray:
        names = np.array(self.label_set.names + ("<none>",), dtype=object)
        return names[self.labels]

    def image(self, i: int) -> np.ndarray:
        """Image ``i`` as uint8, (H, W) grayscale or (H, W, 3) RGB."""
        if self.pixels is not None:
            return self.pixels[i]
        return read_image(self.sources[i])

    def images(self, indices: np.ndarray | list[int] | None = None) -> list[np.ndarray]:
        """Several images (all if ``indices`` is None), as a list of uint8 arrays."""
        idx = range(len(self)) if indices is None else indices
        return [self.image(int(i)) for i in idx]

    def subset(self, index: np.ndarray | list[int]) -> ImageSet:
        """Rows by boolean mask or integer positions, keeping every per-image field aligned."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        take = lambda a: None if a is None else a[index]  # noqa: E731
        return replace(
            self,
            ids=self.ids[index],
            splits=self.splits[index],
            labels=self.labels[index],
            pixels=take(self.pixels),
            sources=None if self.sources is None else tuple(self.sources[i] for i in index),
            soft_labels=take(self.soft_labels),
            valence=take(self.valence),
            arousal=take(self.arousal),
            meta=None if self.meta is None else self.meta.iloc[index].reset_index(drop=True),
        )

    def select_ids(self, ids: np.ndarray | list[str], subset_name: str) -> ImageSet:
        """The rows whose ids are ``ids``, in that order, named ``subset_name``. Every id must
        name exactly one row: a missing or repeated id is an error naming it."""
        ids = np.asarray(ids, dtype=object)
        position = pd.Series(np.arange(len(self)), index=self.ids)
        repeated = position.index[position.index.duplicated()]
        wanted_repeats = sorted(set(ids) & set(repeated))
        if wanted_repeats:
            raise DataError(f"{self.name}: subset {subset_name!r} names ids that are not unique "
                            f"here: {wanted_repeats[:5]}")
        position = position[~position.index.duplicated()]
        missing = [i for i in ids if i not in position.index]
        if missing:
            raise DataError(f"{self.name}: subset {subset_name!r} names {len(missing)} id(s) this "
                            f"image set lacks, e.g. {missing[:5]}: was the subset stored for other data?")
        return replace(self.subset(position.loc[ids].to_numpy()), subset_name=subset_name)

    def split(self, *names: str) -> ImageSet:
        """The images of the given split(s)."""
        unknown = set(names) - set(np.unique(self.splits))
        if unknown:
            raise KeyError(f"{self.name} has no split {sorted(unknown)}; has {sorted(set(self.splits))}")
        return self.subset(np.isin(self.splits, names))

    def with_pixels(self, pixels: np.ndarray, variant: str) -> ImageSet:
        """The same images, rows and labels with new pixels (a restored copy, say)."""
        if len(pixels) != len(self):
            raise ValueError(f"{len(pixels)} images for an ImageSet of {len(self)}")
        return replace(self, pixels=pixels, sources=None, variant=variant)

    def to_frame(self) -> pd.DataFrame:
        """One row per image: image_id, split, label, label_name (+ valence, arousal, meta)."""
        frame = pd.DataFrame(
            {
                "image_id": self.ids,
                "split": self.splits,
                "label": self.labels,
                "label_name": self.label_names,
            }
        )
        if self.valence is not None:
            frame["valence"] = self.valence
            frame["arousal"] = self.arousal
        if self.meta is not None:
            frame = pd.concat([frame, self.meta.reset_index(drop=True)], axis=1)
        return frame

    def class_counts(self) -> pd.DataFrame:
        """Images per split (rows) and class (columns, label-set order), with a total."""
        frame = self.to_frame()
        table = pd.crosstab(frame["split"], frame["label_name"])
        columns = [c for c in self.label_set.names + ("<none>",) if c in table.columns]
        table = table.reindex(columns=columns)
        order = [s for s in SPLITS if s in table.index] + [s for s in table.index if s not in SPLITS]
        table = table.loc[order]
        table["total"] = table.sum(axis=1)
        return table


def image_hash(image: np.ndarray) -> str:
    """Content hash of an image array (shape and bytes): the cache key for derived work."""
    digest = hashlib.sha1(str(image.shape).encode() + image.dtype.str.encode())
    digest.update(np.ascontiguousarray(image).tobytes())
    return digest.hexdigest()


@lru_cache(maxsize=8)
def _open_zip(path: str, stamp: tuple[int, int]) -> zipfile.ZipFile:
    # kept open for the next read; keyed on (size, mtime) too, so a zip replaced at the same
    # path gets a fresh handle instead of the old file's. Evicted handles close when collected.
    return zipfile.ZipFile(path)


# what Pillow raises for a broken, truncated or hostile file (UnidentifiedImageError is an OSError)
DECODE_ERRORS = (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError)


def decode_pixels(data: bytes, mode: str | None = None) -> np.ndarray:
    """Encoded image bytes as uint8 ((H, W) for gray, else (H, W, 3) RGB); Pillow's error
    (one of ``DECODE_ERRORS``) when they do not decode."""
    with Image.open(io.BytesIO(data)) as img:
        img.load()
        target = mode or ("L" if img.mode in ("L", "I;16", "1") else "RGB")
        return np.asarray(img.convert(target))


def decode_image(data: bytes, where: str, mode: str | None = None) -> np.ndarray:
    """``decode_pixels``, with a DataError naming ``where`` and the fix when they do not decode."""
    try:
        return decode_pixels(data, mode)
    except DECODE_ERRORS as err:
        # the loaders check that every image decodes: this one changed since, or was never loaded
        raise DataError(
            f"cannot decode image {where}: {err}. Replace the file with an intact copy from the "
            "data set's source and load the set again (with data.skip_unreadable: true the loader "
            "leaves such images out, listed in the set's notes)."
        ) from err


def read_image(source: str, mode: str | None = None) -> np.ndarray:
    """Read one image from a file path or an ``archive.zip::member`` source."""
    if ZIP_SEP in source:
        archive, member = source.split(ZIP_SEP, 1)
        try:
            stat = Path(archive).stat()
            data = _open_zip(archive, (stat.st_size, stat.st_mtime_ns)).read(member)
        except KeyError:
            raise DataError(f"{archive} has no member {member}") from None
    else:
        path = Path(source)
        if not path.is_file():
            raise DataError(f"image file {path} does not exist")
        data = path.read_bytes()
    return decode_image(data, source, mode)
