"""CNNs against a real VLM on the same faces: every model on the PrivateTest faces GPT-4V's
recorded answers cover (``fer_private_gpt4v``), scored against the FER+ plurality label.

Label mapping: FER-2013's seven classes map one to one onto FER+'s (angry -> anger, happy ->
happiness, sad -> sadness, the rest by name) through the labels' shared concepts
(``emolib.labels.SYNONYMS``). FER+ has an eighth class, *contempt*: a 7-class CNN can never
predict it, so a face whose FER+ plurality is contempt counts as wrong for the CNNs (the
tables report how many such faces there are, and the scores without them). FER+ faces whose
plurality is *unknown* or *not a face* have no label and are not in the subset. In the other
direction (scoring on FER-2013's own labels) a contempt answer has no counterpart and counts
as wrong.

The soft accuracy credits plausible answers: the share of FER+'s ten annotators who chose the
predicted label (0 for no answer), averaged over faces.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from emolib import catalog
from emolib.config import Profile
from emolib.data import ImageSet
from emolib.labels import SYNONYMS, get_label_set
from emolib.metrics import per_class_table, summarize
from emolib.predictions import NO_PREDICTION
from emolib.stats import mcnemar_test

RECORDED_SUBSET = "fer_private_gpt4v"
WHO = ["backend", "model"]


def label_map(source: str, target: str) -> np.ndarray:
    """(k_source + 1,) index in ``target`` of each ``source`` label (same concept), -1 where
    ``target`` has none; the last entry maps ``-1`` (no answer) to -1."""
    concept_of = {SYNONYMS.get(n, n): i for i, n in enumerate(get_label_set(target).names)}
    mapped = [concept_of.get(SYNONYMS.get(n, n), NO_PREDICTION) for n in get_label_set(source).names]
    return np.array([*mapped, NO_PREDICTION])


def relabel(predictions: pd.DataFrame, target: str) -> pd.DataFrame:
    """Rows expressed in label set ``target``: y_true and y_pred mapped through ``label_map``
    (a predicted label with no counterpart becomes -1, a wrong answer); ``scores`` dropped."""
    frames = []
    for source, rows in predictions.groupby("label_set", sort=False):
        table = label_map(source, target)
        frames.append(rows.assign(label_set=target, scores=None,
                                  y_true=table[rows["y_true"].to_numpy()],
                                  y_pred=table[rows["y_pred"].to_numpy()]))
    return pd.concat(frames, ignore_index=True) if frames else predictions


def _faces_frame(faces: ImageSet) -> pd.DataFrame:
    """image_id -> FER-2013 label, FER+ plurality label, row of FER+ votes."""
    if faces.meta is None or "ferplus_label" not in faces.meta:
        raise ValueError(f"{faces.name} has no FER+ votes attached: load it with load_faces(profile)")
    frame = pd.DataFrame({"image_id": faces.ids, "fer_label": faces.labels,
                          "ferplus_label": faces.meta["ferplus_label"].to_numpy(), "row": np.arange(len(faces))})
    return frame.drop_duplicates("image_id", keep=False).set_index("image_id")


def versus_gpt4v(predictions: pd.DataFrame, faces: ImageSet, profile: Profile) -> pd.DataFrame:
    """Every model's original-face predictions on ``fer_private_gpt4v`` (the models whose
    predicted subset covers it: the CNNs on ``fer_private``, GPT-4V itself), in ferplus8 with
    the FER+ plurality as truth, one row per (model, face). Added columns: ``fer_label``
    (FER-2013's own label, fer7) and ``vote_share`` (share of FER+ annotators who chose the
    predicted label)."""
    rows = predictions[predictions["restoration"] == "none"]
    rows = catalog.on_subset(rows, profile, RECORDED_SUBSET)
    rows = relabel(rows, "ferplus8")
    truth = _faces_frame(faces).reindex(rows["image_id"])
    if truth["ferplus_label"].isna().any() or (truth["ferplus_label"] < 0).any():
        raise ValueError(f"{RECORDED_SUBSET}: some faces have no FER+ label in {faces.name}; was the subset "
                         "written for other data?")
    recorded = rows["backend"] == "recorded"
    if (rows.loc[recorded, "y_true"].to_numpy() != truth.loc[recorded.to_numpy(), "ferplus_label"].to_numpy()).any():
        raise ValueError("the recorded answers' truth differs from the FER+ plurality of the loaded faces")
    votes = faces.soft_labels[truth["row"].to_numpy(dtype=int)]
    pred = rows["y_pred"].to_numpy()
    share = np.where(pred >= 0, votes[np.arange(len(rows)), np.maximum(pred, 0)], 0.0)
    return rows.assign(y_true=truth["ferplus_label"].to_numpy(dtype=np.int64),
                       fer_label=truth["fer_label"].to_numpy(dtype=np.int64), vote_share=share)


def score_versus(frame: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per model on the FER+ truth: n, accuracy, macro/weighted F1 with 95% bootstrap CIs,
    soft accuracy (mean vote share), accuracy without the contempt faces, and accuracy on
    FER-2013's own labels (``fer_label``; the VLM's answers mapped to fer7)."""
    table = summarize(frame, n_boot=n_boot, seed=seed, by=WHO)
    contempt = get_label_set("ferplus8").index("contempt")
    fer7_pred = label_map("ferplus8", "fer7")[frame["y_pred"].to_numpy()]
    extra = frame.assign(correct_fer=fer7_pred == frame["fer_label"].to_numpy(),
                         correct=frame["y_true"] == frame["y_pred"], contempt=frame["y_true"] == contempt)
    more = extra.groupby(WHO, sort=False).apply(lambda g: pd.Series({
        "soft_accuracy": g["vote_share"].mean(),
        "n_contempt": int(g["contempt"].sum()),
        "accuracy_without_contempt": g.loc[~g["contempt"], "correct"].mean(),
        "accuracy_fer2013_labels": g["correct_fer"].mean()}), include_groups=False).reset_index()
    return table.merge(more, on=WHO)


def mcnemar_versus(frame: pd.DataFrame, reference: tuple[str, str]) -> pd.DataFrame:
    """Each model against ``reference`` (backend, model) on the same faces: both accuracies,
    discordant counts (b: model right, reference wrong; c: the reverse) and McNemar's p."""
    right = frame.assign(correct=frame["y_true"] == frame["y_pred"]).pivot_table(
        index="image_id", columns=WHO, values="correct", aggfunc="first")
    if reference not in right.columns:
        raise ValueError(f"no predictions of {reference} on {RECORDED_SUBSET}")
    ref = right[reference]
    rows = []
    for who in [c for c in right.columns if c != reference]:
        both = right[who].notna() & ref.notna()
        a, r = right.loc[both, who].astype(bool), ref[both].astype(bool)
        b, c = int((a & ~r).sum()), int((~a & r).sum())
        rows.append({"backend": who[0], "model": who[1], "versus": f"{reference[0]}:{reference[1]}",
                     "n": int(both.sum()), "accuracy": a.mean(), "accuracy_versus": r.mean(), "b": b, "c": c,
                     "p": mcnemar_test(b, c)[1]})
    return pd.DataFrame(rows)


def per_class_versus(frame: pd.DataFrame) -> pd.DataFrame:
    """F1 (and precision, recall, support) per FER+ class and model, long form."""
    names = get_label_set("ferplus8").names
    parts = [per_class_table(g["y_true"], g["y_pred"], names).loc[list(names)].reset_index(names="class")
             .assign(backend=b, model=m) for (b, m), g in frame.groupby(WHO, sort=False)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
