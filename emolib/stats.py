"""Statistics shared by the study's comparisons: paired tests, multiple testing, bootstraps.

- ``mcnemar_test``: paired test of two classifiers (or two prompts) on the same images;
- ``holm`` / ``add_holm``: Holm's step-down correction over a family of tests;
- ``bootstrap_ci``: percentile intervals of accuracy and F1, images resampled;
- ``bootstrap_mean_ci`` and ``mean_zero_p``: the mean of a per-image difference.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar


def mcnemar_test(b: int, c: int) -> tuple[float, float]:
    """(statistic, p) of McNemar's test from the discordant counts ``b`` (first right, second
    wrong) and ``c``: exact binomial when b + c < 25, else chi-square with continuity
    correction (statsmodels). No discordant pair: (0, 1)."""
    if b + c == 0:
        return 0.0, 1.0
    result = mcnemar([[0, b], [c, 0]], exact=b + c < 25, correction=True)
    return float(result.statistic), float(result.pvalue)


def holm(pvalues, alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(reject, adjusted p) of Holm's step-down correction: the i-th smallest of m p-values
    times (m - i), running maximum, capped at 1 (equal to statsmodels ``multipletests(...,
    method="holm")``, which the tests check; computed directly because statsmodels runs a
    full garbage collection per call, too slow for the many-seed checks)."""
    p = np.asarray(pvalues, dtype=float)
    order = np.argsort(p)
    scaled = np.minimum(1.0, np.maximum.accumulate(p[order] * (len(p) - np.arange(len(p)))))
    adjusted = np.empty_like(p)
    adjusted[order] = scaled
    return adjusted <= alpha, adjusted


def add_holm(table: pd.DataFrame, alpha: float, by: tuple[str, ...] = ("model", "dataset")) -> pd.DataFrame:
    """``p_holm`` and ``significant`` columns: Holm over the rows of each ``by`` group."""
    if table.empty:
        return table.assign(p_holm=pd.Series(dtype=float), significant=pd.Series(dtype=bool))
    table = table.copy()
    table["p_holm"], table["significant"] = np.nan, False
    for _, g in table.groupby(list(by), sort=False):
        reject, adjusted = holm(g["p"].to_numpy(), alpha)
        table.loc[g.index, "p_holm"], table.loc[g.index, "significant"] = adjusted, reject
    return table


def bootstrap_ci(y_true, y_pred, score: Callable[[np.ndarray, np.ndarray], dict], n_boot: int = 1000,
                 level: float = 0.95, seed: int = 0,
                 metrics: tuple[str, ...] = ("accuracy", "macro_f1", "weighted_f1"),
                 ) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap interval of each metric that ``score(y_true, y_pred)`` returns
    (e.g. ``partial(metrics.classification_scores, n_classes=7)``), resampling images (n,)
    with replacement ``n_boot`` times."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    rng = np.random.default_rng(seed)
    n = len(y_true)
    draws = {m: np.empty(n_boot) for m in metrics}
    for b in range(n_boot):
        idx = rng.integers(0, n, n)
        scores = score(y_true[idx], y_pred[idx])
        for m in metrics:
            draws[m][b] = scores[m]
    tail = (1 - level) / 2 * 100
    return {m: (float(np.percentile(d, tail)), float(np.percentile(d, 100 - tail))) for m, d in draws.items()}


def bootstrap_mean_ci(values: np.ndarray, n_boot: int = 1000, level: float = 0.95,
                      seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (n,)."""
    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), (n_boot, len(values)))].mean(axis=1)
    tail = (1 - level) / 2 * 100
    return float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))


def mean_zero_p(diff: np.ndarray) -> float:
    """Two-sided p of mean(diff) == 0: one-sample t-test; when every value is the same (t is
    undefined) the sign test of the nonzero values (1.0 if all are zero)."""
    diff = np.asarray(diff, dtype=float)
    if len(diff) < 2 or np.ptp(diff) < 1e-12:
        nonzero = int((np.abs(diff) > 1e-12).sum())
        return 1.0 if nonzero == 0 else float(stats.binomtest(nonzero, nonzero, 0.5).pvalue)
    return float(stats.ttest_1samp(diff, 0.0).pvalue)
