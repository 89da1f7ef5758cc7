"""The soft-vote ensemble of the trained CNNs: a stronger CNN baseline that costs no training.

Per seed, the ensemble's probabilities for an image are the mean of its member CNNs'
probabilities (their ``scores``, softmax after test-time flip where the profile asks for it),
and its answer is the class of the highest mean. It is scored like any model, on every image
and subset its members predicted: its rows join the CNN stage's predictions table with
backend ``cnn_ensemble`` and model ``soft_vote``, so every table and the error analysis treat
it as one more model, never as one of the trained networks (``emolib.predictions.CNN_BACKENDS``). Its time per
image is the sum of its members' (it needs every one of them). Every member must have
predicted exactly the same images of a configuration; a missing or extra row is an error.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from emolib.predictions import ENSEMBLE_BACKEND, NO_PROMPT, make_predictions, score_matrix

MODEL = "soft_vote"
# what one member row and the ensemble row of the same image share
IMAGE_KEYS = ["image_id", "split", "dataset", "label_set", "y_true", "restoration", "subset", "seed"]


def soft_vote(predictions: pd.DataFrame) -> pd.DataFrame:
    """The ensemble's rows for the CNN rows (backend ``cnn``) of ``predictions``: per seed, the
    mean of the members' probabilities on each image. Empty where fewer than two CNNs predicted;
    ValueError when the members did not predict the same images of a configuration."""
    cnn = predictions[predictions["backend"] == "cnn"]
    if cnn["model"].nunique() < 2:
        return predictions.iloc[:0]
    frames = [_vote(group) for _, group in cnn.groupby(["dataset", "restoration", "subset", "seed"], sort=False)]
    return pd.concat(frames, ignore_index=True)


def describe(names: list[str] | tuple[str, ...]) -> str:
    """The ensemble in words, as tables name it beside its score."""
    return f"soft vote of {', '.join(sorted(names))} (mean of their probabilities)"


def _vote(group: pd.DataFrame) -> pd.DataFrame:
    """The ensemble's rows for one (dataset, restoration, subset, seed) of member rows."""
    names = sorted(group["model"].unique())
    if any(s is None for s in group["scores"]):
        raise ValueError(f"soft vote: a member of {names} has rows without probabilities (scores)")
    by_model = {name: rows.sort_values("image_id", kind="stable") for name, rows in group.groupby("model")}
    first = by_model[names[0]]
    for name in names[1:]:
        if not np.array_equal(by_model[name]["image_id"].to_numpy(), first["image_id"].to_numpy()):
            where = first[["dataset", "restoration", "subset", "seed"]].iloc[0].to_dict()
            raise ValueError(f"soft vote: {name} and {names[0]} predicted different images on {where}; "
                             "every member must predict the same images (rerun notebook 03)")
    matrices = [score_matrix(by_model[name]) for name in names]
    mean = np.mean(matrices, axis=0)
    latency = np.sum([by_model[name]["latency_s"].to_numpy() for name in names], axis=0)
    return make_predictions(**{k: first[k].to_numpy() for k in IMAGE_KEYS}, y_pred=mean.argmax(1).astype(np.int64),
                            scores=[row.tolist() for row in mean], model=MODEL, backend=ENSEMBLE_BACKEND,
                            prompt=NO_PROMPT, latency_s=latency)
