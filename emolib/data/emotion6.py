"""Emotion6 (Peng et al., CVPR 2015): 1,980 Flickr images, 330 per emotion keyword.

Layout (zip or unpacked folder): ``Emotion6/images/<class>/<n>.jpg`` and
``Emotion6/ground_truth.txt`` (tab-separated: image, valence, arousal on 1-9, then the
share of user-study votes for anger, disgust, fear, joy, sadness, surprise, neutral).
The label is the folder (the search keyword), as in the seed study; the vote shares are
kept as soft labels. Images are read on demand, once checked to decode at load (the result
cached, ``emolib.data.cache``). A cell that is no number, a byte that is not UTF-8, an image
on two lines or a line without votes is a DataError naming the file (the zip member inside
a zip) and the line.
"""

from __future__ import annotations

import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from emolib.data.checks import decode_utf8, keep_readable, read_utf8, repeated_keys
from emolib.data.imageset import ZIP_SEP, DataError, ImageSet
from emolib.labels import EMOTION6_DISTRIBUTION, get_label_set

EMOTION6 = get_label_set("emotion6")


def _find_root(names: list[str], where: str) -> str:
    for name in names:
        parts = name.split("/")
        if parts[-1] == "ground_truth.txt" and "__MACOSX" not in parts:  # not a Mac's ._ metadata copy
            return name[: -len("ground_truth.txt")]
    raise DataError(
        f"{where}: no ground_truth.txt found. Expected the Emotion6 layout "
        "Emotion6/images/<class>/<n>.jpg with Emotion6/ground_truth.txt (Cornell's download)."
    )


COLUMNS = ("image", "valence", "arousal", *EMOTION6_DISTRIBUTION)  # ground_truth.txt, in order
FIX_LINE = "copy that line from Cornell's ground_truth.txt (or download Emotion6 again)"


def _number(cell: str, where: str, line: int, column: int) -> float:
    """The number in a cell; DataError naming the line and column when it is none."""
    try:
        value = float(cell)
    except ValueError:
        value = np.nan
    if not np.isfinite(value):
        raise DataError(f"{where}, line {line}, column {column + 1} ({COLUMNS[column]}): {cell!r} is not a number; "
                        f"{FIX_LINE}")
    return value


def _parse_ground_truth(text: str, where: str) -> pd.DataFrame:
    """ground_truth.txt as one row per image: ``COLUMNS`` and ``line`` (its line in the file)."""
    lines = text.splitlines()
    header = lines[0].split("\t") if lines else []
    if len(header) != len(COLUMNS):
        raise DataError(
            f"{where}: ground_truth.txt must have 10 tab-separated columns (image, valence, "
            f"arousal, 7 vote shares); found {len(header)}"
        )
    rows = []
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != len(COLUMNS):
            raise DataError(f"{where}, line {number}: {len(cells)} tab-separated fields, not 10 (image, valence, "
                            f"arousal, 7 vote shares); {FIX_LINE}")
        rows.append([cells[0], *(_number(c, where, number, k) for k, c in enumerate(cells[1:], start=1)), number])
    return pd.DataFrame(rows, columns=[*COLUMNS, "line"])


def _check_rows(truth: pd.DataFrame, where: str) -> None:
    """DataError for an image on two lines, or a line whose votes are all zero."""
    repeats = repeated_keys(truth["image"])
    if repeats:
        image, at = next(iter(repeats.items()))
        lines = " and ".join(str(truth["line"][i]) for i in at)
        raise DataError(f"{where}: {image} is on lines {lines} ({len(truth)} lines for {truth['image'].nunique()} "
                        f"images); each image has one line: delete the repeated line (keep the one that matches "
                        "Cornell's ground_truth.txt)")
    no_votes = truth[truth[list(EMOTION6_DISTRIBUTION)].sum(axis=1) <= 0]
    if len(no_votes):
        first = no_votes.iloc[0]
        more = f" (and {len(no_votes) - 1} more lines)" if len(no_votes) > 1 else ""
        raise DataError(f"{where}, line {first['line']} ({first['image']}): all 7 vote shares are 0, so the image "
                        f"has no vote distribution{more}; {FIX_LINE}, or delete the line to leave the image out")


def _read_zip(path: Path) -> tuple[str, str, Callable[[str], str], Callable[[str], bool]]:
    """(ground_truth text, where it is, source of an image, whether an image exists) of a zip."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            root = _find_root(names, str(path))
            where = f"{path}{ZIP_SEP}{root}ground_truth.txt"
            text = decode_utf8(zf.read(root + "ground_truth.txt"), where)
    except zipfile.BadZipFile as err:
        raise DataError(
            f"{path} is not a zip archive ({err}). Point data.emotion6 at Cornell's Emotion6.zip (download "
            "it again if it is damaged) or at the unpacked folder holding Emotion6/ground_truth.txt."
        ) from err
    images = set(names)
    return (text, where, lambda rel: f"{path}{ZIP_SEP}{root}images/{rel}",
            lambda rel: f"{root}images/{rel}" in images)


def _read_folder(path: Path) -> tuple[str, str, Callable[[str], str], Callable[[str], bool]]:
    """``_read_zip`` for the unpacked folder."""
    base = path / "Emotion6" if (path / "Emotion6").is_dir() else path
    gt = base / "ground_truth.txt"
    if not gt.is_file():
        _find_root([], str(path))
    return (read_utf8(gt), str(gt), lambda rel: str(base / "images" / rel),
            lambda rel: (base / "images" / rel).is_file())


def load_emotion6(path: str | Path, skip_unreadable: bool = False) -> ImageSet:
    """Emotion6 from its zip or unpacked folder: labels from folders, votes, valence, arousal.
    Every image is checked to decode (``checks.keep_readable``): an unreadable one is a
    DataError naming it, or with ``skip_unreadable`` left out and listed in ``notes``."""
    path = Path(path)
    if not path.exists():
        raise DataError(
            f"Emotion6 not found at {path}. Request it from Cornell (Peng et al., CVPR 2015), "
            "put Emotion6.zip (or the unpacked Emotion6/ folder) there, or set data.emotion6."
        )
    text, where, source_of, exists = _read_zip(path) if path.is_file() else _read_folder(path)
    truth = _parse_ground_truth(text, where)
    _check_rows(truth, where)
    classes = truth["image"].str.split("/").str[0]
    unknown = sorted(set(classes) - set(EMOTION6.names))
    if unknown:
        raise DataError(f"{path}: unknown Emotion6 class folder(s) {unknown}; expected {EMOTION6.names}")
    missing = [f"line {n}: {rel}" for rel, n in zip(truth["image"], truth["line"], strict=True) if not exists(rel)]
    if missing:
        raise DataError(f"{path}: {len(missing)} images listed in ground_truth.txt are missing, e.g. {missing[:3]}")
    votes = truth[list(EMOTION6_DISTRIBUTION)].to_numpy(dtype=np.float32)
    image_set = ImageSet(
        name="emotion6",
        label_set_name="emotion6",
        ids=truth["image"].str.replace(".jpg", "", regex=False).to_numpy(dtype=object),
        splits=np.array(["test"] * len(truth), dtype=object),
        labels=np.array([EMOTION6.index(c) for c in classes], dtype=np.int64),
        sources=tuple(source_of(rel) for rel in truth["image"]),
        soft_labels=votes / votes.sum(axis=1, keepdims=True),
        soft_label_names=EMOTION6_DISTRIBUTION,
        valence=truth["valence"].to_numpy(dtype=np.float32),
        arousal=truth["arousal"].to_numpy(dtype=np.float32),
        notes=(f"loaded from {path}",),
    )
    return keep_readable(image_set, "emotion6", path, skip_unreadable)
