"""Free against constrained decoding in the prompt sweep (notebook 05): the answers a model
gives on its own (variant ``base``) against those it gives when the server constrains it to the
label words (``constrained_choice``) or to a JSON schema (``constrained_json``), on the same
images; and the line notebook 05 shows when the comparison was not measured, with how to enable it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score

from emolib.labels import get_label_set
from emolib.metrics import classification_scores
from emolib.predictions import model_names
from emolib.prompts.bias import PAIR_KEYS, paired

LABEL_STATUSES = ("json", "text_match")  # parse statuses of an answer that names a label word
CONSTRAINED_COLUMNS = PAIR_KEYS + ["prompt", "n", "n_error", "accuracy_free", "accuracy_constrained",
                                   "weighted_f1_free", "weighted_f1_constrained", "changed", "free_off_label",
                                   "rescued", "kappa"]


def _kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two answer vectors; 1.0 when both give one and the same label throughout."""
    if not len(a):
        return np.nan
    return float(cohen_kappa_score(a, b)) if len(np.unique(np.r_[a, b])) > 1 else 1.0


def compare_constrained(pred: pd.DataFrame, free: str = "base") -> pd.DataFrame:
    """Free answers (variant ``free``) against each ``constrained_*`` variant, paired by image
    within (model, backend, dataset); a pair where either call failed (``error``) is left out and
    counted in ``n_error``. One row (``CONSTRAINED_COLUMNS``) per pair of variants: n images,
    accuracy and weighted F1 of both, ``changed`` (share of images whose answer differs),
    ``free_off_label`` (share of free answers naming no label word: unparseable, or an off-label
    word mapped by embedding), ``rescued`` (share of those whose constrained answer names a label
    word; NaN when there are none) and ``kappa`` (Cohen's; no answer is its own category)."""
    rows = []
    for variant in [v for v in dict.fromkeys(pred["prompt"]) if str(v).startswith("constrained_")]:
        for key, g in paired(pred, variant, free).groupby(PAIR_KEYS, sort=False):
            k = len(get_label_set(g["label_set_base"].iloc[0]))
            failed = (g["parse_status_base"] == "error") | (g["parse_status_var"] == "error")
            g = g[~failed]
            y_true, y_free, y_con = (g[c].to_numpy() for c in ("y_true_base", "y_pred_base", "y_pred_var"))
            off = ~g["parse_status_base"].isin(LABEL_STATUSES).to_numpy()
            named = g["parse_status_var"].isin(LABEL_STATUSES).to_numpy()
            scores = [classification_scores(y_true, y, k) if len(g) else {} for y in (y_free, y_con)]
            rows.append(dict(zip(PAIR_KEYS, key, strict=True), prompt=variant, n=len(g), n_error=int(failed.sum()),
                             **{f"{m}_{side}": s.get(m, np.nan) for m in ("accuracy", "weighted_f1")
                                for side, s in zip(("free", "constrained"), scores, strict=True)},
                             changed=np.mean(y_free != y_con) if len(g) else np.nan,
                             free_off_label=off.mean() if len(g) else np.nan,
                             rescued=named[off].mean() if off.any() else np.nan, kappa=_kappa(y_free, y_con)))
    return pd.DataFrame(rows, columns=CONSTRAINED_COLUMNS)


ENABLE_CONSTRAINED = ("serve a generative model with vLLM or SGLang as a `vlm.endpoints` entry (with `guided: none`) "
                      "and add `constrained_choice` and/or `constrained_json` to the profile's `prompts.variants`")


def constrained_status(table: pd.DataFrame, not_run: pd.DataFrame, variants: tuple[str, ...]) -> str:
    """One line (Markdown) on the free-vs-constrained comparison: which models it measured, or
    why it was not measured here and how to enable it. ``table``: ``compare_constrained``;
    ``not_run``: the sweep's not-run rows; ``variants``: the profile's ``prompts.variants``."""
    refused = not_run[not_run["prompt"].astype(str).str.startswith("constrained_")]
    # a model measured through one backend and refused by another is named with each backend
    names = model_names(pd.concat([table[["backend", "model"]], refused[["backend", "model"]]], ignore_index=True))
    reasons = dict(zip(names[len(table):], refused["reason"], strict=True))  # one reason per model
    why = "; ".join(f"`{model}`: {reason}" for model, reason in reasons.items())
    if len(table):
        measured = ", ".join(f"`{m}`" for m in dict.fromkeys(names[:len(table)]))
        return f"Free vs constrained answers measured for {measured}." + (f" Not run: {why}." if why else "")
    if not any(str(v).startswith("constrained_") for v in variants):
        cause = "the profile's `prompts.variants` has no constrained variant"
    else:
        cause = f"no model here can decode constrained ({why})" if why else "no generative model answered"
    return f"Free vs constrained answers: not measured here ({cause}). To measure them, {ENABLE_CONSTRAINED}."
