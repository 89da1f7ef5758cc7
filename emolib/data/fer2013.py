"""FER-2013 in every form a user may have it, returned as one ImageSet in canonical order.

Layouts (``detect_fer_layout``):

- ``kaggle_zip``: the Kaggle ``archive.zip`` (``train/<class>/*.jpg``, ``test/<class>/*.jpg``,
  possibly under one top folder), read straight from the zip;
- ``kaggle_folder``: the same, unpacked;
- ``fer_csv``: the challenge's ``fer2013.csv`` (``emotion,pixels,Usage``);
- ``icml_csv``: ``icml_face_data.csv`` (``emotion, Usage, pixels``: names with a leading space);
- ``torchvision``: a root holding ``fer2013/`` with one of the CSVs above, or
  ``train.csv`` + ``test.csv`` (whose test rows carry no labels).

Labels always index ``fer7`` = fer2013.csv codes (0=angry ... 6=neutral), whatever the source:
the Kaggle folder order is alphabetical, so folder names are mapped by name, never by position.
Splits: ``train``, ``public_test``, ``private_test`` (Kaggle file names keep the original usage).
"""

from __future__ import annotations

import io
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from PIL import Image

from emolib.data.imageset import ZIP_SEP, DataError, ImageSet
from emolib.labels import get_label_set

FER7 = get_label_set("fer7")
KAGGLE_CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
USAGE_TO_SPLIT = {"Training": "train", "PublicTest": "public_test", "PrivateTest": "private_test"}
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
FER_SIZE = 48


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
        header = path.open().readline()
        return "icml_csv" if " pixels" in header.split(",") or " pixels\n" in header else "fer_csv"
    if path.is_dir():
        if (path / "train").is_dir() and (path / "test").is_dir():
            return "kaggle_folder"
        if (path / "fer2013").is_dir():
            return "torchvision"
        if (path / "fer2013.csv").is_file() or (path / "icml_face_data.csv").is_file():
            return "torchvision_inner"
    raise DataError(
        f"{path} is not a FER-2013 layout emolib knows. Expected the Kaggle zip or folder "
        "(train/<class>/*.jpg, test/<class>/*.jpg), fer2013.csv, icml_face_data.csv, or a "
        "torchvision root holding fer2013/."
    )


def load_fer2013(path: str | Path, skip_unreadable: bool = False, workers: int = 1) -> ImageSet:
    """Load FER-2013 from any supported layout into memory: pixels (n, 48, 48) uint8.

    ``skip_unreadable``: images that cannot be decoded are left out and listed in
    ``ImageSet.meta.attrs["unreadable"]`` (and ``notes``) instead of raising.
    """
    path = Path(path)
    layout = detect_fer_layout(path)
    return _LOADERS[layout](path, skip_unreadable=skip_unreadable, workers=workers)


# ----------------------------------------------------------------------------- Kaggle layout
def _split_from_filename(name: str) -> str:
    stem = name.rsplit("/", 1)[-1]
    for usage, split in USAGE_TO_SPLIT.items():
        if stem.startswith(usage + "_"):
            return split
    return ""


def _kaggle_entries(names: list[str], where: str) -> pd.DataFrame:
    """Rows (member, folder, class, split) for image files under train/ and test/."""
    rows = []
    for name in names:
        parts = name.split("/")
        if not name.lower().endswith(IMAGE_SUFFIXES) or len(parts) < 3:
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
    return frame.sort_values("member", kind="stable").reset_index(drop=True)


def _decode_gray(data: bytes, where: str) -> np.ndarray:
    # OpenCV decodes these small JPEGs 5x faster than Pillow, to identical pixels
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    if arr is None:
        with Image.open(io.BytesIO(data)) as img:  # Pillow names what is wrong with the file
            arr = np.asarray(img.convert("L"))
    if arr.shape != (FER_SIZE, FER_SIZE):
        raise DataError(f"{where} is {arr.shape[1]}x{arr.shape[0]}, FER-2013 images are 48x48")
    return arr


def _decode_all(read_bytes, names: list[str], where: str, skip: bool, workers: int):
    """Decode every named image into one (n, 48, 48) array using ``workers`` threads."""
    pixels = np.zeros((len(names), FER_SIZE, FER_SIZE), dtype=np.uint8)
    bad: dict[int, str] = {}

    def work(chunk: np.ndarray) -> None:
        reader = read_bytes()
        for i in chunk:
            source = f"{where}{ZIP_SEP}{names[i]}" if where.endswith(".zip") else names[i]
            try:
                pixels[i] = _decode_gray(reader(names[i]), source)
            except Exception as err:
                if not skip:
                    raise DataError(
                        f"cannot read FER-2013 image {source}: {err}. Replace it with an intact "
                        "copy, or set data.skip_unreadable: true to list it in the audit instead."
                    ) from err
                bad[int(i)] = f"{source}: {err}"

    chunks = np.array_split(np.arange(len(names)), max(1, workers))
    with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
        list(pool.map(work, chunks))  # list() re-raises a worker's error
    return pixels, bad


def _kaggle_imageset(entries: pd.DataFrame, pixels, bad, origin: str) -> ImageSet:
    keep = np.array([i not in bad for i in range(len(entries))])
    entries, pixels = entries[keep].reset_index(drop=True), pixels[keep]
    labels = np.array([FER7.index(c) for c in entries["kaggle_class"]], dtype=np.int64)
    meta = pd.DataFrame({"kaggle_path": ["/".join(m.split("/")[-3:]) for m in entries["member"]]})
    notes = tuple(f"unreadable, skipped: {msg}" for msg in bad.values())
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
    csvs = [n for n in names if Path(n).name in ("fer2013.csv", "icml_face_data.csv")]
    if csvs and not any(n.lower().endswith(IMAGE_SUFFIXES) for n in names):
        with zipfile.ZipFile(path) as zf:
            return _imageset_from_csv(pd.read_csv(zf.open(csvs[0])), f"{path}{ZIP_SEP}{csvs[0]}")
    entries = _kaggle_entries(names, str(path))

    def reader_factory():
        zf = zipfile.ZipFile(path)  # one handle per thread: ZipFile is not thread-safe
        return zf.read

    pixels, bad = _decode_all(reader_factory, list(entries["member"]), str(path), skip_unreadable, workers)
    return _kaggle_imageset(entries, pixels, bad, str(path))


def _load_kaggle_folder(path: Path, skip_unreadable: bool, workers: int) -> ImageSet:
    names = [p.relative_to(path).as_posix() for p in path.glob("*/*/*") if p.is_file()]
    entries = _kaggle_entries(names, str(path))
    full = [str(path / m) for m in entries["member"]]
    pixels, bad = _decode_all(lambda: lambda f: Path(f).read_bytes(), full, str(path), skip_unreadable, workers)
    return _kaggle_imageset(entries, pixels, bad, str(path))


# ----------------------------------------------------------------------------- CSV layouts
def _read_fer_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise DataError(f"{path} is not a readable CSV ({err})") from err


def _imageset_from_csv(frame: pd.DataFrame, where: str, default_split: str | None = None) -> ImageSet:
    frame = frame.rename(columns=lambda c: c.strip())
    needed = {"pixels"} | ({"Usage"} if default_split is None else set())
    missing = needed - set(frame.columns)
    if missing:
        raise DataError(
            f"{where}: missing column(s) {sorted(missing)}; found {list(frame.columns)}. "
            "fer2013.csv has emotion,pixels,Usage; icml_face_data.csv has emotion, Usage, pixels."
        )
    flat = np.fromstring(" ".join(frame["pixels"].astype(str)), dtype=np.int64, sep=" ")
    if flat.size != len(frame) * FER_SIZE * FER_SIZE or flat.min(initial=0) < 0 or flat.max(initial=0) > 255:
        raise DataError(
            f"{where}: pixel strings must hold 2304 values 0-255 per row (48x48); they do not"
        )
    usage = frame["Usage"] if default_split is None else pd.Series([default_split] * len(frame))
    splits = usage.map(lambda u: USAGE_TO_SPLIT.get(u, u))
    unknown = set(splits) - {"train", "public_test", "private_test", "test"}
    if unknown:
        raise DataError(f"{where}: unknown Usage value(s) {sorted(unknown)}")
    labels = frame["emotion"].to_numpy(dtype=np.int64) if "emotion" in frame else -np.ones(len(frame), np.int64)
    if labels.max(initial=0) > 6 or labels.min(initial=-1) < -1:
        raise DataError(f"{where}: emotion codes must be 0-6 (0=angry ... 6=neutral)")
    return ImageSet(
        name="fer2013",
        label_set_name="fer7",
        ids=np.array([f"row_{i:05d}" for i in range(len(frame))], dtype=object),
        splits=splits.to_numpy(dtype=object),
        labels=labels,
        pixels=flat.astype(np.uint8).reshape(-1, FER_SIZE, FER_SIZE),
        meta=pd.DataFrame({"fer2013_row": np.arange(len(frame))}),
        notes=(f"loaded from {where}",),
    )


def _load_csv(path: Path, skip_unreadable: bool = False, workers: int = 1) -> ImageSet:
    return _imageset_from_csv(_read_fer_csv(path), str(path))


def _load_torchvision(path: Path, skip_unreadable: bool, workers: int) -> ImageSet:
    return _load_torchvision_inner(path / "fer2013", skip_unreadable, workers)


def _load_torchvision_inner(base: Path, skip_unreadable: bool = False, workers: int = 1) -> ImageSet:
    for name in ("fer2013.csv", "icml_face_data.csv"):
        if (base / name).is_file():
            return _load_csv(base / name)
    if not (base / "train.csv").is_file():
        raise DataError(
            f"{base} holds none of fer2013.csv, icml_face_data.csv, train.csv: put the "
            "challenge's fer2013.csv there (it is the only form with test labels)."
        )
    train = _imageset_from_csv(_read_fer_csv(base / "train.csv"), str(base / "train.csv"), "train")
    if not (base / "test.csv").is_file():
        return train
    # torchvision's test.csv has pixels only: its images carry label -1 and split "test".
    test = _imageset_from_csv(_read_fer_csv(base / "test.csv"), str(base / "test.csv"), "test")
    return ImageSet(
        name="fer2013",
        label_set_name="fer7",
        ids=np.concatenate([["train_" + i for i in train.ids], ["test_" + i for i in test.ids]]),
        splits=np.concatenate([train.splits, test.splits]),
        labels=np.concatenate([train.labels, test.labels]),
        pixels=np.concatenate([train.pixels, test.pixels]),
        notes=(f"loaded from {base}; test.csv has no labels (label -1, split 'test')",),
    )


_LOADERS = {
    "kaggle_zip": _load_kaggle_zip,
    "kaggle_folder": _load_kaggle_folder,
    "fer_csv": _load_csv,
    "icml_csv": _load_csv,
    "torchvision": _load_torchvision,
    "torchvision_inner": _load_torchvision_inner,
}
