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

A model is a (backend, model, seed): a CNN trained with several seeds (``cnn.seeds``) has one
row per seed in every table, each on the same n faces (never pooled into one n), and
``over_seeds`` adds its mean and standard deviation across seeds. McNemar's test compares every
seed with GPT-4V, Holm-corrected over all the tests of the table. Every table first checks
that all models answered exactly the same ids (``check_same_ids``).
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
from emolib.stats import holm, mcnemar_test

RECORDED_SUBSET = "fer_private_gpt4v"
WHO = ["backend", "model", "seed"]
# The metrics of ``score_versus`` that ``over_seeds`` summarises (CI bounds are not averaged).
SEED_METRICS = ("accuracy", "macro_f1", "weighted_f1", "soft_accuracy", "accuracy_without_contempt",
                "accuracy_fer2013_labels")


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
    the FER+ plurality as truth, one row per (backend, model, seed, face). Added columns:
    ``fer_label`` (FER-2013's own label, fer7) and ``vote_share`` (share of FER+ annotators who
    chose the predicted label)."""
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


def who_labels(table: pd.DataFrame) -> pd.Series:
    """(n,) ``backend:model`` of each row of ``table`` (a frame or a table of this module),
    `` seed <s>`` added where a (backend, model) has several seeds in ``table``; a table
    without a ``seed`` column is named by backend and model alone."""
    base = table["backend"].astype(str) + ":" + table["model"].astype(str)
    if "seed" not in table:
        return base
    several = table.groupby(["backend", "model"], sort=False)["seed"].transform("nunique") > 1
    return base.where(~several, base + " seed " + table["seed"].astype(str))


def _by_model_then_seed(table: pd.DataFrame) -> pd.DataFrame:
    """``table`` with each (backend, model)'s rows together, in order of first appearance,
    and its seeds in ascending order; a fresh index."""
    first = table.groupby(["backend", "model"], sort=False).ngroup()
    return table.assign(_first=first).sort_values(["_first", "seed"], kind="stable").drop(
        columns="_first").reset_index(drop=True)


def check_same_ids(frame: pd.DataFrame) -> None:
    """ValueError unless every model (``WHO``: backend, model, seed) of ``frame`` answered
    exactly the same image ids, each once: paired comparisons on identical ids only."""
    if frame.empty:
        raise ValueError(f"no predictions on {RECORDED_SUBSET} to compare")
    groups = iter(frame.groupby(WHO, sort=False)["image_id"])
    first, first_ids = next(groups)
    expected = set(first_ids)
    for who, ids in [(first, first_ids), *groups]:
        problem = catalog.id_problem(ids, expected)
        if problem:
            raise ValueError(f"{dict(zip(WHO, who, strict=True))} is not on the ids of "
                             f"{dict(zip(WHO, first, strict=True))}: {problem}")


def score_versus(frame: pd.DataFrame, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per model and seed (``WHO``) on the FER+ truth: n, accuracy, macro/weighted F1 with 95%
    bootstrap CIs (bootstrap seed ``seed``), soft accuracy (mean vote share), accuracy without
    the contempt faces, and accuracy on FER-2013's own labels (``fer_label``; the VLM's answers
    mapped to fer7). Every row is on the same ids (checked)."""
    check_same_ids(frame)
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
    return _by_model_then_seed(table.merge(more, on=WHO).astype({"n_contempt": int}))


def over_seeds(scores: pd.DataFrame, metrics: tuple[str, ...] = SEED_METRICS) -> pd.DataFrame:
    """One row per (backend, model) with more than one seed in ``scores`` (``score_versus``):
    ``n_seeds``, ``n`` (faces per seed, the same for every seed: never pooled), and per metric
    ``<metric>_mean_over_seeds`` and ``<metric>_sd_over_seeds`` (sample standard deviation,
    ddof=1). No rows when every model has one seed."""
    columns = ["backend", "model", "n_seeds", "n",
               *[f"{m}_{s}_over_seeds" for m in metrics for s in ("mean", "sd")]]
    rows = []
    for (backend, model), group in scores.groupby(["backend", "model"], sort=False):
        if group["seed"].nunique() != len(group):
            raise ValueError(f"{backend}:{model} has a seed twice in the scores: {list(group['seed'])}")
        if len(group) < 2:
            continue
        if group["n"].nunique() != 1:
            raise ValueError(f"{backend}:{model}: its seeds were scored on different n {sorted(set(group['n']))}")
        row = {"backend": backend, "model": model, "n_seeds": len(group), "n": int(group["n"].iloc[0])}
        for m in metrics:
            row[f"{m}_mean_over_seeds"] = group[m].mean()
            row[f"{m}_sd_over_seeds"] = group[m].std(ddof=1)
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def mcnemar_versus(frame: pd.DataFrame, reference: tuple[str, str], alpha: float = 0.05) -> pd.DataFrame:
    """Each model and seed against ``reference`` (backend, model; one seed) on the same faces
    (checked): both accuracies, discordant counts (b: model right, reference wrong; c: the
    reverse), McNemar's p, and ``p_holm`` / ``significant`` (Holm over all the rows' tests,
    adjusted p <= ``alpha``)."""
    check_same_ids(frame)
    is_ref = (frame["backend"] == reference[0]) & (frame["model"] == reference[1])
    ref_seeds = sorted(frame.loc[is_ref, "seed"].unique())
    if len(ref_seeds) != 1:
        raise ValueError(f"reference {reference} needs exactly one seed on {RECORDED_SUBSET}; has {ref_seeds}")
    right = frame.assign(correct=frame["y_true"] == frame["y_pred"]).pivot(
        index="image_id", columns=WHO, values="correct").astype(bool)
    ref = right[(*reference, ref_seeds[0])]
    rows = []
    for who in dict.fromkeys(map(tuple, frame.loc[~is_ref, WHO].to_numpy())):
        a = right[who]
        b, c = int((a & ~ref).sum()), int((~a & ref).sum())
        rows.append({"backend": who[0], "model": who[1], "seed": who[2], "versus": f"{reference[0]}:{reference[1]}",
                     "n": len(a), "accuracy": a.mean(), "accuracy_versus": ref.mean(), "b": b, "c": c,
                     "p": mcnemar_test(b, c)[1]})
    table = pd.DataFrame(rows, columns=["backend", "model", "seed", "versus", "n", "accuracy", "accuracy_versus",
                                        "b", "c", "p"])
    reject, adjusted = holm(table["p"].to_numpy(), alpha)
    return _by_model_then_seed(table.assign(p_holm=adjusted, significant=reject))


def per_class_versus(frame: pd.DataFrame) -> pd.DataFrame:
    """F1 (and precision, recall, support) per FER+ class and model and seed, long form; every
    model on the same ids (checked)."""
    check_same_ids(frame)
    names = get_label_set("ferplus8").names
    parts = [per_class_table(g["y_true"], g["y_pred"], names).loc[list(names)].reset_index(names="class")
             .assign(backend=b, model=m, seed=s) for (b, m, s), g in frame.groupby(WHO, sort=False)]
    return _by_model_then_seed(pd.concat(parts, ignore_index=True))


def _verdict(row) -> str:
    """Better or worse only where the Holm-adjusted test says so (``significant``, 5% level)."""
    if not row.significant:
        return "does not differ significantly (Holm, 5% level) from"
    return "is significantly " + ("better" if row.accuracy > row.accuracy_versus else "worse") + " than"


def describe_versus(scores: pd.DataFrame, over: pd.DataFrame, tests: pd.DataFrame) -> list[str]:
    """Markdown bullet lines of notebook 04's findings, every number read from ``scores``
    (``score_versus``), ``over`` (``over_seeds``) and ``tests`` (``mcnemar_versus``); a seed
    is named only where a model has several."""
    lines = [f"- On the {row.n:,} FER+ faces GPT-4V answered: `{who}` accuracy {row.accuracy:.1%} "
             f"[{row.accuracy_lo:.1%}, {row.accuracy_hi:.1%}], macro F1 {row.macro_f1:.3f}, soft accuracy "
             f"{row.soft_accuracy:.1%}; without the {row.n_contempt} contempt faces "
             f"{row.accuracy_without_contempt:.1%}; on FER-2013's own labels {row.accuracy_fer2013_labels:.1%}."
             for row, who in zip(scores.itertuples(), who_labels(scores), strict=True)]
    lines += [f"- `{row.backend}:{row.model}` over its {row.n_seeds} seeds (each on the same {row.n:,} faces, "
              f"mean ± sd across seeds): accuracy {row.accuracy_mean_over_seeds:.1%} ± "
              f"{row.accuracy_sd_over_seeds:.1%}, macro F1 {row.macro_f1_mean_over_seeds:.3f} ± "
              f"{row.macro_f1_sd_over_seeds:.3f}, soft accuracy {row.soft_accuracy_mean_over_seeds:.1%} ± "
              f"{row.soft_accuracy_sd_over_seeds:.1%}." for row in over.itertuples()]
    lines += [f"- `{who}` {_verdict(row)} {row.versus} "
              f"on the same faces ({row.accuracy:.1%} vs {row.accuracy_versus:.1%}; McNemar p = {row.p:.2g}, "
              f"Holm-adjusted over the table's {len(tests)} tests {row.p_holm:.2g}; b = {row.b}, c = {row.c})."
              for row, who in zip(tests.itertuples(), who_labels(tests), strict=True)]
    return lines
