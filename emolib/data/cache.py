"""Decoded-array cache: a loaded in-memory ImageSet saved as one ``.npz`` so that the next
load of the same source takes about a second instead of a full decode.

Where: ``results/cache/data/`` under the output base (``$EMOLIB_RESULTS_DIR`` or the
checkout), shared by every profile because decoded pixels do not depend on the profile.
Key: the source's resolved path, the loader's options and format version, and the
path, size and modification time (ns) of every source file; any change to a source file
gives a new key, and the superseded file of that source is deleted when the new one is
written. Files are written atomically (temp file, rename) and hold no pickles.
Delete the folder to drop every cache; ``load_fer2013(..., cache=False)`` bypasses it.

The sets whose images are read on demand (Emotion6, class folders, manifests) keep only the
result of the load-time decode check here (``cached_unreadable``: the unreadable images, a
small JSON), keyed the same way, so that the images are decoded once, not at every load.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from emolib.data.imageset import ZIP_SEP, ImageSet
from emolib.paths import results_dir
from emolib.store import write_json, write_npz

_FIELDS = ("ids", "splits", "labels", "pixels")
_UNSUPPORTED = ("sources", "soft_labels", "valence", "arousal")
CHECK_VERSION = 1  # bump when the decode check changes, so older results are not reused


def data_cache_dir() -> Path:
    """``results/cache/data/`` (not created here)."""
    return results_dir("cache", ensure=False) / "data"


def file_stamps(files: Iterable[str | Path]) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) of each file, sorted by path: what a cache key watches."""
    stamps = []
    for file in files:
        st = os.stat(file)
        stamps.append((str(file), st.st_size, st.st_mtime_ns))
    return sorted(stamps)


def _digest(value: object) -> str:
    return hashlib.sha1(json.dumps(value, sort_keys=True).encode()).hexdigest()[:12]


def _arrays(image_set: ImageSet) -> dict[str, np.ndarray]:
    if any(getattr(image_set, name) is not None for name in _UNSUPPORTED):
        raise ValueError(f"the data cache holds in-memory image sets only, not {image_set!r} with sources/soft labels")
    arrays = {
        "ids": image_set.ids.astype(str),
        "splits": image_set.splits.astype(str),
        "labels": image_set.labels,
        "pixels": image_set.pixels,
        "header": np.array([image_set.name, image_set.label_set_name, image_set.variant, image_set.subset_name]),
        "notes": np.array(image_set.notes, dtype=str),
    }
    meta = image_set.meta if image_set.meta is not None else pd.DataFrame()
    for column in meta.columns:
        values = meta[column].to_numpy()
        arrays[f"meta/{column}"] = values.astype(str) if values.dtype == object else values
    for key, value in meta.attrs.items():
        arrays[f"attrs/{key}"] = np.array(list(value), dtype=str)
    return arrays


def _from_arrays(arrays: dict[str, np.ndarray]) -> ImageSet:
    name, label_set_name, variant, subset_name = arrays["header"].tolist()
    meta_cols = {k.split("/", 1)[1]: arrays[k] for k in arrays if k.startswith("meta/")}
    meta = pd.DataFrame({k: v.astype(object) if v.dtype.kind == "U" else v for k, v in meta_cols.items()})
    meta.attrs = {k.split("/", 1)[1]: arrays[k].tolist() for k in arrays if k.startswith("attrs/")}
    return ImageSet(
        name=name, label_set_name=label_set_name, variant=variant, subset_name=subset_name,
        ids=arrays["ids"].astype(object), splits=arrays["splits"].astype(object),
        labels=arrays["labels"], pixels=arrays["pixels"],
        meta=meta if meta_cols else None, notes=tuple(arrays["notes"].tolist()),
    )


def save_imageset(image_set: ImageSet, path: Path) -> None:
    """Write an in-memory ImageSet to ``path`` (.npz, uncompressed), atomically."""
    write_npz(path, **_arrays(image_set))


def load_imageset(path: Path) -> ImageSet:
    """The ImageSet ``save_imageset`` wrote."""
    with np.load(path, allow_pickle=False) as archive:
        return _from_arrays({key: archive[key] for key in archive.files})


def cached_imageset(kind: str, source: Path, files: Iterable[str | Path], options: dict,
                    build: Callable[[], ImageSet]) -> ImageSet:
    """``build()``'s ImageSet, from the cache when the source files and options are unchanged.

    ``kind`` names the data set (file name prefix), ``source`` the path the user gave,
    ``files`` every file the loader reads, ``options`` whatever else changes the result."""
    source_id = _digest([kind, str(source.resolve())])
    key = _digest([options, file_stamps(files)])
    path = data_cache_dir() / f"{kind}-{source_id}-{key}.npz"
    rebuilt = ""
    if path.is_file():
        try:
            cached = load_imageset(path)
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
            rebuilt = f" (the previous copy was unreadable: {err})"
        else:
            note = f"decoded pixels read from the cache {path} (delete it, or pass cache=False, to decode again)"
            return replace(cached, notes=cached.notes + (note,))
    image_set = build()
    save_imageset(image_set, path)
    _drop_stale(path, f"{kind}-{source_id}-*.npz")
    return replace(image_set, notes=image_set.notes + (f"decoded pixels written to the cache {path}{rebuilt}",))


def _drop_stale(path: Path, pattern: str) -> None:
    """Delete the superseded cache files of the same source (``pattern``) beside ``path``."""
    for stale in path.parent.glob(pattern):
        if stale != path:
            stale.unlink(missing_ok=True)


def _image_files(sources: Iterable[str]) -> list[str]:
    """The files behind image sources: each path, and each zip once for its members."""
    return sorted({source.split(ZIP_SEP, 1)[0] for source in sources})


def cached_unreadable(kind: str, source: Path, sources: tuple[str, ...],
                      find: Callable[[], dict[int, str]]) -> tuple[dict[int, str], str]:
    """``find()``'s unreadable images of ``sources`` ({row: "<source>: <error>"}), from the
    cache when the sources and the size and time of every image file (or zip) are unchanged;
    and a note saying whether the check ran or was read from the cache (``<kind>-check-*.json``)."""
    source_id = _digest([kind, str(source.resolve())])
    key = _digest([CHECK_VERSION, list(sources), file_stamps(_image_files(sources))])
    path = data_cache_dir() / f"{kind}-check-{source_id}-{key}.json"
    rebuilt = ""
    if path.is_file():
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            rebuilt = f" (the previous copy was unreadable: {err})"
        else:
            bad = {int(i): message for i, message in stored.items()}
            return bad, f"decode check of its {len(sources)} images read from the cache {path}"
    bad = find()
    write_json(path, {str(i): message for i, message in bad.items()})
    _drop_stale(path, f"{kind}-check-{source_id}-*.json")
    return bad, f"checked that its {len(sources)} images decode (result cached in {path}{rebuilt})"
