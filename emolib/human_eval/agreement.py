"""Agreement between annotators, and how often humans side with the model.

Ratings are the nominal verdicts (``model, label, both, neither``). Per error category:
Cohen's kappa (scikit-learn; two annotators, or the mean over annotator pairs when there
are more), Fleiss' kappa (statsmodels; items rated by every annotator) and Krippendorff's
alpha (``krippendorff``, nominal; uses every rating, missing ones allowed). A statistic that
is undefined (fewer than two annotators or items) is NaN.
"""

from __future__ import annotations

import itertools
import warnings

import krippendorff
import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from emolib.human_eval.annotations import VERDICTS
from emolib.human_eval.categories import ERROR_CATEGORIES

ALL = "all"


def rating_matrix(annotations: pd.DataFrame, item_ids: list[str] | None = None) -> pd.DataFrame:
    """(items, annotators) verdict codes 0..3 (index into VERDICTS), NaN where not rated."""
    codes = annotations.assign(
        code=annotations["verdict"].map({v: i for i, v in enumerate(VERDICTS)})
    )
    matrix = codes.pivot_table(index="item_id", columns="annotator", values="code", aggfunc="last")
    return (
        matrix if item_ids is None else matrix.reindex([i for i in item_ids if i in matrix.index])
    )


def cohen_kappa(matrix: pd.DataFrame) -> float:
    """Cohen's kappa of two annotators (mean over pairs for more) on items both rated."""
    values = []
    for a, b in itertools.combinations(matrix.columns, 2):
        both = matrix[[a, b]].dropna()
        if len(both) >= 2:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                values.append(
                    cohen_kappa_score(
                        both[a].astype(int), both[b].astype(int), labels=list(range(len(VERDICTS)))
                    )
                )
    return float(np.nanmean(values)) if values and not np.all(np.isnan(values)) else float("nan")


def fleiss(matrix: pd.DataFrame) -> float:
    """Fleiss' kappa on the items every annotator rated (statsmodels)."""
    complete = matrix.dropna()
    if matrix.shape[1] < 2 or len(complete) < 2:
        return float("nan")
    table, _ = aggregate_raters(complete.to_numpy(dtype=int), n_cat=len(VERDICTS))
    with np.errstate(invalid="ignore", divide="ignore"):
        return float(fleiss_kappa(table, method="fleiss"))


def krippendorff_alpha(matrix: pd.DataFrame) -> float:
    """Krippendorff's alpha, nominal, over all ratings (items with one rating add nothing)."""
    if matrix.shape[1] < 2 or (matrix.notna().sum(axis=1) >= 2).sum() < 1:
        return float("nan")
    data = matrix.to_numpy(dtype=float).T  # krippendorff wants (annotators, items)
    try:
        return float(
            krippendorff.alpha(
                reliability_data=data,
                level_of_measurement="nominal",
                value_domain=list(range(len(VERDICTS))),
            )
        )
    except (ValueError, ZeroDivisionError):  # one value only: agreement undefined
        return float("nan")


def agreement_table(annotations: pd.DataFrame, sample: pd.DataFrame) -> pd.DataFrame:
    """Per error category and over all: items rated by >= 2 annotators, annotators, and the
    three statistics."""
    rows = []
    groups = [(c, sample.loc[sample["error_category"] == c, "item_id"]) for c in ERROR_CATEGORIES]
    for name, ids in [*groups, (ALL, sample["item_id"])]:
        matrix = rating_matrix(annotations, list(ids)) if len(annotations) else pd.DataFrame()
        rows.append(
            {
                "error_category": name,
                "items_multi_rated": int((matrix.notna().sum(axis=1) >= 2).sum())
                if len(matrix)
                else 0,
                "annotators": int(matrix.shape[1]) if len(matrix) else 0,
                "cohen_kappa": cohen_kappa(matrix) if len(matrix) else float("nan"),
                "fleiss_kappa": fleiss(matrix) if len(matrix) else float("nan"),
                "krippendorff_alpha": krippendorff_alpha(matrix) if len(matrix) else float("nan"),
            }
        )
    return pd.DataFrame(rows)


def side_with_model(annotations: pd.DataFrame, sample: pd.DataFrame) -> pd.DataFrame:
    """Per model and error category (and ``all``): share of annotations per verdict, and
    ``model_plausible`` = share saying the model's answer fits (``model`` or ``both``).
    Shares are over annotations (item x annotator); the ``all`` rows weight each item by its
    stratum weight, so they estimate the share over all of the model's errors."""
    cols = ["model", "error_category", "weight"]
    rated = annotations.merge(sample[["item_id", *cols]], on="item_id", how="inner")
    if rated.empty:
        return pd.DataFrame(
            columns=[
                "model",
                "error_category",
                "items",
                "annotations",
                *[f"share_{v}" for v in VERDICTS],
                "model_plausible",
            ]
        )
    rows = []
    for (model, category), part in rated.groupby(["model", "error_category"]):
        rows.append(_shares(part, model, category, weighted=False))
    for model, part in rated.groupby("model"):
        rows.append(_shares(part, model, ALL, weighted=True))
    return pd.DataFrame(rows)


def _shares(part: pd.DataFrame, model: str, category: str, weighted: bool) -> dict:
    w = part["weight"].to_numpy(float) if weighted else np.ones(len(part))
    share = {
        f"share_{v}": float(w[part["verdict"].to_numpy() == v].sum() / w.sum()) for v in VERDICTS
    }
    return {
        "model": model,
        "error_category": category,
        "items": part["item_id"].nunique(),
        "annotations": len(part),
        **share,
        "model_plausible": share["share_model"] + share["share_both"],
    }
