"""LAION CLIP_benchmark's FER-2013 protocol, and the published CLIP numbers beside ours.

CLIP_benchmark (and MTEB's FER2013ZeroShot) score FER-2013 on the 7,178 faces of the Kaggle
``test/`` folder (PublicTest + PrivateTest: subset ``catalog.FER_KAGGLE_TEST``) with their own
six templates and seven class names (``templates.yaml``, ``clip_prompts: clip_benchmark``). A
class embedding is the normalised mean of the normalised template embeddings (as
``emolib.vlm.clip`` builds it), ``acc1`` is top-1 accuracy and ``mean_per_class_recall`` the
mean over the classes of each class's recall. Papers and this study score the 3,589
PrivateTest faces with their own templates instead (``catalog.fer_eval_name``), so only the
rows scored here by the benchmark's protocol (prompt column ``clip_benchmark``) compare with
its published numbers.

- ``PUBLISHED``: the published figures, each with the model as this study names it and its source;
- ``clip_benchmark_texts(label_set)``: the prompt strings of the protocol (templates x class words);
- ``score_clip_benchmark(backend, image_set, recorder)``: a CLIP backend's rows by the protocol;
- ``clip_benchmark_scores(predictions)``: model, n, acc1, mean_per_class_recall of those rows;
- ``clip_benchmark_table(predictions, status, profile)``: every published figure and every other
  CLIP model of the profile, ours beside it, or ``not measured here: <why>``. A random-weight
  stand-in never shows a number.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from emolib import catalog
from emolib.config import Profile
from emolib.data import ImageSet
from emolib.labels import LabelSet, get_label_set
from emolib.metrics import classification_scores
from emolib.recorder import CostRecorder
from emolib.templates import class_words, clip_templates
from emolib.vlm.types import AVAILABLE, CLIP_BENCHMARK_PROMPT, DEFAULT_PROMPT, RANDOM_FLAG, ModelSpec

CLIP_BENCHMARK_SOURCE = "CLIP_benchmark benchmark/benchmark.csv"
MTEB_SOURCE = "MTEB FER2013ZeroShot"
KAGGLE_TEST_SIZE = 7178  # faces in the Kaggle test/ folder: what the published numbers are on
# Published top-1 accuracy on those faces (fractions), model named as vlm.clip_models names it.
PUBLISHED = (
    {"model": "ViT-B-32/openai", "published_acc1": 0.4094, "source": CLIP_BENCHMARK_SOURCE},
    {"model": "ViT-L-14/openai", "published_acc1": 0.4896, "source": CLIP_BENCHMARK_SOURCE},
    {"model": "ViT-L-14/laion2b_s32b_b82k", "published_acc1": 0.5370, "source": CLIP_BENCHMARK_SOURCE},
    {"model": "transformers:google/siglip-so400m-patch14-384", "published_acc1": 0.5421, "source": MTEB_SOURCE},
)
TABLE_COLUMNS = ["model", "published_acc1", "source", "ours_acc1", "ours_mean_per_class_recall", "ours_n",
                 "difference", "ours_own_protocol", "own_subset", "own_n", "ours_note"]
NOT_MEASURED = "not measured here"


# ----------------------------------------------------------------------------- protocol
def clip_benchmark_texts(label_set: LabelSet) -> list[str]:
    """Every prompt string of the protocol for ``label_set`` (class by class in label-set order,
    templates in file order): what the text encoder reads."""
    templates = clip_templates(label_set, prompts=CLIP_BENCHMARK_PROMPT)
    return [t.replace("{c}", w) for words in class_words(label_set, CLIP_BENCHMARK_PROMPT) for w in words
            for t in templates]


def score_clip_benchmark(backend, image_set: ImageSet, recorder: CostRecorder) -> pd.DataFrame:
    """Predictions of a CLIP ``backend`` (``emolib.vlm.clip.ClipBackend``) on ``image_set`` (the
    faces of ``fer_kaggle_test``) with CLIP_benchmark's templates and class names, prompt column
    ``clip_benchmark``; a timed ``infer`` phase. Answers go through the backend's cache."""
    with recorder.phase("infer", model=str(backend.spec), items=len(image_set), dataset=image_set.name,
                        restoration=image_set.variant, subset=image_set.subset_name,
                        prompt=CLIP_BENCHMARK_PROMPT) as handle:
        frame = backend.predict_prompts(image_set, image_set.label_set, CLIP_BENCHMARK_PROMPT, CLIP_BENCHMARK_PROMPT)
        handle.extra["cache_hits"] = backend.cache.hits
    return frame


def clip_benchmark_scores(predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per CLIP model with rows by the protocol (backend ``clip``, prompt
    ``clip_benchmark``, subset ``fer_kaggle_test``): model, n, acc1 (top-1 accuracy) and
    mean_per_class_recall (the mean recall over the classes present), as fractions."""
    rows = predictions[(predictions["backend"] == "clip") & (predictions["prompt"] == CLIP_BENCHMARK_PROMPT)
                       & (predictions["subset"] == catalog.FER_KAGGLE_TEST)]
    out = []
    for model, group in rows.groupby("model", sort=False):
        k = len(get_label_set(group["label_set"].iloc[0]))
        scores = classification_scores(group["y_true"].to_numpy(), group["y_pred"].to_numpy(), k)
        out.append({"model": model, "n": len(group), "acc1": scores["accuracy"],
                    "mean_per_class_recall": scores["macro_recall"]})
    return pd.DataFrame(out, columns=["model", "n", "acc1", "mean_per_class_recall"])


def own_protocol_scores(predictions: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """model, n, accuracy of each CLIP model on the study's own FER evaluation subset
    (``catalog.fer_eval_name``: original faces, the profile's own templates)."""
    rows = predictions[(predictions["backend"] == "clip") & (predictions["prompt"] == DEFAULT_PROMPT)
                       & (predictions["restoration"] == "none") & (predictions["label_set"] == "fer7")
                       & (predictions["subset"] == catalog.fer_eval_name(profile))]
    table = rows.assign(correct=rows["y_true"] == rows["y_pred"]).groupby("model", sort=False)
    return table.agg(n=("correct", "size"), accuracy=("correct", "mean")).reset_index()


# ----------------------------------------------------------------------------- table
def why_not_measured(model: str, status: pd.DataFrame, profile: Profile, scored: bool) -> str:
    """'' when ``model``'s protocol rows can be shown; else ``not measured here: <why>`` (not in
    the profile, random weights, not in ``vlm.clip_benchmark_models``, unavailable and why, or
    no rows). ``status``: the VLM stage's status table; ``scored``: the model has protocol rows."""
    row = status[(status["backend"] == "clip") & (status["model"] == model)]
    if model not in profile.vlm.clip_models:
        return f"{NOT_MEASURED}: not in this profile (vlm.clip_models)"
    if ModelSpec("clip", model).is_random or (row["note"] == RANDOM_FLAG).any():
        return f"{NOT_MEASURED}: {RANDOM_FLAG}"
    if scored:
        return ""
    if model not in profile.vlm.clip_benchmark_models:
        return f"{NOT_MEASURED}: not in vlm.clip_benchmark_models"
    if len(row) and row["status"].iloc[0] != AVAILABLE:
        return f"{NOT_MEASURED}: unavailable: {row['reason'].iloc[0]}"
    return (f"{NOT_MEASURED}: no {CLIP_BENCHMARK_PROMPT} rows in these predictions: run "
            f"notebooks/{catalog.NOTEBOOKS['vlm']} for this profile again")


def _measured_note(model: str, n: int, status: pd.DataFrame) -> str:
    """What a table must say beside a measured row: a sample size other than the benchmark's,
    and the status note (an earlier run's predictions kept, say)."""
    notes = [] if n == KAGGLE_TEST_SIZE else [f"n={n:,}, not the {KAGGLE_TEST_SIZE:,} faces of the published figure"]
    row = status[(status["backend"] == "clip") & (status["model"] == model)]
    notes += [note for note in row["note"] if note]
    return "; ".join(notes)


def _table_row(model: str, published: dict | None, ours: pd.DataFrame, own: pd.DataFrame,
               status: pd.DataFrame, profile: Profile) -> dict:
    """One row of ``clip_benchmark_table``."""
    why = why_not_measured(model, status, profile, scored=model in set(ours["model"]))
    mine = ours[ours["model"] == model]
    theirs = own[own["model"] == model] if not why.endswith(RANDOM_FLAG) else own.iloc[:0]
    acc1 = mine["acc1"].iloc[0] if not why else np.nan
    recall = mine["mean_per_class_recall"].iloc[0] if not why else np.nan
    published_acc1 = published["published_acc1"] if published else np.nan
    return {"model": model, "published_acc1": published_acc1, "source": published["source"] if published else "",
            "ours_acc1": acc1, "ours_mean_per_class_recall": recall,
            "ours_n": int(mine["n"].iloc[0]) if not why else pd.NA, "difference": acc1 - published_acc1,
            "ours_own_protocol": theirs["accuracy"].iloc[0] if len(theirs) else np.nan,
            "own_subset": catalog.fer_eval_name(profile), "own_n": int(theirs["n"].iloc[0]) if len(theirs) else pd.NA,
            "ours_note": why or _measured_note(model, int(mine["n"].iloc[0]), status)}


def clip_benchmark_table(predictions: pd.DataFrame, status: pd.DataFrame, profile: Profile) -> pd.DataFrame:
    """The published figures (``PUBLISHED``), then every other CLIP model of the profile, with
    ours beside them (``TABLE_COLUMNS``; accuracies as fractions): ``ours_acc1`` and
    ``ours_mean_per_class_recall`` by CLIP_benchmark's protocol on ``fer_kaggle_test``
    (``ours_n`` faces), ``difference`` = ours_acc1 - published_acc1 (NaN unless both are
    numbers), ``ours_own_protocol``: the same model's accuracy on the study's own evaluation
    subset ``own_subset`` (``own_n`` faces, the profile's templates). ``ours_note`` says
    ``not measured here: <why>`` wherever ours is empty. ``predictions`` and ``status``: the VLM
    stage's (``run_zero_shot``)."""
    ours, own = clip_benchmark_scores(predictions), own_protocol_scores(predictions, profile)
    listed = {p["model"] for p in PUBLISHED}
    rows = [_table_row(p["model"], p, ours, own, status, profile) for p in PUBLISHED]
    rows += [_table_row(m, None, ours, own, status, profile) for m in profile.vlm.clip_models if m not in listed]
    return pd.DataFrame(rows, columns=TABLE_COLUMNS).astype({"ours_n": "Int64", "own_n": "Int64"})
