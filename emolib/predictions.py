"""The predictions table: one row per image and configuration, the same for every model.

Metrics, plots, error categories and human evaluation read this table and nothing else.
Columns (``COLUMNS``), one fact each:

- ``image_id, split, dataset, label_set``: the image and the label set its labels index;
- ``y_true, y_pred``: label indices; ``y_pred`` is -1 when a model gave no usable answer
  (``parse_status`` ``unparseable``, ``error``, or ``not_recorded``: a recording of answers
  made elsewhere lacks the image): such a row counts as wrong and is reported, never dropped;
- ``scores``: per-class probabilities or similarities (list of float) or None;
- ``model, backend``: what answered (backend: cnn, cnn_ensemble, clip, clip_probe, hf, openai, recorded);
- ``restoration``: the face restoration the image went through (``none``: the original);
- ``prompt``: the prompt variant (``default`` for the VLM stage; ``-`` for CNNs and probes);
- ``seed``: the training seed (CNNs) or the profile seed (everything else);
- ``subset``: the named evaluation subset (``emolib.catalog``) the row was predicted for;
- ``raw_response, parse_status, latency_s``: the model's own answer, how it was read, time.

Scores on a smaller subset (leakage-free, hard) are computed by selecting ids
(``emolib.catalog.select_subset``), never stored as copies.
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
    "backend": "object",  # cnn | cnn_ensemble | clip | clip_probe | hf | openai | recorded
    "restoration": "object",  # none | <restoration backend>-<size>
    "prompt": "object",  # default | <prompt variant> | - (no prompt: CNNs, probes)
    "seed": "int64",
    "subset": "object",  # named evaluation subset, see emolib.catalog
    "raw_response": "object",
    "parse_status": "object",
    "latency_s": "float64",
}
# what names one row: the same image under the same configuration appears once
ROW_KEYS = ("image_id", "dataset", "model", "backend", "restoration", "prompt", "seed", "subset")
# what names one group of rows scored together (one model under one configuration)
CONFIG_KEYS = ("dataset", "label_set", "model", "backend", "restoration", "prompt", "seed", "subset")
NO_PROMPT = "-"
ENSEMBLE_BACKEND = "cnn_ensemble"  # the soft vote of the trained CNNs (emolib.train.ensemble)
CNN_BACKENDS = ("cnn", ENSEMBLE_BACKEND)  # trained networks and their ensemble, not VLMs
PARSE_STATUSES = ("scored", "json", "text_match", "embedding_match", "unparseable", "error", "not_recorded")
NO_ANSWER_STATUSES = ("unparseable", "error", "not_recorded")  # not_recorded: a recording lacks the image
NO_PREDICTION = -1


def make_predictions(**columns) -> pd.DataFrame:
    """Build a predictions table from columns: arrays of one value per row, or a scalar for a
    fact shared by every row (``model="resnet50"``); missing optional columns are filled."""
    n = len(columns["image_id"])
    defaults = {"scores": None, "raw_response": None, "latency_s": np.nan, "parse_status": "scored"}
    data = {**defaults, **columns}
    data = {k: (v if _is_column(v) else [v] * n) for k, v in data.items()}
    missing = [c for c in COLUMNS if c not in data]
    if missing:
        raise ValueError(f"make_predictions: missing column(s) {missing}; required: {list(COLUMNS)}")
    frame = pd.DataFrame({k: data[k] for k in COLUMNS} | {k: v for k, v in data.items() if k not in COLUMNS})
    return validate_predictions(frame)


def _is_column(value) -> bool:
    return isinstance(value, list | tuple | np.ndarray | pd.Series)


def image_columns(image_set) -> dict:
    """The columns an ``ImageSet`` fixes: image_id, split, dataset, label_set, y_true,
    restoration (its ``variant``) and subset (its ``subset`` name)."""
    return {"image_id": image_set.ids, "split": image_set.splits, "dataset": image_set.name,
            "label_set": image_set.label_set_name, "y_true": image_set.labels,
            "restoration": image_set.variant, "subset": image_set.subset_name}


def validate_predictions(frame: pd.DataFrame, where: str = "predictions") -> pd.DataFrame:
    """Check the columns, types and values of a predictions table; return it typed."""
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"{where}: missing column(s) {missing}; required: {list(COLUMNS)}")
    bad_status = set(frame["parse_status"]) - set(PARSE_STATUSES)
    if bad_status:
        raise ValueError(f"{where}: unknown parse_status {sorted(bad_status)}; allowed {PARSE_STATUSES}")
    frame = frame.astype({k: v for k, v in COLUMNS.items() if k != "scores"})
    no_answer = frame["parse_status"].isin(NO_ANSWER_STATUSES)
    if (frame.loc[no_answer, "y_pred"] != NO_PREDICTION).any():
        raise ValueError(f"{where}: unparseable/error rows must have y_pred == -1 (not_recorded rows too)")
    if (frame.loc[~no_answer, "y_pred"] < 0).any():
        raise ValueError(f"{where}: rows with a prediction need y_pred >= 0")
    keys = list(ROW_KEYS)
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


def score_matrix(frame: pd.DataFrame) -> np.ndarray:
    """The ``scores`` column as an (n, k) float array; rows without scores are NaN."""
    k = max((len(s) for s in frame["scores"] if s is not None), default=0)
    out = np.full((len(frame), k), np.nan)
    for i, s in enumerate(frame["scores"]):
        if s is not None:
            out[i] = s
    return out


def model_names(frame: pd.DataFrame) -> pd.Series:
    """Each row's ``model``, written ``backend:model`` where that model name appears under more
    than one backend in ``frame`` (one repo asked in-process and through an endpoint): the name
    a table or a sentence keys a model by, so the two are never merged."""
    several = frame.groupby("model")["backend"].transform("nunique") > 1
    return frame["model"].astype(str).where(~several, frame["backend"].astype(str) + ":" + frame["model"].astype(str))
