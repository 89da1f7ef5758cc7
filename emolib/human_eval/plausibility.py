"""Annotation-free plausibility of errors from the human votes a data set already has.

FER+ gives ten annotators' votes per face, Emotion6 a vote distribution per image (the
``soft_labels`` of the image set). For a wrong answer, the share of human votes its
predicted label received says how plausible it is: an "error" that 30% of people chose is
a reading of an ambiguous image more than a mistake. Labels are matched to vote columns by
concept (``emolib.labels.SYNONYMS``: fer7 ``happy`` counts FER+ ``happiness`` votes).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from emolib.data import ImageSet
from emolib.human_eval.categories import ERROR_CATEGORIES, add_error_categories
from emolib.human_eval.sampling import image_positions
from emolib.labels import SYNONYMS, get_label_set

ALL_ERRORS = "all errors"


def vote_column(label: str, vote_names: tuple[str, ...]) -> int | None:
    """Index of the vote column that stands for ``label`` (same concept), else None."""
    concept = SYNONYMS.get(label, label)
    matches = [i for i, name in enumerate(vote_names) if SYNONYMS.get(name, name) == concept]
    return matches[0] if matches else None


def share_at_least(vote_shares: pd.Series, threshold: float) -> float:
    """Share of ``vote_shares`` (NaN dropped) of at least ``threshold``; NaN when none are left.
    Votes are shares of ten annotators stored as float32, so 0.3 may read 0.29999998: a 1e-6
    tolerance keeps "3 of 10" at 0.3."""
    voted = vote_shares.dropna()
    return float((voted >= threshold - 1e-6).mean()) if len(voted) else np.nan


def predicted_vote_share(predictions: pd.DataFrame, image_sets: dict[str, ImageSet]) -> np.ndarray:
    """(n,) share of human votes that each row's predicted label received; NaN where the
    row has no answer, its image set has no votes, or the image has none (FER+ gaps)."""
    out = np.full(len(predictions), np.nan)
    for (dataset, label_set), rows in predictions.groupby(["dataset", "label_set"]).groups.items():
        images = image_sets.get(dataset)
        if images is None or images.soft_labels is None:
            continue
        part = predictions.loc[rows]
        keys = part["split"].astype(str) + "/" + part["image_id"].astype(str)
        where = image_positions(images).reindex(keys).to_numpy(dtype=float)
        names = get_label_set(label_set).names
        columns = {k: vote_column(n, images.soft_label_names) for k, n in enumerate(names)}
        locs = predictions.index.get_indexer(rows)
        for loc, row_pos, pred in zip(locs, where, part["y_pred"], strict=True):
            column = columns.get(int(pred))
            if not np.isnan(row_pos) and column is not None:
                out[loc] = images.soft_labels[int(row_pos), column]
    return out


def plausibility_table(
    predictions: pd.DataFrame,
    image_sets: dict[str, ImageSet],
    thresholds: tuple[float, ...] = (0.1, 0.3),
) -> pd.DataFrame:
    """Per dataset, backend, model and error category (EC I-III and all errors): errors, errors with
    votes, mean vote share of the predicted label, and for each threshold t the share of
    errors (with votes) whose predicted label got at least t of the votes (``share_ge_t``)."""
    frame = add_error_categories(predictions.reset_index(drop=True))
    frame["vote_share"] = predicted_vote_share(frame, image_sets)
    errors = frame[frame["error_category"].isin(ERROR_CATEGORIES)]
    rows = []
    for (dataset, backend, model), part in errors.groupby(["dataset", "backend", "model"], sort=False):
        for category in (*ERROR_CATEGORIES, ALL_ERRORS):
            sub = part if category == ALL_ERRORS else part[part["error_category"] == category]
            voted = sub["vote_share"].dropna()
            row = {
                "dataset": dataset,
                "backend": backend,
                "model": model,
                "error_category": category,
                "errors": len(sub),
                "with_votes": len(voted),
                "mean_vote_share": voted.mean() if len(voted) else np.nan,
            }
            for t in thresholds:
                row[f"share_ge_{t:g}"] = share_at_least(voted, t)
            rows.append(row)
    return pd.DataFrame(rows)
