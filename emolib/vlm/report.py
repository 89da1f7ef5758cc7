"""Tables and figures of notebook 04, computed from the predictions table only.

``score_table`` (accuracy, macro/weighted F1 with bootstrap CIs, unparseable counts and the
random-weights note), ``parse_status_table``, ``sentiment_table``, ``seed_claims_table``
(the seed study's reported accuracies beside ours, "unavailable" where a model could not be
run), ``head_to_head`` (CNNs vs VLMs on the same FER-2013 images) and ``plot_confusions``.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from emolib.labels import get_label_set
from emolib.metrics import bootstrap_ci, classification_scores, confusion, summarize
from emolib.plots import plot_confusion
from emolib.vlm.base import ModelSpec

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
    """One row per (dataset, split, model, backend, variant): n, accuracy, macro/weighted F1
    with 95% bootstrap CIs, unparseable and error counts, and the note column."""
    if predictions.empty:
        return pd.DataFrame()
    table = summarize(predictions, n_boot=n_boot, seed=seed)
    table["note"] = [note_of(b, m) for b, m in zip(table["backend"], table["model"], strict=True)]
    return table


def parse_status_table(predictions: pd.DataFrame) -> pd.DataFrame:
    """Answers per parse status for each (model, dataset, variant); counts and share unparseable."""
    if predictions.empty:
        return pd.DataFrame()
    keys = ["backend", "model", "dataset", "variant"]
    table = pd.crosstab([predictions[k] for k in keys], predictions["parse_status"]).reset_index()
    counts = table.drop(columns=keys)
    table["n"] = counts.sum(axis=1)
    table["share_no_answer"] = counts.reindex(columns=["unparseable", "error"], fill_value=0).sum(axis=1) / table["n"]
    return table


def sentiment_table(sentiment: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Binary sentiment scores (negative/positive; no answer = wrong) per (dataset, model)."""
    rows = []
    for (dataset, model), group in sentiment.groupby(["dataset", "model"]):
        y_true, y_pred = group["y_true"].to_numpy(int), group["y_pred"].to_numpy(int)
        scores = classification_scores(y_true, y_pred, 2)
        ci = bootstrap_ci(y_true, y_pred, 2, n_boot=n_boot, seed=seed)
        row = {"dataset": dataset, "model": model, "n": len(group)}
        for m in ("accuracy", "macro_f1", "weighted_f1"):
            row[m], (row[f"{m}_lo"], row[f"{m}_hi"]) = scores[m], ci[m]
        rows.append(row)
    return pd.DataFrame(rows)


def seed_claims_table(scores: pd.DataFrame, status: pd.DataFrame) -> pd.DataFrame:
    """The seed study's accuracies beside ours for the same model on FER-2013 (original
    faces); 'unavailable: <reason>' where the model could not be run. Never filled in."""
    rows = []
    for claim in SEED_CLAIMS:
        for model in claim["models"]:
            st = status[(status["backend"] == claim["backend"]) & (status["model"] == model)]
            hit = scores[(scores["backend"] == claim["backend"]) & (scores["model"] == model)
                         & scores["variant"].str.endswith("restoration=none")] if len(scores) else scores
            ours = (f"{hit['accuracy'].iloc[0]:.4f} [{hit['accuracy_lo'].iloc[0]:.4f}, "
                    f"{hit['accuracy_hi'].iloc[0]:.4f}] (n={int(hit['n'].iloc[0])})" if len(hit)
                    else "unavailable: " + (st["reason"].iloc[0] if len(st) else "not in this profile"))
            rows.append({"claim": claim["claim"], "model": model,
                         "seed_study_accuracy": claim["reported_accuracy"], "ours": ours})
    return pd.DataFrame(rows)


def head_to_head(vlm: pd.DataFrame, cnn: pd.DataFrame | None) -> pd.DataFrame:
    """CNN and VLM predictions on FER-2013 PrivateTest (fer7), on the images both scored:
    the CNN rows are restricted to the image ids of the VLM rows (and vice versa)."""
    faces = vlm[(vlm["label_set"] == "fer7") & (vlm["split"] == "private_test")]
    if cnn is None or cnn.empty or faces.empty:
        return faces
    cnn = cnn[(cnn["label_set"] == "fer7") & (cnn["split"] == "private_test")]
    common = set(faces["image_id"]) & set(cnn["image_id"])
    return pd.concat([cnn[cnn["image_id"].isin(common)], faces[faces["image_id"].isin(common)]],
                     ignore_index=True)


def plot_head_to_head(scores: pd.DataFrame, ax: plt.Axes | None = None) -> plt.Axes:
    """Horizontal bars of accuracy with 95% CIs, one per (backend, model, variant)."""
    ax = ax or plt.subplots(figsize=(8, 0.45 * max(len(scores), 2) + 1))[1]
    table = scores.sort_values("accuracy").reset_index(drop=True)
    names = [f"{b}:{m} [{v}]" + (" *random*" if n else "")
             for b, m, v, n in zip(table["backend"], table["model"], table["variant"], table["note"], strict=True)]
    err = np.vstack([table["accuracy"] - table["accuracy_lo"], table["accuracy_hi"] - table["accuracy"]])
    colors = ["tab:orange" if b == "cnn" else "tab:blue" for b in table["backend"]]
    ax.barh(names, table["accuracy"], xerr=err, color=colors, capsize=3)
    ax.set_xlabel("accuracy (95% bootstrap CI)")
    ax.set_xlim(0, 1)
    return ax


def plot_confusions(predictions: pd.DataFrame, max_panels: int = 32) -> plt.Figure:
    """Row-normalised confusion matrix (last column: no answer) per (model, dataset, variant)."""
    groups = list(predictions.groupby(["backend", "model", "dataset", "variant"], sort=False))[:max_panels]
    cols = min(4, max(len(groups), 1))
    rows = int(np.ceil(max(len(groups), 1) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4.8 * rows), squeeze=False)
    for ax, ((backend, model, dataset, variant), group) in zip(axes.flat, groups, strict=False):
        labels = get_label_set(group["label_set"].iloc[0])
        cm = confusion(group["y_true"].to_numpy(), group["y_pred"].to_numpy(), len(labels))
        flag = " (random weights)" if note_of(backend, model) else ""
        plot_confusion(cm, labels.names, ax=ax, title=f"{backend}:{model}{flag}\n{dataset} {variant}"[:90])
    for ax in list(axes.flat)[len(groups):]:
        ax.axis("off")
    fig.tight_layout()
    return fig
