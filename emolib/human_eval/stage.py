"""What human evaluation reads (notebook 07): every model's predictions, through the catalog.

``collect_predictions(profile, image_sets)`` returns the CNN (notebook 03) and VLM
(notebook 04: CLIP, its probe, generative models, recorded answers) predictions on the
original images, and a sources table with one row per stage and per model: a stage that has
not run is a ``not run`` row naming its notebook; a data set whose images are not on the
machine (recorded answers on ArtPhoto, Abstract) is kept for the error counts and marked
``no images here: not sampled``. Nothing is dropped without a row saying so.
"""

from __future__ import annotations

import pandas as pd

from emolib import catalog
from emolib.config import Profile
from emolib.data import ImageSet, load_sets
from emolib.predictions import CNN_BACKENDS

STAGES = ("cnn", "vlm")


def load_image_sets(profile: Profile) -> dict[str, ImageSet]:
    """FER-2013 and every available evoked set of a profile (``emolib.data.load_sets``: Emotion6
    and the evoked sets of ``data.sets``), keyed by ``ImageSet.name``."""
    data = load_sets(profile)
    return {s.name: s for s in (data.faces, *data.evoked().values())}


def collect_predictions(profile: Profile, image_sets: dict[str, ImageSet]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All predictions on original images that human evaluation studies (``human_eval.models``
    keeps only those models when set), and the sources table (stage, backend, model, dataset,
    subset, rows, status)."""
    predictions, stages = catalog.study_predictions(profile, STAGES)
    # original images; rows of an outside protocol (CLIP_benchmark's, for notebook 04's comparison
    # with published figures) are the same model asked another way, not a model of their own
    predictions = predictions[(predictions["restoration"] == "none")
                              & ~predictions["subset"].isin(catalog.PROTOCOL_SUBSETS)]
    if profile.human_eval.models:
        predictions = predictions[predictions["model"].isin(profile.human_eval.models)]
    rows = [{"stage": r.stage, "backend": "", "model": "", "dataset": "", "subset": "", "rows": 0,
             "status": r.status} for r in stages.itertuples() if r.status != "found"]
    for (backend, model, dataset, subset), group in predictions.groupby(
            ["backend", "model", "dataset", "subset"], sort=False):
        rows.append({"stage": "cnn" if backend in CNN_BACKENDS else "vlm", "backend": backend, "model": model,
                     "dataset": dataset, "subset": subset, "rows": len(group),
                     "status": "found" if dataset in image_sets else "no images here: counted, not sampled"})
    sources = pd.DataFrame(rows, columns=["stage", "backend", "model", "dataset", "subset", "rows", "status"])
    return predictions.reset_index(drop=True), sources


def with_images(predictions: pd.DataFrame, image_sets: dict[str, ImageSet]) -> pd.DataFrame:
    """The rows whose images are on this machine (what can be sampled and shown)."""
    return predictions[predictions["dataset"].isin(list(image_sets))].reset_index(drop=True)
