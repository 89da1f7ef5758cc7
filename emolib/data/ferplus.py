"""FER+ (Barsoum et al., ICMI 2016): ten annotators' votes per FER-2013 image.

``fer2013new.csv`` has one row per ``fer2013.csv`` row, in the same order. Images in the
Kaggle layout are joined through ``kaggle_to_ferplus.csv`` (matched by pixels): the FER+
folder's own copy if it has one, else the copy shipped with emolib
(``emolib/data/kaggle_to_ferplus.csv.gz``: names and row numbers only, no pixels), so a
user with only the Kaggle zip and ``fer2013new.csv`` gets FER+ labels.
``build_kaggle_to_ferplus`` rebuilds that map from a user's own ``fer2013.csv`` and Kaggle
zip. Images in a CSV layout are joined by row. Soft labels are the vote shares over the
eight emotions; the majority label follows ``rule``:

- ``plurality``: the emotion with most votes (ties: first in FER+ column order), -1 when no
  emotion got a vote. This is the ``gt`` of the recorded GPT-4V FER+ benchmark.
- ``ferplus``: Microsoft's "majority" mode: single votes are dropped as outliers, the top
  class must hold more than half of the remaining votes (unknown/NF included), else -1.
"""

from __future__ import annotations

import io
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from emolib.data.checks import read_utf8
from emolib.data.fer2013 import load_fer2013
from emolib.data.fer_csv import SPLIT_TO_USAGE
from emolib.data.imageset import DataError, ImageSet
from emolib.labels import get_label_set

FERPLUS8 = get_label_set("ferplus8")
VOTE_COLUMNS = FERPLUS8.names + ("unknown", "NF")
VOTES_FILE = "fer2013new.csv"
LINK_FILE = "kaggle_to_ferplus.csv"
SHIPPED_LINK = "kaggle_to_ferplus.csv.gz"  # package data of emolib.data
LINK_COLUMNS = ("usage", "kaggle_path", "kaggle_class", "ferplus_png", "fer2013_row", "mae", "n_candidates")


def read_checked_csv(path: Path, columns: tuple[str, ...], fix: str) -> pd.DataFrame:
    """A CSV holding at least ``columns``; else a DataError naming the file, what is wrong
    (not found, unreadable, the missing, expected and found columns) and ``fix``."""
    if not path.is_file():
        raise DataError(f"{path} not found. {fix}")
    # a byte that is not UTF-8: DataError naming its line (a compressed .csv.gz goes to pandas as it is)
    source = io.StringIO(read_utf8(path)) if path.suffix.lower() == ".csv" else path
    try:
        frame = pd.read_csv(source)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(f"{path} is not a readable CSV ({err}); expected columns {list(columns)}. {fix}") from err
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; expected {list(columns)}, "
                        f"found {list(frame.columns)}. {fix}")
    return frame


def load_ferplus_votes(ferplus_dir: str | Path) -> pd.DataFrame:
    """``fer2013new.csv`` as a frame indexed by fer2013.csv row: Usage, Image name, votes."""
    frame = read_checked_csv(
        Path(ferplus_dir) / VOTES_FILE,
        ("Usage", "Image name") + VOTE_COLUMNS,
        "Get fer2013new.csv from the FER+ repository (microsoft/FERPlus).",
    )
    frame.index.name = "fer2013_row"
    return frame


def majority_labels(votes: np.ndarray, rule: Literal["plurality", "ferplus"] = "plurality") -> np.ndarray:
    """(n, 10) votes in VOTE_COLUMNS order -> (n,) index into ferplus8, -1 when none."""
    votes = np.asarray(votes, dtype=float)
    if rule == "plurality":
        emotions = votes[:, :8]
        return np.where(emotions.max(axis=1) > 0, emotions.argmax(axis=1), -1)
    kept = np.where(votes <= 1, 0.0, votes)
    top = kept.argmax(axis=1)
    is_majority = kept.max(axis=1) > 0.5 * kept.sum(axis=1)
    return np.where(is_majority & (top < 8), top, -1)


def load_kaggle_link(ferplus_dir: str | Path | None = None) -> tuple[pd.DataFrame, str]:
    """The Kaggle-JPEG -> FER+ map (columns LINK_COLUMNS) and where it came from:
    ``<ferplus_dir>/kaggle_to_ferplus.csv`` if present, else the copy shipped with emolib."""
    own = Path(ferplus_dir) / LINK_FILE if ferplus_dir is not None else None
    fix = (f"Delete it to use the map shipped with emolib, or rebuild it with "
           f"emolib.data.ferplus.build_kaggle_to_ferplus and save it as {LINK_FILE}.")
    if own is not None and own.is_file():
        return read_checked_csv(own, LINK_COLUMNS, fix), str(own)
    with resources.as_file(resources.files("emolib.data") / SHIPPED_LINK) as shipped:
        return read_checked_csv(shipped, LINK_COLUMNS, "Reinstall emolib."), f"{SHIPPED_LINK} shipped with emolib"


def ferplus_rows(image_set: ImageSet, ferplus_dir: str | Path) -> np.ndarray:
    """fer2013.csv row of each image (-1: no match), from the layout's own key."""
    return _join_rows(image_set, ferplus_dir)[0]


def _join_rows(image_set: ImageSet, ferplus_dir: str | Path) -> tuple[np.ndarray, str]:
    meta = image_set.meta
    if meta is not None and "fer2013_row" in meta:
        return meta["fer2013_row"].to_numpy(dtype=np.int64), "fer2013.csv row numbers"
    if meta is not None and "kaggle_path" in meta:
        link, source = load_kaggle_link(ferplus_dir)
        rows = link.set_index("kaggle_path")["fer2013_row"]
        return meta["kaggle_path"].map(rows).fillna(-1).to_numpy(dtype=np.int64), source
    raise DataError(f"{image_set.name}: no fer2013_row or kaggle_path to join FER+ labels by")


def attach_ferplus(image_set: ImageSet, ferplus_dir: str | Path,
                   rule: Literal["plurality", "ferplus"] = "plurality") -> ImageSet:
    """Add FER+ votes to a FER-2013 ImageSet: soft labels (n, 8) vote shares over ferplus8
    (NaN rows where FER+ has no label) and meta columns ``ferplus_name``,
    ``ferplus_label`` (majority index, -1 none) and ``ferplus_votes_total``."""
    votes = load_ferplus_votes(ferplus_dir)
    rows, source = _join_rows(image_set, ferplus_dir)
    known = (rows >= 0) & (rows < len(votes))
    safe = np.where(known, rows, 0)
    names = votes["Image name"].to_numpy(dtype=object)[safe]
    known &= pd.notna(names)
    raw = votes[list(VOTE_COLUMNS)].to_numpy(dtype=float)[safe]
    raw[~known] = np.nan
    emotion_votes = raw[:, :8]
    totals = emotion_votes.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        soft = np.where(totals > 0, emotion_votes / totals, np.nan).astype(np.float32)
    labels = np.where(known, majority_labels(np.nan_to_num(raw), rule), -1)
    meta = (image_set.meta.copy() if image_set.meta is not None else pd.DataFrame(index=range(len(image_set))))
    meta["fer2013_row"] = rows
    meta["ferplus_name"] = np.where(known, names, None)
    meta["ferplus_label"] = labels
    meta["ferplus_votes_total"] = np.nansum(raw, axis=1)
    meta.attrs = dict(image_set.meta.attrs) if image_set.meta is not None else {}
    note = f"FER+ votes joined through {source}: {int((~known).sum())} images without a FER+ label"
    return replace(image_set, soft_labels=soft, soft_label_names=FERPLUS8.names, meta=meta,
                   notes=image_set.notes + (note,))


# ----------------------------------------------------------------------------- rebuilding the map
def _block_means(pixels: np.ndarray, k: int) -> np.ndarray:
    """(n, 48, 48) -> (n, k*k) means of a k x k grid of blocks (float32)."""
    size = 48 // k
    return pixels.reshape(len(pixels), k, size, k, size).mean(axis=(2, 4), dtype=np.float32).reshape(len(pixels), k * k)


def _candidates(jpegs: np.ndarray, rows: np.ndarray, max_mae: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """For each JPEG (k, 48, 48): the positions in ``rows`` (c, 48, 48) within ``max_mae``
    mean absolute difference, and those differences. Exact: two lower bounds on the MAE
    (the difference of the image means, the mean difference of the quadrant means) prune
    the search before the full comparison."""
    order = np.argsort(rows.mean(axis=(1, 2)), kind="stable")
    sorted_means = rows.mean(axis=(1, 2))[order]
    sorted_quadrants = _block_means(rows, 2)[order]
    slack = max_mae + 1e-4  # float32 rounding of the bounds
    out = []
    for image, mean, quadrants in zip(jpegs, jpegs.mean(axis=(1, 2)), _block_means(jpegs, 2), strict=True):
        lo, hi = np.searchsorted(sorted_means, mean - slack), np.searchsorted(sorted_means, mean + slack, "right")
        near = lo + np.flatnonzero(np.abs(sorted_quadrants[lo:hi] - quadrants).mean(axis=1) <= slack)
        mae = np.abs(rows[order[near]].astype(np.int16) - image).mean(axis=(1, 2))
        out.append((order[near][mae <= max_mae], mae[mae <= max_mae]))
    return out


def build_kaggle_to_ferplus(fer2013_csv: str | Path | ImageSet, kaggle: str | Path | ImageSet,
                            ferplus_dir: str | Path, max_mae: float = 1.6, workers: int = 1) -> pd.DataFrame:
    """Rebuild ``kaggle_to_ferplus.csv`` from a user's own ``fer2013.csv`` (or
    ``icml_face_data.csv``) and Kaggle zip or folder (paths, or the ImageSets loaded from them),
    by matching pixels within each usage. Save it as ``<ferplus_dir>/kaggle_to_ferplus.csv``
    (``frame.to_csv(path, index=False)``) and ``attach_ferplus`` uses it.

    One row per Kaggle image (columns LINK_COLUMNS): ``n_candidates`` counts the fer2013.csv
    rows of the same usage within ``max_mae`` grey levels (the JPEGs are lossy re-encodings:
    at most 1.6); >1 means pixel-identical (or near-identical) duplicates. Rows are paired
    one to one, best MAE first; ties (identical images) pair Kaggle paths in sorted order with
    rows in ascending order, so the pairing among duplicates is arbitrary but reproducible.
    A Kaggle image left without a row gets empty ``fer2013_row``/``mae``. Unlike the shipped
    map (matched to FER+'s own images, which lack the 173 rows FER+ dropped and four rows whose
    FER+ name repeats), every matched image gets its fer2013.csv row; ``ferplus_png`` is empty
    where FER+ gives that row no name.
    """
    table = fer2013_csv if isinstance(fer2013_csv, ImageSet) else load_fer2013(fer2013_csv, workers=workers)
    faces = kaggle if isinstance(kaggle, ImageSet) else load_fer2013(kaggle, workers=workers)
    if table.meta is None or "fer2013_row" not in table.meta:
        raise DataError(f"{fer2013_csv}: not a fer2013.csv / icml_face_data.csv (no row numbers to link to)")
    if faces.meta is None or "kaggle_path" not in faces.meta:
        raise DataError(f"{kaggle}: not the Kaggle FER-2013 zip or folder (no kaggle_path per image)")
    names = load_ferplus_votes(ferplus_dir)["Image name"].to_numpy(dtype=object)
    pairs, counts = [], np.zeros(len(faces), dtype=np.int64)
    for split in SPLIT_TO_USAGE:
        jpeg_at, row_at = np.flatnonzero(faces.splits == split), np.flatnonzero(table.splits == split)
        for j, (found, mae) in zip(jpeg_at, _candidates(faces.pixels[jpeg_at], table.pixels[row_at], max_mae),
                                   strict=True):
            counts[j] = len(found)
            pairs += [(m, faces.meta["kaggle_path"].iat[j], r, j) for r, m in zip(row_at[found], mae, strict=True)]
    row_of, mae_of, used = np.full(len(faces), -1), np.full(len(faces), np.nan), set()
    for mae, _, row, j in sorted(pairs):
        if row_of[j] < 0 and row not in used:
            row_of[j], mae_of[j] = row, mae
            used.add(row)
    fer_row = [int(table.meta["fer2013_row"].iat[k]) if k >= 0 else None for k in row_of]
    ferplus_png = [names[r] if r is not None and r < len(names) and isinstance(names[r], str) else None
                   for r in fer_row]
    frame = pd.DataFrame({
        "usage": [SPLIT_TO_USAGE[s] for s in faces.splits],
        "kaggle_path": faces.meta["kaggle_path"].to_numpy(dtype=object),
        "kaggle_class": [p.split("/")[-2] for p in faces.meta["kaggle_path"]],
        "ferplus_png": ferplus_png,
        "fer2013_row": pd.array(fer_row, dtype="Int64"),
        "mae": np.round(mae_of, 3),
        "n_candidates": counts,
    })
    frame["_order"] = frame["usage"].map(list(SPLIT_TO_USAGE.values()).index)
    frame = frame.sort_values(["_order", "fer2013_row", "kaggle_path"], na_position="last", kind="stable")
    return frame.drop(columns="_order").reset_index(drop=True)
