"""CNN predictions as rows of the shared predictions table, and the views notebook 03 shows.

Variants are named ``restoration=<none|backend>;split=<standard|leakage_free>;seed=<s>``:
``split=standard`` holds every PrivateTest image; ``split=leakage_free`` repeats the rows of
the images that have no pixel-identical (or near-duplicate) copy in Training, so that
``metrics.summarize`` scores both splits side by side. Readers wanting one row per image
filter on ``split=standard``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from emolib.data import ImageSet
from emolib.predictions import make_predictions

# Published figures the notebook sets ours beside (accuracy on FER-2013 PrivateTest, %).
LITERATURE = (
    ("seed study (claim)", "efficientnet_b0", 86.44, "claimed in the seed study; not reproduced"),
    ("seed study (claim)", "resnet50", 85.72, "claimed in the seed study; not reproduced"),
    ("Khaireddin & Chen 2021", "vgg (single network)", 73.28,
     "FER-2013 state of the art for a single network, standard protocol"),
)


def variant_name(restoration: str, split: str, seed: int) -> str:
    """``restoration=none;split=standard;seed=0``."""
    return f"restoration={restoration};split={split};seed={seed}"


def parse_variant(variant: str) -> dict[str, str]:
    """``"a=1;b=2"`` -> ``{"a": "1", "b": "2"}``."""
    return dict(part.split("=", 1) for part in variant.split(";") if "=" in part)


def cnn_prediction_rows(image_set: ImageSet, proba: np.ndarray, model: str, variant: str,
                        seconds: float = float("nan")) -> pd.DataFrame:
    """Predictions-table rows of one model on ``image_set``: proba (n, k) softmax scores,
    y_pred = argmax, latency_s = ``seconds`` spread evenly over the images."""
    n = len(image_set)
    return make_predictions(
        image_id=image_set.ids, split=image_set.splits, dataset=[image_set.name] * n,
        label_set=[image_set.label_set_name] * n, y_true=image_set.labels,
        y_pred=proba.argmax(1).astype(np.int64), scores=[row.astype(float).tolist() for row in proba],
        model=[model] * n, backend=["cnn"] * n, variant=[variant] * n,
        latency_s=np.full(n, seconds / max(n, 1)),
    )


def with_leakage_free_rows(rows: pd.DataFrame, keep_ids: set[str] | None) -> pd.DataFrame:
    """``rows`` (split=standard) plus a copy of the kept images as ``split=leakage_free``."""
    if keep_ids is None:
        return rows
    extra = rows[rows["image_id"].isin(keep_ids)].copy()
    extra["variant"] = extra["variant"].str.replace("split=standard", "split=leakage_free")
    return pd.concat([rows, extra], ignore_index=True)


def split_variant_columns(summary: pd.DataFrame) -> pd.DataFrame:
    """Add restoration / eval_split / seed columns parsed from ``variant``."""
    parts = pd.DataFrame([parse_variant(v) for v in summary["variant"]], index=summary.index)
    return summary.assign(restoration=parts.get("restoration"), eval_split=parts.get("split"),
                          seed=parts.get("seed"))


def literature_comparison(summary: pd.DataFrame) -> pd.DataFrame:
    """Our PrivateTest accuracy (original faces, standard split, mean over seeds) beside the
    published figures; summary: output of ``metrics.summarize`` with variant columns split."""
    ours = summary[(summary["restoration"] == "none") & (summary["eval_split"] == "standard")]
    ours = ours.groupby("model", as_index=False)["accuracy"].mean()
    rows = [{"source": "this run (quick/paper profile)", "model": m, "accuracy_pct": 100 * a,
             "note": "measured here"} for m, a in zip(ours["model"], ours["accuracy"], strict=True)]
    rows += [{"source": s, "model": m, "accuracy_pct": a, "note": n} for s, m, a, n in LITERATURE]
    return pd.DataFrame(rows)


def majority_baseline(labels: np.ndarray) -> float:
    """Accuracy of always answering the most frequent class of ``labels``."""
    return float(np.bincount(labels).max() / len(labels)) if len(labels) else float("nan")


def confusion_for(predictions: pd.DataFrame, model: str, variant: str, n_classes: int) -> np.ndarray:
    """(k, k + 1) confusion matrix of one model and variant (last column: no answer)."""
    from emolib.metrics import confusion

    rows = predictions[(predictions["model"] == model) & (predictions["variant"] == variant)]
    return confusion(rows["y_true"].to_numpy(), rows["y_pred"].to_numpy(), n_classes)
