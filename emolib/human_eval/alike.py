"""Do CNNs and VLMs err alike? Several models' errors on the same images, side by side.

Input (``frame``): the predictions of several models on the same ids, in one label set, one
row per (model, image), with a ``vote_share`` column (the share of human votes the predicted
label got). ``versus_recorded`` builds it for notebook 07 with
``emolib.vlm.compare.versus_gpt4v``: every CNN and GPT-4V on the FER-2013 PrivateTest faces
GPT-4V answered (``fer_private_gpt4v``), the FER+ plurality label as truth, in ferplus8 (the
label mapping is stated in ``emolib.vlm.compare``: a 7-class CNN cannot answer *contempt*).

A model is a (backend, model, seed); ``emolib.vlm.compare.who_labels`` names it
``backend:model`` (plus the seed where one model has several), as notebook 04 does. A wrong
answer is ``y_pred != y_true``: an unanswered row (-1) is wrong and counted (category ``no
answer``), never dropped. Every function first checks that the models answered exactly the
same ids with the same truth (``check_same_images``, ValueError otherwise): errors are never
compared on different images.

- ``category_shares``: per model, its errors in EC I / II / III / no answer, counts and shares;
- ``vote_plausibility``: per model, the share of its answered errors (EC I-III) whose predicted
  label at least ``t`` of the annotators chose (as ``plausibility.plausibility_table`` counts);
- ``error_overlap``: per pair of models, images wrong by both, by one only, by neither, the
  Jaccard index of the two wrong-id sets, the wrong-by-both count expected if the two erred
  independently, and how many shared errors are the same wrong label;
- ``error_patterns``: images per exact set of models wrong (the bars of an UpSet plot);
- ``overlap_summary``: images wrong by every model, right by every model, and the count
  expected if the models erred independently;
- ``errors_side_by_side``: notebook 07's table, per model, with the overlap against a reference.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from emolib import catalog
from emolib.config import Profile
from emolib.data import ImageSet
from emolib.human_eval.categories import (
    EC_I,
    EC_II,
    EC_III,
    ERROR_CATEGORIES,
    NO_ANSWER,
    add_error_categories,
    count_error_categories,
)
from emolib.human_eval.plausibility import share_at_least
from emolib.vlm import compare

WHO = ("backend", "model", "seed")
REFERENCE = ("recorded", "gpt4v")  # whose answers define the images (compare.RECORDED_SUBSET)
SHARE_COLUMNS = {EC_I: "share_ec_i", EC_II: "share_ec_ii", EC_III: "share_ec_iii", NO_ANSWER: "share_no_answer"}


def check_same_images(frame: pd.DataFrame) -> None:
    """ValueError unless ``frame`` is one label set, every image has a label, every model
    answered every id once, all models answered the same ids, and they agree on each truth."""
    if frame.empty:
        raise ValueError("no predictions to compare")
    frame = frame.reset_index(drop=True)
    label_sets = sorted(frame["label_set"].unique())
    if len(label_sets) != 1:
        raise ValueError(f"errors are compared in one label set; got {label_sets} (relabel first)")
    if (frame["y_true"] < 0).any():
        raise ValueError(f"{int((frame['y_true'] < 0).sum())} row(s) without a label: no error to compare")
    who = compare.who_labels(frame)
    twice = frame[pd.DataFrame({"who": who, "image_id": frame["image_id"]}).duplicated()]
    if len(twice):
        raise ValueError(f"{len(twice)} repeated (model, image) row(s), e.g. "
                         f"{list(zip(who[twice.index][:3], twice['image_id'][:3], strict=True))}")
    ids = {name: set(group) for name, group in frame.groupby(who, sort=False)["image_id"]}
    first, first_ids = next(iter(ids.items()))
    for name, got in ids.items():
        if got != first_ids:
            differ = sorted(got ^ first_ids)
            raise ValueError(f"{name} and {first} answered different images ({len(got)} and {len(first_ids)} "
                             f"ids, {len(differ)} not in both, e.g. {differ[:3]}): compare errors on identical "
                             "id sets only")
    truths = frame.groupby("image_id")["y_true"].nunique()
    if (truths > 1).any():
        raise ValueError(f"the models' truth differs on {int((truths > 1).sum())} image(s), e.g. "
                         f"{list(truths[truths > 1].index[:3])}")


def _keyed(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` checked, with a fresh index and a ``who`` column (``compare.who_labels``)."""
    check_same_images(frame)
    out = frame.reset_index(drop=True)
    return out.assign(who=compare.who_labels(out))


def wrong_answers(frame: pd.DataFrame) -> pd.DataFrame:
    """(n_images, n_models) bool, True where the model is wrong (no answer included); index
    image_id, columns the model labels in the order the models first appear."""
    keyed = _keyed(frame)
    wide = keyed.assign(wrong=keyed["y_pred"] != keyed["y_true"]).pivot(index="image_id", columns="who",
                                                                         values="wrong")
    return wide[list(dict.fromkeys(keyed["who"]))].astype(bool).rename_axis(columns=None)


def category_shares(frame: pd.DataFrame) -> pd.DataFrame:
    """Per model (who, backend, model, seed; in order of appearance): n, correct, errors,
    error_rate, the counts of EC I, EC II, EC III and no answer, and each as a share of the
    model's errors (``share_ec_i`` ...; NaN for a model without errors)."""
    keyed = _keyed(frame)
    counts = count_error_categories(keyed, by=("who", *WHO)).set_index("who")
    counts = counts.loc[list(dict.fromkeys(keyed["who"]))].reset_index()
    errors = counts["errors"].where(counts["errors"] > 0)
    shares = {column: counts[category] / errors for category, column in SHARE_COLUMNS.items()}
    order = ["who", *WHO, "n", "correct", "errors", "error_rate", *SHARE_COLUMNS]
    return counts[order].assign(**shares)


def vote_plausibility(frame: pd.DataFrame, thresholds: tuple[float, ...] = (0.1, 0.3)) -> pd.DataFrame:
    """Per model (who, backend, model, seed): its answered errors (EC I-III), those with
    votes, the mean vote share of their predicted labels and, per threshold t, the share of
    them whose predicted label got at least t of the votes (``share_ge_<t>``)."""
    if "vote_share" not in frame:
        raise ValueError("vote_plausibility needs a vote_share column (compare.versus_gpt4v adds it)")
    keyed = add_error_categories(_keyed(frame))
    rows = []
    for (who, *key), part in keyed.groupby(["who", *WHO], sort=False):
        votes = part.loc[part["error_category"].isin(ERROR_CATEGORIES), "vote_share"]
        row = {"who": who, **dict(zip(WHO, key, strict=True)), "answered_errors": len(votes),
               "with_votes": int(votes.notna().sum()), "mean_vote_share": votes.mean()}
        rows.append(row | {f"share_ge_{t:g}": share_at_least(votes, t) for t in thresholds})
    return pd.DataFrame(rows)


def error_overlap(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per pair of models (a, b; in order of appearance): n images, wrong_a, wrong_b,
    wrong_both, only_a, only_b, right_both, jaccard (wrong by both / wrong by either; NaN if
    neither errs), expected_both (wrong_a * wrong_b / n, what independent errors would share)
    and same_wrong_answer (wrong by both with the same predicted label)."""
    wrong = wrong_answers(frame)
    keyed = _keyed(frame)
    answer = keyed.pivot(index="image_id", columns="who", values="y_pred").loc[wrong.index]
    n, rows = len(wrong), []
    for a, b in combinations(wrong.columns, 2):
        wa, wb = wrong[a], wrong[b]
        both, either = wa & wb, wa | wb
        rows.append({"a": a, "b": b, "n": n, "wrong_a": int(wa.sum()), "wrong_b": int(wb.sum()),
                     "wrong_both": int(both.sum()), "only_a": int((wa & ~wb).sum()),
                     "only_b": int((wb & ~wa).sum()), "right_both": int((~either).sum()),
                     "jaccard": both.sum() / either.sum() if either.any() else np.nan,
                     "expected_both": wa.sum() * wb.sum() / n,
                     "same_wrong_answer": int((both & (answer[a] == answer[b]) & (answer[a] >= 0)).sum())})
    columns = ["a", "b", "n", "wrong_a", "wrong_b", "wrong_both", "only_a", "only_b", "right_both", "jaccard",
               "expected_both", "same_wrong_answer"]
    return pd.DataFrame(rows, columns=columns)


def error_patterns(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per set of models wrong on some image (right by all included): a bool column
    per model, ``models_wrong`` (how many) and ``images``; most images first."""
    wrong = wrong_answers(frame)
    patterns = wrong.value_counts(sort=False).rename("images").reset_index()
    patterns.insert(len(wrong.columns), "models_wrong", patterns[list(wrong.columns)].sum(axis=1))
    return patterns.sort_values(["images", "models_wrong"], ascending=[False, False], ignore_index=True)


def overlap_summary(frame: pd.DataFrame) -> dict:
    """n images, models, wrong_by_every_model, right_by_every_model, and
    expected_wrong_by_every_model (n times the product of the error rates: independent errors)."""
    wrong = wrong_answers(frame)
    return {"n": len(wrong), "models": len(wrong.columns),
            "wrong_by_every_model": int(wrong.all(axis=1).sum()),
            "right_by_every_model": int((~wrong).all(axis=1).sum()),
            "expected_wrong_by_every_model": len(wrong) * float(np.prod(wrong.mean(axis=0).to_numpy()))}


def errors_side_by_side(frame: pd.DataFrame, reference: tuple[str, str] = REFERENCE,
                        thresholds: tuple[float, ...] = (0.1, 0.3)) -> pd.DataFrame:
    """Per model: ``category_shares`` and ``vote_plausibility`` side by side, then its overlap
    with ``reference`` (backend, model): versus, wrong_both, only_model, only_versus, jaccard,
    expected_both, same_wrong_answer (missing on the reference's own row)."""
    table = category_shares(frame).merge(vote_plausibility(frame, thresholds).drop(columns=list(WHO)), on="who")
    ref = table.loc[(table["backend"] == reference[0]) & (table["model"] == reference[1]), "who"]
    if len(ref) != 1:
        raise ValueError(f"reference {reference} must be one model of the frame; models: {list(table['who'])}")
    ref = ref.iloc[0]
    rows = []
    for pair in error_overlap(frame).itertuples():
        if ref in (pair.a, pair.b):
            model_is_a = pair.b == ref
            rows.append({"who": pair.a if model_is_a else pair.b, "wrong_both": pair.wrong_both,
                         "only_model": pair.only_a if model_is_a else pair.only_b,
                         "only_versus": pair.only_b if model_is_a else pair.only_a, "jaccard": pair.jaccard,
                         "expected_both": pair.expected_both, "same_wrong_answer": pair.same_wrong_answer})
    overlap = pd.DataFrame(rows, columns=["who", "wrong_both", "only_model", "only_versus", "jaccard",
                                          "expected_both", "same_wrong_answer"])
    counts = ["wrong_both", "only_model", "only_versus", "same_wrong_answer"]
    table = table.assign(versus=ref).merge(overlap, on="who", how="left")
    return table.astype({c: "Int64" for c in counts})


def versus_recorded(predictions: pd.DataFrame, image_sets: dict[str, ImageSet],
                    profile: Profile) -> tuple[pd.DataFrame, str]:
    """The CNNs and GPT-4V on the faces GPT-4V answered (``compare.versus_gpt4v``, FER+
    plurality as truth) and "" ; or an empty frame / GPT-4V alone and a one-line "Not run"
    notice saying what is missing (no recorded answers, no CNN predictions on those faces)."""
    recorded = predictions[(predictions["backend"] == REFERENCE[0]) & (predictions["model"] == REFERENCE[1])
                           & (predictions["label_set"] == "ferplus8")]
    if recorded.empty:
        return predictions.iloc[:0], ("Not run: no recorded GPT-4V answers on FER+ among this profile's "
                                      "predictions (`vlm.recorded`, notebooks/04_vlm_zero_shot.ipynb).")
    dataset = recorded["dataset"].iloc[0]
    if dataset not in image_sets:
        raise ValueError(f"GPT-4V's FER+ answers name {dataset} images, which this profile does not load")
    frame = compare.versus_gpt4v(predictions, image_sets[dataset], profile)
    if (frame["backend"] == "cnn").any():
        return frame, ""
    n = frame["image_id"].nunique()
    if not catalog.predictions_path(profile, "cnn").is_file():
        return frame, (f"Not run: the CNN stage has no predictions for profile `{profile.name}` "
                       f"(run notebooks/03_cnn_training.ipynb): GPT-4V's {n:,} FER+ answers have no CNN to meet.")
    return frame, (f"Not run: no CNN predictions studied here cover the {n:,} faces GPT-4V answered "
                   "(the CNNs must predict all of `fer_private`; `human_eval.models` may leave them out).")
