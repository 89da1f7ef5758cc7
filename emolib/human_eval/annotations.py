"""Annotation files: one CSV per annotator, rewritten atomically after every answer.

Columns (``COLUMNS``): ``item_id, annotator, choice, verdict, note, answered_at, wall_s,
model_is_a``. ``choice`` is what the annotator saw and picked (``A``, ``B``, ``both``,
``neither``); ``verdict`` is that choice mapped back through the blinding: ``model`` (sides
with the model's answer), ``label`` (sides with the data set's label), ``both``, ``neither``;
``wall_s`` is how long the annotator took on the item (wall-clock seconds, like every duration
in emolib: see the README, "How the package is laid out").
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from emolib.config import Profile
from emolib.paths import project_root
from emolib.store import atomic_write

CHOICES = ("A", "B", "both", "neither")
VERDICTS = ("model", "label", "both", "neither")
COLUMNS = (
    "item_id",
    "annotator",
    "choice",
    "verdict",
    "note",
    "answered_at",
    "wall_s",
    "model_is_a",
)


LEGACY_NAMES = {"seconds": "wall_s"}  # files written before 2026-12-08 name the answer time "seconds"


def annotations_dir(profile: Profile, sample_dir: str | Path) -> Path:
    """``human_eval.annotations_dir`` (absolute, or relative to the project) if set, else
    ``<sample folder>/annotations``."""
    configured = profile.human_eval.annotations_dir
    if configured is None:
        return Path(sample_dir) / "annotations"
    path = Path(configured).expanduser()
    return path if path.is_absolute() else project_root() / path


def annotation_path(directory: str | Path, annotator: str) -> Path:
    """``<directory>/<annotator>.csv``; the name is reduced to letters, digits, ``-_.``."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", annotator.strip()) or "annotator"
    return Path(directory) / f"{safe}.csv"


def verdict_of(choice: str, model_is_a: bool) -> str:
    """Map a blinded choice back: A/B -> model or label, both/neither unchanged."""
    if choice not in CHOICES:
        raise ValueError(f"choice {choice!r} is not one of {CHOICES}")
    if choice == "A":
        return "model" if model_is_a else "label"
    if choice == "B":
        return "label" if model_is_a else "model"
    return choice


def empty_annotations() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in COLUMNS})


def read_annotations(path: str | Path) -> pd.DataFrame:
    """One annotator's file (empty table if it does not exist), notes as strings."""
    path = Path(path)
    if not path.is_file():
        return empty_annotations()
    frame = pd.read_csv(
        path, dtype={"item_id": str, "note": str, "choice": str}, keep_default_na=False
    ).rename(columns=LEGACY_NAMES)
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing}; an annotation file has {list(COLUMNS)}"
        )
    return frame[list(COLUMNS)]


def write_annotations(path: str | Path, frame: pd.DataFrame) -> Path:
    """Write one annotator's answers atomically (temp file + rename): a crash keeps the old
    file whole."""
    frame = frame[list(COLUMNS)]
    return atomic_write(Path(path), lambda tmp: frame.to_csv(tmp, index=False))


def load_all_annotations(directory: str | Path) -> pd.DataFrame:
    """Every ``*.csv`` annotation file of a folder, stacked (empty table when there is none)."""
    files = sorted(Path(directory).glob("*.csv")) if Path(directory).is_dir() else []
    frames = [read_annotations(f) for f in files]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else empty_annotations()
