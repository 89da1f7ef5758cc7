"""Scores of a predictions table: accuracy, precision/recall/F1, confusion, bootstrap CIs.

Every function takes integer label arrays ``y_true`` (n,) and ``y_pred`` (n,) over
``n_classes`` classes; ``y_pred == -1`` (no usable answer) counts as wrong everywhere: it is
a miss for recall and for accuracy and adds no true positive to any class.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

import numpy as np
import pandas as pd

from emolib.labels import LabelSet, get_label_set
from emolib.predictions import CONFIG_KEYS
from emolib.stats import bootstrap_ci

GROUP_KEYS = list(CONFIG_KEYS)  # one score per model configuration and subset


def confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes + 1) counts: rows true class, columns predicted; last = no answer."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    pred = np.where(y_pred < 0, n_classes, y_pred)
    flat = np.bincount(y_true * (n_classes + 1) + pred, minlength=n_classes * (n_classes + 1))
    return flat.reshape(n_classes, n_classes + 1)


def scores_from_confusion(cm: np.ndarray) -> dict[str, np.ndarray | float]:
    """Per-class precision/recall/F1/support and accuracy, macro and weighted F1 from ``cm``.

    Classes with no prediction get precision 0, like scikit-learn with ``zero_division=0``.
    """
    k = cm.shape[0]
    tp = np.diag(cm[:, :k]).astype(float)
    support = cm.sum(axis=1).astype(float)
    predicted = cm[:, :k].sum(axis=0).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros(k), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(k), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(k), where=denom > 0)
    total = support.sum()
    present = support > 0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": support,
        "accuracy": tp.sum() / total if total else np.nan,
        "macro_f1": f1[present].mean() if present.any() else np.nan,
        "weighted_f1": (f1 * support).sum() / total if total else np.nan,
        "macro_precision": precision[present].mean() if present.any() else np.nan,
        "macro_recall": recall[present].mean() if present.any() else np.nan,
    }


def classification_scores(y_true, y_pred, n_classes: int) -> dict[str, np.ndarray | float]:
    """Per-class and averaged scores of one set of predictions (see scores_from_confusion).

    Macro averages run over the classes present in ``y_true`` (as scikit-learn does when
    given ``labels`` = the present classes).
    """
    return scores_from_confusion(confusion(y_true, y_pred, n_classes))


def summarize(predictions: pd.DataFrame, n_classes_of: dict[str, int] | None = None,
              n_boot: int = 1000, seed: int = 0, by: list[str] | None = None,
              label_sets: Iterable[LabelSet] = ()) -> pd.DataFrame:
    """One row per group (default ``CONFIG_KEYS``: dataset, label_set, model, backend,
    restoration, prompt, seed, subset): n, accuracy,
    macro/weighted F1 with bootstrap CIs, and how many answers were unparseable or errors.

    The class count of a group's label set comes from ``n_classes_of``, else ``label_sets``
    (sets made in code and never registered), else ``emolib.labels.get_label_set`` (built-in
    sets and those a profile registered); a name none of them knows is a KeyError naming it."""
    own = {ls.name: len(ls) for ls in label_sets}
    by = by or GROUP_KEYS
    rows = []
    for key, group in predictions.groupby(by, sort=False, dropna=False):
        label_set = group["label_set"].iloc[0]
        k = (n_classes_of or {}).get(label_set) or own.get(label_set) or len(get_label_set(label_set))
        y_true, y_pred = group["y_true"].to_numpy(), group["y_pred"].to_numpy()
        scores = classification_scores(y_true, y_pred, k)
        ci = bootstrap_ci(y_true, y_pred, partial(classification_scores, n_classes=k), n_boot=n_boot, seed=seed)
        row = dict(zip(by, key if isinstance(key, tuple) else (key,), strict=True))
        row.update(n=len(group), label_set=label_set)
        for m in ("accuracy", "macro_f1", "weighted_f1"):
            row[m] = scores[m]
            row[f"{m}_lo"], row[f"{m}_hi"] = ci[m]
        status = group["parse_status"]
        row["n_unparseable"] = int((status == "unparseable").sum())
        row["n_error"] = int((status == "error").sum())
        rows.append(row)
    return pd.DataFrame(rows)


def per_class_table(y_true, y_pred, class_names: tuple[str, ...]) -> pd.DataFrame:
    """Precision, recall, F1 and support per class, plus macro and weighted rows."""
    s = classification_scores(y_true, y_pred, len(class_names))
    table = pd.DataFrame(
        {"precision": s["precision"], "recall": s["recall"], "f1": s["f1"], "support": s["support"]},
        index=list(class_names),
    )
    table.loc["macro avg"] = [s["macro_precision"], s["macro_recall"], s["macro_f1"], s["support"].sum()]
    table.loc["weighted avg"] = [
        (s["precision"] * s["support"]).sum() / s["support"].sum(),
        (s["recall"] * s["support"]).sum() / s["support"].sum(),
        s["weighted_f1"],
        s["support"].sum(),
    ]
    return table
