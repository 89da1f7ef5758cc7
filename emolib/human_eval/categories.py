"""Error categories EC I-III of a wrong answer, from each label's sentiment and arousal.

For a wrong prediction (``y_pred != y_true``) of a label set (sentiment and arousal per label
from ``emolib.labels``):

- ``EC I``: wrong sentiment (e.g. fear predicted for joy; neutral counts as its own sentiment);
- ``EC II``: right sentiment, wrong arousal (e.g. sadness for anger);
- ``EC III``: right sentiment and arousal, wrong class (e.g. fear for anger).

A right answer is ``correct``; a row without an answer (``y_pred == -1``) is ``no answer``
(counted and reported, never dropped); a row without a ground-truth label is ``no label``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from emolib.labels import LabelSet, get_label_set

EC_I, EC_II, EC_III = "EC I", "EC II", "EC III"
ERROR_CATEGORIES = (EC_I, EC_II, EC_III)
CORRECT, NO_ANSWER, NO_LABEL = "correct", "no answer", "no label"
ALL_CATEGORIES = (CORRECT, *ERROR_CATEGORIES, NO_ANSWER, NO_LABEL)
CATEGORY_MEANING = {
    EC_I: "wrong sentiment",
    EC_II: "right sentiment, wrong arousal",
    EC_III: "right sentiment and arousal, wrong class",
    CORRECT: "right class",
    NO_ANSWER: "no usable answer (y_pred = -1)",
    NO_LABEL: "image has no ground-truth label",
}


def error_category(label_set: LabelSet | str, y_true: int, y_pred: int) -> str:
    """Category of one (true, predicted) pair of indices into ``label_set``."""
    ls = get_label_set(label_set) if isinstance(label_set, str) else label_set
    if y_true < 0:
        return NO_LABEL
    if y_pred < 0:
        return NO_ANSWER
    if y_true == y_pred:
        return CORRECT
    if ls.sentiment(int(y_true)) != ls.sentiment(int(y_pred)):
        return EC_I
    if ls.arousal(int(y_true)) != ls.arousal(int(y_pred)):
        return EC_II
    return EC_III


def category_matrix(label_set: LabelSet | str) -> pd.DataFrame:
    """(k, k) table of categories: rows true label, columns predicted label."""
    ls = get_label_set(label_set) if isinstance(label_set, str) else label_set
    k = len(ls)
    cells = [[error_category(ls, t, p) for p in range(k)] for t in range(k)]
    frame = pd.DataFrame(cells, index=list(ls.names), columns=list(ls.names))
    frame.index.name, frame.columns.name = "true", "predicted"
    return frame


def error_categories(
    label_set: LabelSet | str, y_true: np.ndarray, y_pred: np.ndarray
) -> np.ndarray:
    """(n,) category strings for (n,) true and (n,) predicted indices (-1 allowed in both)."""
    ls = get_label_set(label_set) if isinstance(label_set, str) else label_set
    lookup = category_matrix(ls).to_numpy()
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    out = np.full(len(y_true), NO_ANSWER, dtype=object)
    both = (y_true >= 0) & (y_pred >= 0)
    out[both] = lookup[y_true[both], y_pred[both]]
    out[y_true < 0] = NO_LABEL
    return out


def add_error_categories(predictions: pd.DataFrame) -> pd.DataFrame:
    """A copy of a predictions table with an ``error_category`` column (per row's label set)."""
    out = predictions.copy()
    out["error_category"] = pd.Series(dtype=object)
    for name, rows in out.groupby("label_set").groups.items():
        sub = out.loc[rows]
        out.loc[rows, "error_category"] = error_categories(name, sub["y_true"], sub["y_pred"])
    return out


def count_error_categories(
    predictions: pd.DataFrame, by: tuple[str, ...] = ("dataset", "model")
) -> pd.DataFrame:
    """Rows per ``by`` group and category (columns in ALL_CATEGORIES order) with totals and
    the error rate; categories are computed when the column is missing."""
    frame = predictions if "error_category" in predictions else add_error_categories(predictions)
    table = pd.crosstab([frame[c] for c in by], frame["error_category"])
    shown = [c for c in ALL_CATEGORIES if c != NO_LABEL or c in table.columns]
    table = table.reindex(columns=shown, fill_value=0)
    table["n"] = table.sum(axis=1)
    table["errors"] = table[[*ERROR_CATEGORIES, NO_ANSWER]].sum(axis=1)
    table["error_rate"] = table["errors"] / table["n"].where(table["n"] > 0)
    return table.reset_index().rename_axis(columns=None)


def mapping_table(label_set: LabelSet | str) -> pd.DataFrame:
    """Long form of the category mapping for display: true, predicted, their sentiment and
    arousal, and the category, one row per ordered pair of different labels."""
    ls = get_label_set(label_set) if isinstance(label_set, str) else label_set
    rows = [
        {
            "label_set": ls.name,
            "true": t,
            "true_sentiment": ls.sentiment(t),
            "true_arousal": ls.arousal(t),
            "predicted": p,
            "pred_sentiment": ls.sentiment(p),
            "pred_arousal": ls.arousal(p),
            "category": error_category(ls, i, j),
        }
        for i, t in enumerate(ls.names)
        for j, p in enumerate(ls.names)
        if i != j
    ]
    return pd.DataFrame(rows)
