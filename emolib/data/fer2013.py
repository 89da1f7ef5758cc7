"""FER-2013 in every form a user may have it, returned as one ImageSet in canonical order.

Layouts (``detect_fer_layout``):

- ``kaggle_zip``: the Kaggle ``archive.zip`` (``train/<class>/*.jpg``, ``test/<class>/*.jpg``,
  possibly under one top folder), read straight from the zip;
- ``kaggle_folder``: the same, unpacked;
- ``fer_csv``: the challenge's ``fer2013.csv`` (``emotion,pixels,Usage``);
- ``icml_csv``: ``icml_face_data.csv`` (``emotion, Usage, pixels``: names with a leading space);
- ``torchvision``: a root holding ``fer2013/`` with one of the CSVs above, or
  ``train.csv`` + ``test.csv`` (whose test rows carry no labels: label -1, split ``test``).

macOS metadata that a zip re-made on a Mac carries (``__MACOSX/`` and ``._*`` members or
files) is ignored, and the notes say how many. A missing ``train/`` or ``test/`` folder, a
missing ``emotion`` column, or any bad row is an error naming the file (and row) and the fix;
the CSV forms are read by ``emolib.data.fer_csv``.

Decoded pixels are cached (``emolib.data.cache``: ``results/cache/data/``, keyed by the
source files' paths, sizes and modification times), so a second load of any layout takes
about a second; ``cache=False`` decodes afresh.

Labels always index ``fer7`` = fer2013.csv codes (0=angry ... 6=neutral), whatever the source:
the Kaggle folder order is alphabetical, so folder names are mapped by name, never by position.
Splits: ``train``, ``public_test``, ``private_test`` (Kaggle file names keep the original usage).
"""

from __future__ import annotations

import io
import os
import zipfile
from contextlib import contextmanager
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from emolib.data.cache import cached_imageset
from emolib.data.checks import decode_all, refuse_unreadable, repeated_keys, skipped_notes
from emolib.data.fer_csv import FER_SIZE, USAGE_TO_SPLIT, read_fer_csv
from emolib.data.imageset import ZIP_SEP, DataError, ImageSet
from emolib.labels import get_label_set

FER7 = get_label_set("fer7")
KAGGLE_CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
CSV_NAMES = ("fer2013.csv", "icml_face_data.csv")
CACHE_VERSION = 3  # bump when a loader's output or checks change, so older caches are not reused


def detect_fer_layout(path: Path) -> str:
    """Name of the FER-2013 layout at ``path``; DataError if it is none of them."""
    if not path.exists():
        raise DataError(
            f"FER-2013 not found at {path}. Download the Kaggle archive (msambare/fer2013) or the "
            "challenge's fer2013.csv and put it there, or set EMOLIB_DATA_DIR / data.fer2013."
        )
    if path.is_file() and path.suffix.lower() == ".zip":
        return "kaggle_zip"
    if path.is_file() and path.suffix.lower() == ".csv":
        with path.open(encoding="utf-8", errors="replace") as handle:
            header = handle.readline().rstrip("\r\n").split(",")
        return "icml_csv" if " pixels" in header else "fer_csv"
    if path.is_dir():
        has_train, has_test = (path / "train").is_dir(), (path / "test").is_dir()
        if has_train and has_test:
            return "kaggle_folder"
        if has_train or has_test:
            present, absent = ("train", "test") if has_train else ("test", "train")
            raise DataError(
                f"{path} holds {present}/ but no {absent}/ folder: the Kaggle FER-2013 layout needs both "
                f"(train/<class>/*.jpg and test/<class>/*.jpg). Unpack the whole archive again."
            )
        if (path / "fer2013").is_dir():
            return "torchvision"
        if any((path / name).is_file() for name in CSV_NAMES + ("train.csv", "test.csv")):
            return "torchvision_inner"
    raise DataError(
        f"{path} is not a FER-2013 layout emolib knows. Expected the Kaggle zip or folder "
        "(train/<class>/*.jpg, test/<class>/*.jpg), fer2013.csv, icml_face_data.csv, or a "
        "torchvision root holding fer2013/."
    )


def load_fer2013(path: str | Path, skip_unreadable: bool = False, workers: int = 1, cache: bool = True) -> ImageSet:
    """Load FER-2013 from any supported layout into memory: pixels (n, 48, 48) uint8.

    ``skip_unreadable``: images that cannot be decoded are left out and listed in
    ``ImageSet.meta.attrs["unreadable"]`` (and ``notes``) instead of raising.
    ``workers``: decoding threads. ``cache``: reuse (or write) the decoded-array cache.
    """
    path = Path(path)
    layout = detect_fer_layout(path)

    def build() -> ImageSet:
        return _LOADERS[layout](path, skip_unreadable=skip_unreadable, workers=workers)

    if not cache:
        return build()
    options = {"layout": layout, "skip_unreadable": skip_unreadable, "version": CACHE_VERSION}
    return cached_imageset("fer2013", path, _source_files(layout, path), options, build)


def _source_files(layout: str, path: Path) -> list[str]:
    """Every file the layout's loader reads (their sizes and times key the cache)."""
    if layout == "kaggle_folder":  # os.walk: a quarter of rglob's time over 35,887 files
        return [os.path.join(d, f) for folder in ("train", "test") for d, _, files in os.walk(path / folder)
                for f in files]
    if layout in ("torchvision", "torchvision_inner"):
        base = path / "fer2013" if layout == "torchvision" else path
        return [str(p) for p in base.glob("*.csv")]
    return [str(path)]


# ----------------------------------------------------------------------------- Kaggle layout
def _split_from_filename(name: str) -> str:
    stem = name.rsplit("/", 1)[-1]
    for usage, split in USAGE_TO_SPLIT.items():
        if stem.startswith(usage + "_"):
            return split
    return ""


def _is_macos_metadata(name: str) -> bool:
    """``__MACOSX/...`` and AppleDouble ``._*`` entries a Mac adds to zips and copied folders."""
    parts = name.split("/")
    return "__MACOSX" in parts or parts[-1].startswith("._")


def _kaggle_entries(names: list[str], where: str) -> pd.DataFrame:
    """Rows (member, folder, class, split) for image files under train/ and test/; the
    number of macOS metadata entries skipped is in ``attrs["macos_ignored"]``."""
    rows = []
    macos = [n for n in names if _is_macos_metadata(n)]
    for name in names:
        parts = name.split("/")
        if not name.lower().endswith(IMAGE_SUFFIXES) or len(parts) < 3 or _is_macos_metadata(name):
            continue
        folder, cls = parts[-3], parts[-2]
        if folder not in ("train", "test"):
            continue
        if cls not in KAGGLE_CLASSES:
            raise DataError(
                f"{where}: unknown class folder {folder}/{cls} (member {name}); FER-2013 class "
                f"folders are {list(KAGGLE_CLASSES)}. Rename or remove that folder."
            )
        split = _split_from_filename(name) or ("train" if folder == "train" else "")
        if not split:
            raise DataError(
                f"{where}: {name} has no PublicTest_/PrivateTest_ prefix, so its split is unknown. "
                "Keep the Kaggle file names, or load the original fer2013.csv instead."
            )
        rows.append((name, folder, cls, split))
    if not rows:
        raise DataError(
            f"{where} holds no images under train/<class>/ or test/<class>/: is it the Kaggle "
            "FER-2013 archive (msambare/fer2013)?"
        )
    frame = pd.DataFrame(rows, columns=["member", "folder", "kaggle_class", "split"])
    missing = sorted({"train", "test"} - set(frame["folder"]))
    if missing:
        raise DataError(
            f"{where} has no images under {missing[0]}/<class>/: the Kaggle FER-2013 archive holds both "
            "train/ and test/. Download or unpack the whole archive (msambare/fer2013) again."
        )
    frame = frame.sort_values("member", kind="stable").reset_index(drop=True)
    _refuse_two_copies(frame["member"], where)
    frame.attrs["macos_ignored"] = len(macos)
    return frame


def _refuse_two_copies(members: pd.Series, where: str) -> None:
    """DataError when one Kaggle path (``train/<class>/<file>``) is two members: the tree twice.
    (The same file name in two class folders is Kaggle's own, and is kept.)"""
    repeats = repeated_keys(["/".join(m.split("/")[-3:]) for m in members])
    if repeats:
        tail, (first, second, *_) = next(iter(repeats.items()))
        raise DataError(
            f"{where} holds the FER-2013 tree twice: {tail} is both {members[first]} and {members[second]} "
            f"({len(repeats)} images appear twice among its {len(members)}). Keep one copy: make the zip again "
            "from a single train/ and test/ pair, or use the Kaggle archive.zip as downloaded."
        )


def _decode_gray(data: bytes, where: str) -> np.ndarray:
    # OpenCV decodes these small JPEGs 5x faster than Pillow, to identical pixels
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if arr is None:
        with Image.open(io.BytesIO(data)) as img:  # Pillow names what is wrong with the file
            arr = np.asarray(img.convert("L"))
    if arr.shape != (FER_SIZE, FER_SIZE):
        raise DataError(f"{where} is {arr.shape[1]}x{arr.shape[0]}, FER-2013 images are 48x48")
    return arr


def _decode_all(open_reader, names: list[str], where: str, skip: bool, workers: int):
    """Decode every named image into one (n, 48, 48) array using ``workers`` threads
    (``checks.decode_all``); the unreadable ones {i: message} when ``skip``, else a DataError."""
    pixels = np.zeros((len(names), FER_SIZE, FER_SIZE), dtype=np.uint8)
    sources = [f"{where}{ZIP_SEP}{n}" if where.endswith(".zip") else n for n in names]

    def decode(i: int, data: bytes) -> None:
        pixels[i] = _decode_gray(data, sources[i])

    bad = decode_all(open_reader, names, sources, decode, workers)
    refuse_unreadable(bad, "FER-2013", len(names), skip)
    return pixels, bad


def _kaggle_imageset(entries: pd.DataFrame, pixels, bad, origin: str) -> ImageSet:
    macos = entries.attrs.get("macos_ignored", 0)
    keep = np.array([i not in bad for i in range(len(entries))])
    entries, pixels = entries[keep].reset_index(drop=True), pixels[keep]
    labels = np.array([FER7.index(c) for c in entries["kaggle_class"]], dtype=np.int64)
    meta = pd.DataFrame({"kaggle_path": ["/".join(m.split("/")[-3:]) for m in entries["member"]]})
    notes = skipped_notes(bad)
    if macos:
        notes += (f"ignored {macos} macOS metadata entries (__MACOSX/, ._*): not images",)
    meta.attrs["unreadable"] = list(bad.values())
    return ImageSet(
        name="fer2013",
        label_set_name="fer7",
        ids=np.array([m.rsplit("/", 1)[-1].rsplit(".", 1)[0] for m in entries["member"]], dtype=object),
        splits=entries["split"].to_numpy(dtype=object),
        labels=labels,
        pixels=pixels,
        meta=meta,
        notes=(f"loaded from {origin}",) + notes,
    )


def _load_kaggle_zip(path: Path, skip_unreadable: bool, workers: int) -> ImageSet:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
    except zipfile.BadZipFile as err:
        raise DataError(f"{path} is not a readable zip archive ({err}); download it again") from err
    csvs = [n for n in names if Path(n).name in CSV_NAMES and not _is_macos_metadata(n)]
    if csvs and not any(n.lower().endswith(IMAGE_SUFFIXES) for n in names):
        with zipfile.ZipFile(path) as zf, zf.open(csvs[0]) as member:
            return read_fer_csv(member, f"{path}{ZIP_SEP}{csvs[0]}", workers=workers)
    entries = _kaggle_entries(names, str(path))

    @contextmanager
    def open_reader():
        with zipfile.ZipFile(path) as zf:  # one handle per thread: ZipFile is not thread-safe
            yield zf.read

    pixels, bad = _decode_all(open_reader, list(entries["member"]), str(path), skip_unreadable, workers)
    return _kaggle_imageset(entries, pixels, bad, str(path))


@contextmanager
def _file_reader():
    yield lambda file: Path(file).read_bytes()


def _load_kaggle_folder(path: Path, skip_unreadable: bool, workers: int) -> ImageSet:
    names = [p.relative_to(path).as_posix() for p in path.glob("*/*/*") if p.is_file()]
    entries = _kaggle_entries(names, str(path))
    full = [str(path / m) for m in entries["member"]]
    pixels, bad = _decode_all(_file_reader, full, str(path), skip_unreadable, workers)
    return _kaggle_imageset(entries, pixels, bad, str(path))


# ----------------------------------------------------------------------------- CSV layouts
def _load_csv(path: Path, skip_unreadable: bool = False, workers: int = 1) -> ImageSet:
    return read_fer_csv(path, workers=workers)


def _load_torchvision(path: Path, skip_unreadable: bool, workers: int) -> ImageSet:
    return _load_torchvision_inner(path / "fer2013", skip_unreadable, workers)


def _load_torchvision_inner(base: Path, skip_unreadable: bool = False, workers: int = 1) -> ImageSet:
    for name in CSV_NAMES:
        if (base / name).is_file():
            return _load_csv(base / name, workers=workers)
    missing = [name for name in ("train.csv", "test.csv") if not (base / name).is_file()]
    if missing:
        raise DataError(
            f"{base} holds none of fer2013.csv, icml_face_data.csv and lacks {' and '.join(missing)}: put the "
            "challenge's fer2013.csv there (it is the only form with test labels), or torchvision's "
            "train.csv and test.csv."
        )
    train = read_fer_csv(base / "train.csv", default_split="train", workers=workers)
    # torchvision's test.csv has pixels only (no emotion column): label -1, split "test".
    test = read_fer_csv(base / "test.csv", default_split="test", labelled=None, workers=workers)
    return ImageSet(
        name="fer2013",
        label_set_name="fer7",
        ids=np.concatenate([["train_" + i for i in train.ids], ["test_" + i for i in test.ids]]),
        splits=np.concatenate([train.splits, test.splits]),
        labels=np.concatenate([train.labels, test.labels]),
        pixels=np.concatenate([train.pixels, test.pixels]),
        notes=(f"loaded from {base}" + ("; test.csv has no labels (label -1, split 'test')"
                                        if (test.labels < 0).all() else ""),),
    )


_LOADERS = {
    "kaggle_zip": _load_kaggle_zip,
    "kaggle_folder": _load_kaggle_folder,
    "fer_csv": _load_csv,
    "icml_csv": _load_csv,
    "torchvision": _load_torchvision,
    "torchvision_inner": _load_torchvision_inner,
}
