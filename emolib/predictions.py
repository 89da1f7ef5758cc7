"""The predictions table: one row per (image, model, variant), the same for every model.

Metrics, plots, error categories and human evaluation read this table and nothing else.
``y_pred`` is -1 when a model gave no usable answer (``parse_status == "unparseable"`` or
``"error"``): such a row counts as wrong and is reported, never dropped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from emolib.store import write_parquet

COLUMNS = {
    "image_id": "object",
    "split": "object",
    "dataset": "object",
    "label_set": "object",
    "y_true": "int64",
    "y_pred": "int64",
    "scores": "object",  # per-class probabilities/similarities (list of float) or None
    "model": "object",
    "backend": "object",  # cnn | clip | clip_probe | hf | openai | recorded
    "variant": "object",  # prompt variant / restoration / seed, e.g. "restoration=none;seed=0"
    "raw_response": "object",
    "parse_status": "object",
    "latency_s": "float64",
}
PARSE_STATUSES = ("scored", "json", "text_match", "embedding_match", "unparseable", "error")
NO_PREDICTION = -1


def make_predictions(**columns) -> pd.DataFrame:
    """Build a predictions table from column arrays; missing optional columns are filled."""
    n = len(columns["image_id"])
    defaults = {"scores": [None] * n, "raw_response": [None] * n, "latency_s": [np.nan] * n,
                "parse_status": ["scored"] * n}
    data = {**defaults, **columns}
    frame = pd.DataFrame({k: data[k] for k in COLUMNS} | {k: v for k, v in data.items() if k not in COLUMNS})
    return validate_predictions(frame)


def validate_predictions(frame: pd.DataFrame, where: str = "predictions") -> pd.DataFrame:
    """Check the columns, types and values of a predictions table; return it typed."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}; required: {list(COLUMNS)}")
    bad_status = set(frame["parse_status"]) - set(PARSE_STATUSES)
    if bad_status:
        raise ValueError(f"{where}: unknown parse_status {sorted(bad_status)}; allowed {PARSE_STATUSES}")
    frame = frame.astype({k: v for k, v in COLUMNS.items() if k != "scores"})
    no_answer = frame["parse_status"].isin(["unparseable", "error"])
    if (frame.loc[no_answer, "y_pred"] != NO_PREDICTION).any():
        raise ValueError(f"{where}: unparseable/error rows must have y_pred == -1")
    if (frame.loc[~no_answer, "y_pred"] < 0).any():
        raise ValueError(f"{where}: rows with a prediction need y_pred >= 0")
    keys = ["image_id", "split", "dataset", "model", "backend", "variant"]
    if frame.duplicated(keys).any():
        raise ValueError(f"{where}: duplicate rows for the same {keys}")
    return frame


def write_predictions(path: Path, frame: pd.DataFrame) -> Path:
    frame = validate_predictions(frame)
    out = frame.copy()
    out["scores"] = [None if s is None else [float(x) for x in s] for s in out["scores"]]
    return write_parquet(path, out)


def read_predictions(paths: Path | list[Path]) -> pd.DataFrame:
    """Read and concatenate one or more predictions files."""
    paths = [paths] if isinstance(paths, str | Path) else list(paths)
    frames = [validate_predictions(pd.read_parquet(p), str(p)) for p in paths]
    if not frames:
        return pd.DataFrame({k: pd.Series(dtype=v) for k, v in COLUMNS.items()})
    return pd.concat(frames, ignore_index=True)


def read_stage_predictions(path: Path, notebook: str, profile_name: str) -> pd.DataFrame:
    """A stage's predictions table; FileNotFoundError naming the notebook that writes it."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"{path} does not exist: run notebooks/{notebook} "
                                f"for profile {profile_name!r} first")
    return read_predictions(path)


def score_matrix(frame: pd.DataFrame) -> np.ndarray:
    """The ``scores`` column as an (n, k) float array; rows without scores are NaN."""
    k = max((len(s) for s in frame["scores"] if s is not None), default=0)
    out = np.full((len(frame), k), np.nan)
    for i, s in enumerate(frame["scores"]):
        if s is not None:
            out[i] = s
    return out
