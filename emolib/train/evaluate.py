"""The views of the CNN predictions that notebook 03 shows: scores on the named subsets, the
published figures beside ours, the majority baseline and confusion matrices.

Scores are computed by selecting ids (``emolib.catalog.on_subset``): ``fer_private`` (all of
PrivateTest), its leakage-free versions and the hard subset come from the same rows, and
restored faces are compared with the original ones on the evaluation subset's ids.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from emolib.metrics import confusion

# Published figures the notebook sets ours beside (accuracy on FER-2013 PrivateTest, %).
LITERATURE = (
    ("seed study (claim)", "efficientnet_b0", 86.44, "claimed in the seed study; not reproduced"),
    ("seed study (claim)", "resnet50", 85.72, "claimed in the seed study; not reproduced"),
    ("Khaireddin & Chen 2021", "vgg (single network)", 73.28,
     "FER-2013 state of the art for a single network, standard protocol"),
)


def literature_comparison(summary: pd.DataFrame) -> pd.DataFrame:
    """Our accuracy on ``fer_private`` (original faces, mean over seeds) beside the published
    figures; ``summary``: ``metrics.summarize`` of the CNN rows on the named subsets."""
    ours = summary[(summary["restoration"] == "none") & (summary["subset"] == "fer_private")]
    ours = ours.groupby("model", as_index=False)["accuracy"].mean()
    rows = [{"source": "this run", "model": m, "accuracy_pct": 100 * a, "note": "measured here"}
            for m, a in zip(ours["model"], ours["accuracy"], strict=True)]
    rows += [{"source": s, "model": m, "accuracy_pct": a, "note": n} for s, m, a, n in LITERATURE]
    return pd.DataFrame(rows)


def majority_baseline(labels: np.ndarray) -> float:
    """Accuracy of always answering the most frequent class of ``labels``."""
    return float(np.bincount(labels).max() / len(labels)) if len(labels) else float("nan")


def confusion_for(predictions: pd.DataFrame, n_classes: int, **where: object) -> np.ndarray:
    """(k, k + 1) confusion matrix of the rows matching ``where`` (column=value, e.g.
    model="resnet50", restoration="none", seed=0); last column: no answer."""
    rows = predictions
    for column, value in where.items():
        rows = rows[rows[column] == value]
    return confusion(rows["y_true"].to_numpy(), rows["y_pred"].to_numpy(), n_classes)


def paired_restoration(summary: pd.DataFrame, subset: str) -> pd.DataFrame:
    """Restored against original faces on the same ids: one row per (model, seed,
    restoration != none) with both accuracies on ``subset`` and their difference."""
    rows = summary[summary["subset"] == subset]
    base = rows[rows["restoration"] == "none"].set_index(["model", "seed"])["accuracy"]
    restored = rows[rows["restoration"] != "none"]
    return pd.DataFrame({
        "model": restored["model"], "seed": restored["seed"], "restoration": restored["restoration"],
        "subset": subset, "n": restored["n"],
        "accuracy_original": [base.get((m, s), np.nan) for m, s in zip(restored["model"], restored["seed"],
                                                                         strict=True)],
        "accuracy_restored": restored["accuracy"]}).assign(
        difference=lambda f: f["accuracy_restored"] - f["accuracy_original"]).reset_index(drop=True)
