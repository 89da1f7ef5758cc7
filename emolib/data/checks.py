"""Checks every loader makes on its input at load, so that a bad file stops there with its
name, its line and the fix, not later in a notebook.

- ``read_utf8`` / ``decode_utf8``: text files as UTF-8; a byte that is not UTF-8 is a
  DataError naming the file, the line and the byte ("save it as UTF-8").
- ``repeated_keys``: the keys (ids, paths) that occur more than once, with their positions,
  for the loaders' "id on line 3 and line 9" messages.
- ``decode_all``: decode many images in threads, collecting those that fail; FER-2013 keeps
  the pixels, ``find_unreadable`` only checks that images read on demand decode.
- ``refuse_unreadable`` / ``keep_readable``: a DataError naming the unreadable images and
  the fix, or, with ``data.skip_unreadable``, the set without them, each listed in
  ``notes`` ("unreadable, skipped: ...") and in ``meta.attrs["unreadable"]``
  (``unreadable_images``).
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from emolib.data.cache import cached_unreadable
from emolib.data.imageset import DECODE_ERRORS, ZIP_SEP, DataError, ImageSet, decode_pixels

SAVE_AS_UTF8 = "save it as UTF-8 (in a spreadsheet: CSV UTF-8; in an editor: encoding UTF-8)"
SKIP_ADVICE = "or set data.skip_unreadable: true to leave them out (listed in the set's notes and the audit)"
SKIPPED = "unreadable, skipped: "  # the notes' prefix of an image left out
SHOWN = 5  # unreadable images named in one message


# ----------------------------------------------------------------------------- text
def decode_utf8(data: bytes, where: str) -> str:
    """``data`` as text (a UTF-8 byte-order mark dropped); DataError naming ``where``, the
    line and the first byte that is not UTF-8."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise DataError(
            f"{where}, line {line}, byte {column} of the line (byte offset {err.start}): byte "
            f"0x{data[err.start]:02x} is not UTF-8 ({err.reason}); the file is in another encoding "
            f"(latin-1, Windows-1252?): {SAVE_AS_UTF8}"
        ) from err


def read_utf8(path: Path) -> str:
    """The text of file ``path`` (``decode_utf8``)."""
    return decode_utf8(path.read_bytes(), str(path))


# ----------------------------------------------------------------------------- keys
def repeated_keys(keys: Sequence[str]) -> dict[str, list[int]]:
    """Each key that occurs more than once -> its positions, in order of first occurrence."""
    series = pd.Series(list(keys), dtype=object)
    twice = series[series.duplicated(keep=False)]
    return {key: group.index.tolist() for key, group in twice.groupby(twice, sort=False)}


# ----------------------------------------------------------------------------- images
def _describe(err: BaseException) -> str:
    """An error's text without the address of Pillow's in-memory file."""
    return re.sub(r" <_io\.BytesIO object at 0x[0-9a-fA-F]+>", "", str(err)) or type(err).__name__


def decode_all(open_reader, names: Sequence[str], sources: Sequence[str],
               decode: Callable[[int, bytes], None], workers: int = 1) -> dict[int, str]:
    """Call ``decode(i, data)`` for the bytes of every ``names[i]``, in ``workers`` threads;
    ``open_reader()`` is a context manager giving a ``read(name) -> bytes`` per thread. Returns
    the images that fail, {i: "<sources[i]>: <error>"}; an empty file fails too."""
    bad: dict[int, str] = {}

    def work(chunk: np.ndarray) -> None:
        with open_reader() as read:
            for i in chunk:
                try:
                    data = read(names[i])
                    if not data:
                        raise ValueError("empty file (0 bytes)")
                    decode(int(i), data)
                except (*DECODE_ERRORS, cv2.error, zipfile.BadZipFile, DataError) as err:  # refused or skipped
                    bad[int(i)] = f"{sources[i]}: {_describe(err)}"

    chunks = np.array_split(np.arange(len(names)), max(1, workers))
    with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
        list(pool.map(work, chunks))  # list() re-raises an unexpected error of a worker
    return dict(sorted(bad.items()))


@contextmanager
def source_reader():
    """A ``read(source) -> bytes`` for file paths and ``archive.zip::member`` sources, with
    its own zip handles (ZipFile is not thread-safe), closed on exit."""
    with ExitStack() as stack:
        archives: dict[str, zipfile.ZipFile] = {}

        def read(source: str) -> bytes:
            if ZIP_SEP not in source:
                return Path(source).read_bytes()
            archive, member = source.split(ZIP_SEP, 1)
            if archive not in archives:
                archives[archive] = stack.enter_context(zipfile.ZipFile(archive))
            return archives[archive].read(member)

        yield read


def find_unreadable(sources: Sequence[str], workers: int = 1) -> dict[int, str]:
    """The images of ``sources`` (paths or ``archive.zip::member``) that do not decode, as
    ``decode_all`` gives them; the pixels are not kept."""
    return decode_all(source_reader, sources, sources, lambda i, data: decode_pixels(data), workers)


def refuse_unreadable(bad: dict[int, str], label: str, total: int, skip: bool) -> None:
    """DataError naming the unreadable images ``bad`` (of ``total``) of set ``label`` and the
    fix, unless ``skip`` leaves them out (an error still when none would be left)."""
    if not bad or (skip and len(bad) < total):
        return
    shown = "; ".join(list(bad.values())[:SHOWN]) + (f"; and {len(bad) - SHOWN} more" if len(bad) > SHOWN else "")
    if skip:
        raise DataError(f"none of the {total} {label} images can be read ({shown}), so data.skip_unreadable "
                        "would leave none: is the path the data set (download it again)?")
    if len(bad) == 1:
        raise DataError(f"cannot read {label} image {shown}. Replace it with an intact copy from the data set's "
                        f"source, {SKIP_ADVICE.replace('them', 'it')}.")
    raise DataError(f"cannot read {len(bad)} of the {total} {label} images: {shown}. Replace them with intact "
                    f"copies from the data set's source, {SKIP_ADVICE}.")


def skipped_notes(bad: dict[int, str]) -> tuple[str, ...]:
    """One note per image left out: ``unreadable, skipped: <source>: <error>``."""
    return tuple(SKIPPED + message for message in bad.values())


def unreadable_images(image_set: ImageSet) -> list[str]:
    """The images the loader left out as unreadable ("<source>: <error>" each)."""
    return list(image_set.meta.attrs.get("unreadable", [])) if image_set.meta is not None else []


def keep_readable(image_set: ImageSet, kind: str, source: Path, skip: bool) -> ImageSet:
    """``image_set`` (images read on demand from ``sources``; ``kind`` its loader, ``source``
    the path it was loaded from) once every image was found to decode (``find_unreadable``,
    its result cached per source files): DataError naming those that do not
    (``refuse_unreadable``), or with ``skip`` the set without them, listed in notes."""
    sources = image_set.sources
    bad, note = cached_unreadable(kind, source, sources, lambda: find_unreadable(sources))
    refuse_unreadable(bad, image_set.name, len(image_set), skip)
    if not bad:
        return replace(image_set, notes=image_set.notes + (note,))
    kept = image_set.subset(np.array([i not in bad for i in range(len(image_set))]))
    meta = kept.meta if kept.meta is not None else pd.DataFrame(index=range(len(kept)))
    meta.attrs["unreadable"] = list(bad.values())
    return replace(kept, meta=meta, notes=kept.notes + (note,) + skipped_notes(bad))
