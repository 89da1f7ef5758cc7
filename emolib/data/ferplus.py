"""FER+ (Barsoum et al., ICMI 2016): ten annotators' votes per FER-2013 image.

``fer2013new.csv`` has one row per ``fer2013.csv`` row, in the same order. Images in the
Kaggle layout are joined through ``kaggle_to_ferplus.csv`` (matched by pixels); images in a
CSV layout are joined by row. Soft labels are the vote shares over the eight emotions;
the majority label follows ``rule``:

- ``plurality``: the emotion with most votes (ties: first in FER+ column order), -1 when no
  emotion got a vote. This is the ``gt`` of the recorded GPT-4V FER+ benchmark.
- ``ferplus``: Microsoft's "majority" mode: single votes are dropped as outliers, the top
  class must hold more than half of the remaining votes (unknown/NF included), else -1.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from emolib.data.imageset import DataError, ImageSet
from emolib.labels import get_label_set

FERPLUS8 = get_label_set("ferplus8")
VOTE_COLUMNS = FERPLUS8.names + ("unknown", "NF")
VOTES_FILE = "fer2013new.csv"
LINK_FILE = "kaggle_to_ferplus.csv"


def _read_checked(path: Path, columns: tuple[str, ...], fix: str) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(f"{path} not found. {fix}")
    frame = pd.read_csv(path)
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {missing}; found {list(frame.columns)}. {fix}")
    return frame


def load_ferplus_votes(ferplus_dir: str | Path) -> pd.DataFrame:
    """``fer2013new.csv`` as a frame indexed by fer2013.csv row: Usage, Image name, votes."""
    frame = _read_checked(
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


def ferplus_rows(image_set: ImageSet, ferplus_dir: str | Path) -> np.ndarray:
    """fer2013.csv row of each image (-1: no match), from the layout's own key."""
    meta = image_set.meta
    if meta is not None and "fer2013_row" in meta:
        return meta["fer2013_row"].to_numpy(dtype=np.int64)
    if meta is not None and "kaggle_path" in meta:
        link = _read_checked(
            Path(ferplus_dir) / LINK_FILE,
            ("kaggle_path", "ferplus_png", "fer2013_row"),
            "It ships with emolib's data instructions (README: FER+ labels).",
        )
        rows = link.set_index("kaggle_path")["fer2013_row"]
        return meta["kaggle_path"].map(rows).fillna(-1).to_numpy(dtype=np.int64)
    raise DataError(f"{image_set.name}: no fer2013_row or kaggle_path to join FER+ labels by")


def attach_ferplus(image_set: ImageSet, ferplus_dir: str | Path,
                   rule: Literal["plurality", "ferplus"] = "plurality") -> ImageSet:
    """Add FER+ votes to a FER-2013 ImageSet: soft labels (n, 8) vote shares over ferplus8
    (NaN rows where FER+ has no label) and meta columns ``ferplus_name``,
    ``ferplus_label`` (majority index, -1 none) and ``ferplus_votes_total``."""
    votes = load_ferplus_votes(ferplus_dir)
    rows = ferplus_rows(image_set, ferplus_dir)
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
    return replace(image_set, soft_labels=soft, soft_label_names=FERPLUS8.names, meta=meta)
