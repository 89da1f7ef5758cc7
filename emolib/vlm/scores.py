"""Tables of notebook 04, computed from the predictions table only.

``score_table`` (accuracy, macro/weighted F1 with bootstrap CIs per configuration and
subset, unparseable counts and the random-weights note), ``parse_status_table``,
``sentiment_table``, ``seed_claims_table`` (the seed study's reported accuracies beside ours,
"unavailable" where a model could not be run) and ``head_to_head`` (CNNs and VLMs on the
same FER-2013 ids).
"""

from __future__ import annotations

from functools import partial

import pandas as pd

from emolib import catalog
from emolib.config import Profile
from emolib.metrics import classification_scores, summarize
from emolib.stats import bootstrap_ci
from emolib.vlm.types import DEFAULT_PROMPT, ModelSpec

# The seed study's reported FER-2013 accuracies, and the model entries that correspond.
SEED_CLAIMS = (
    {"claim": "CLIP zero-shot on FER-2013", "reported_accuracy": 0.6407, "backend": "clip",
     "models": ("ViT-L-14/openai", "ViT-B-32/openai", "ViT-L-14/laion2b_s32b_b82k")},
    {"claim": "Phi-3.5-Vision zero-shot on FER-2013", "reported_accuracy": 0.5166, "backend": "hf",
     "models": ("microsoft/Phi-3.5-vision-instruct",)},
)


def note_of(backend: str, model: str) -> str:
    """'random weights — measures nothing' for stand-in models, else ''."""
    return ModelSpec(backend if backend != "clip_probe" else "clip", model).note


def score_table(predictions: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """One row per configuration and subset (``CONFIG_KEYS``): n, accuracy, macro/weighted F1
    with 95% bootstrap CIs, unparseable and error counts, and the note column."""
    if predictions.empty:
        return pd.DataFrame()
    table = summarize(predictions, n_boot=n_boot, seed=seed)
    table["note"] = [note_of(b, m) for b, m in zip(table["backend"], table["model"], strict=True)]
    return table


def parse_status_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """Answers per parse status for each configuration; counts and share with no answer."""
    if predictions.empty:
        return pd.DataFrame()
    keys = ["backend", "model", "dataset", "restoration", "prompt", "subset"]
    table = pd.crosstab([predictions[k] for k in keys], predictions["parse_status"]).reset_index()
    counts = table.drop(columns=keys)
    table["n"] = counts.sum(axis=1)
    table["share_no_answer"] = counts.reindex(columns=["unparseable", "error"], fill_value=0).sum(axis=1) / table["n"]
    return table


def sentiment_table(sentiment: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Binary sentiment scores (negative/positive; no answer = wrong) per (dataset, model)."""
    rows = []
    for (dataset, model), group in sentiment.groupby(["dataset", "model"], sort=False):
        y_true, y_pred = group["y_true"].to_numpy(int), group["y_pred"].to_numpy(int)
        scores = classification_scores(y_true, y_pred, 2)
        ci = bootstrap_ci(y_true, y_pred, partial(classification_scores, n_classes=2), n_boot=n_boot, seed=seed)
        row = {"dataset": dataset, "model": model, "n": len(group)}
        for m in ("accuracy", "macro_f1", "weighted_f1"):
            row[m], (row[f"{m}_lo"], row[f"{m}_hi"]) = scores[m], ci[m]
        rows.append(row)
    return pd.DataFrame(rows)


def seed_claims_table(scores: pd.DataFrame, status: pd.DataFrame) -> pd.DataFrame:
    """The seed study's accuracies beside ours for the same model on FER-2013 (original
    faces, the stage's own prompts: not CLIP_benchmark's protocol rows); 'unavailable: <reason>'
    where the model could not be run. Never filled in."""
    rows = []
    for claim in SEED_CLAIMS:
        for model in claim["models"]:
            st = status[(status["backend"] == claim["backend"]) & (status["model"] == model)]
            hit = scores[(scores["backend"] == claim["backend"]) & (scores["model"] == model)
                         & (scores["restoration"] == "none") & (scores["prompt"] == DEFAULT_PROMPT)
                         & (scores["label_set"] == "fer7")] if len(scores) else scores
            ours = (f"{hit['accuracy'].iloc[0]:.4f} [{hit['accuracy_lo'].iloc[0]:.4f}, "
                    f"{hit['accuracy_hi'].iloc[0]:.4f}] (n={int(hit['n'].iloc[0])})" if len(hit)
                    else "unavailable: " + (st["reason"].iloc[0] if len(st) else "not in this profile"))
            rows.append({"claim": claim["claim"], "model": model,
                         "seed_study_accuracy": claim["reported_accuracy"], "ours": ours})
    return pd.DataFrame(rows)


def head_to_head(predictions: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """CNN and VLM predictions (FER-7 labels, original faces) on the evaluation subset both
    score (``catalog.fer_eval_name``): the same ids for every model, checked. CLIP_benchmark's
    protocol rows (``fer_kaggle_test``) are not among them (``catalog.on_subset``)."""
    faces = predictions[(predictions["label_set"] == "fer7") & (predictions["restoration"] == "none")]
    if faces.empty:
        return faces
    return catalog.on_subset(faces, profile, catalog.fer_eval_name(profile))
