"""Do CNNs and GPT-4V err alike: category shares, vote plausibility and overlaps against hand
counts on a constructed frame, the id checks, and exact overlaps on the shipped GPT-4V answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emolib import catalog
from emolib.config import load_profile
from emolib.human_eval import alike, plausibility
from emolib.labels import get_label_set
from emolib.predictions import make_predictions
from emolib.vlm import compare

PLUS = get_label_set("ferplus8")
IDS = ["i1", "i2", "i3", "i4", "i5", "i6", "i7"]
TRUTH = ["happiness", "sadness", "anger", "neutral", "fear", "contempt", "surprise"]
# Per model: predicted label (None = no answer) and the share of annotators who chose it.
# Categories from the ferplus8 hand table of test_errors.py: "." right, 1/2/3 = EC I/II/III.
ANSWERS = {
    #              i1          i2        i3         i4           i5          i6          i7
    ("cnn", "a"): (["happiness", "anger", "disgust", "happiness", "fear", "sadness", "surprise"],
                   #  .          2        3          1            .       3           .
                   [0.6, 0.3, 0.1, 0.0, 0.9, 0.5, 1.0]),
    ("cnn", "b"): (["surprise", "sadness", "disgust", "neutral", "happiness", "anger", "surprise"],
                   #  3          .          3          .          1            2        .
                   [0.2, 0.7, 0.1, 0.8, 0.0, 0.05, 1.0]),
    ("recorded", "gpt4v"): (["happiness", "anger", "disgust", None, "fear", "contempt", "surprise"],
                            #  .          2        3          no answer .    .           .
                            [0.6, 0.3, 0.1, 0.0, 0.9, 0.4, 1.0]),
}
A, B, G = "cnn:a", "cnn:b", "recorded:gpt4v"


def _frame(answers: dict = ANSWERS, ids: list[str] = IDS) -> pd.DataFrame:
    parts = []
    for (backend, model), (labels, shares) in answers.items():
        n = len(labels)
        parts.append(make_predictions(
            image_id=ids[:n], split="private_test", dataset="fer2013", label_set="ferplus8",
            y_true=[PLUS.index(t) for t in TRUTH[:n]], y_pred=[-1 if p is None else PLUS.index(p) for p in labels],
            model=model, backend=backend, restoration="none", prompt="-", seed=0, subset="fer_private_gpt4v",
            parse_status=["unparseable" if p is None else "text_match" for p in labels], vote_share=shares))
    return pd.concat(parts, ignore_index=True)


def test_category_shares_by_hand() -> None:
    table = alike.category_shares(_frame()).set_index("who")
    assert list(table.index) == [A, B, G]
    assert table.loc[A, ["n", "errors", "EC I", "EC II", "EC III", "no answer"]].tolist() == [7, 4, 1, 1, 2, 0]
    assert table.loc[A, ["share_ec_i", "share_ec_ii", "share_ec_iii"]].tolist() == pytest.approx([0.25, 0.25, 0.5])
    assert table.loc[B, ["EC I", "EC II", "EC III"]].tolist() == [1, 1, 2]  # contempt -> anger is EC II
    # GPT-4V: one EC II, one EC III, one unanswered face (an error, counted)
    assert table.loc[G, ["errors", "EC I", "EC II", "EC III", "no answer"]].tolist() == [3, 0, 1, 1, 1]
    assert table.loc[G, list(alike.SHARE_COLUMNS.values())].tolist() == pytest.approx([0, 1 / 3, 1 / 3, 1 / 3])
    assert table.loc[G, "error_rate"] == pytest.approx(3 / 7)


def test_vote_plausibility_by_hand() -> None:
    table = alike.vote_plausibility(_frame(), (0.1, 0.3)).set_index("who")
    # a: errors i2 0.3, i3 0.1, i4 0.0, i6 0.5; b: i1 0.2, i3 0.1, i5 0.0, i6 0.05
    assert table.loc[A, ["answered_errors", "share_ge_0.1", "share_ge_0.3"]].tolist() == pytest.approx([4, 0.75, 0.5])
    assert table.loc[A, "mean_vote_share"] == pytest.approx(0.225)
    assert table.loc[B, ["share_ge_0.1", "share_ge_0.3"]].tolist() == pytest.approx([0.5, 0.0])
    # GPT-4V's unanswered face is no answered error: i2 0.3, i3 0.1
    assert table.loc[G, ["answered_errors", "share_ge_0.1", "share_ge_0.3"]].tolist() == pytest.approx([2, 1.0, 0.5])


def test_overlaps_patterns_and_summary_by_hand() -> None:
    frame = _frame()
    # wrong: a {2, 3, 4, 6}, b {1, 3, 5, 6}, GPT-4V {2, 3, 4}; i7 right by all
    pairs = alike.error_overlap(frame).set_index(["a", "b"])
    counts = ["wrong_a", "wrong_b", "wrong_both", "only_a", "only_b", "right_both", "same_wrong_answer"]
    assert pairs.loc[(A, B), counts].tolist() == [4, 4, 2, 2, 2, 1, 1]  # i3 disgust by both; i6 differs
    assert pairs.loc[(A, G), counts].tolist() == [4, 3, 3, 1, 0, 3, 2]  # i2, i3 same; i4 unanswered
    assert pairs.loc[(B, G), counts].tolist() == [4, 3, 1, 3, 2, 1, 1]
    assert pairs["jaccard"].tolist() == pytest.approx([2 / 6, 3 / 4, 1 / 6])
    assert pairs["expected_both"].tolist() == pytest.approx([16 / 7, 12 / 7, 12 / 7])
    patterns = alike.error_patterns(frame)
    got = {tuple(r[[A, B, G]]): r["images"] for _, r in patterns.iterrows()}
    assert got == {(False, True, False): 2, (True, False, True): 2, (True, True, True): 1,
                   (True, True, False): 1, (False, False, False): 1}
    assert patterns["images"].iloc[0] == 2 and patterns["models_wrong"].max() == 3
    summary = alike.overlap_summary(frame)
    assert (summary["n"], summary["models"], summary["wrong_by_every_model"], summary["right_by_every_model"]) == (
        7, 3, 1, 1)
    assert summary["expected_wrong_by_every_model"] == pytest.approx(7 * 4 / 7 * 4 / 7 * 3 / 7)


def test_side_by_side_against_the_reference() -> None:
    table = alike.errors_side_by_side(_frame(), ("recorded", "gpt4v"), (0.1, 0.3)).set_index("who")
    assert set(table["versus"]) == {G}
    columns = ["wrong_both", "only_model", "only_versus"]
    assert table.loc[A, columns].tolist() == [3, 1, 0]
    assert table.loc[B, columns].tolist() == [1, 3, 2]
    assert table.loc[[A, B], "jaccard"].tolist() == pytest.approx([3 / 4, 1 / 6])
    assert table.loc[G, columns].isna().all()  # no overlap of the reference with itself
    assert table.loc[A, "share_ge_0.3"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="reference"):
        alike.errors_side_by_side(_frame(), ("recorded", "gpt5"))


def test_different_ids_are_refused() -> None:
    fewer = {**ANSWERS, ("cnn", "b"): (ANSWERS[("cnn", "b")][0][:6], ANSWERS[("cnn", "b")][1][:6])}
    with pytest.raises(ValueError, match="answered different images"):
        alike.error_overlap(_frame(fewer))
    renamed = _frame()
    renamed.loc[(renamed["model"] == "a") & (renamed["image_id"] == "i7"), "image_id"] = "i8"
    for function in (alike.category_shares, alike.vote_plausibility, alike.error_overlap, alike.error_patterns):
        with pytest.raises(ValueError, match="answered different images"):
            function(renamed)


def test_other_mismatches_are_refused() -> None:
    frame = _frame()
    twice = pd.concat([frame, frame.iloc[[0]]], ignore_index=True)
    with pytest.raises(ValueError, match="repeated"):
        alike.wrong_answers(twice)
    truth = frame.copy()
    truth.loc[(truth["model"] == "b") & (truth["image_id"] == "i1"), "y_true"] = PLUS.index("fear")
    with pytest.raises(ValueError, match="truth differs"):
        alike.wrong_answers(truth)
    with pytest.raises(ValueError, match="one label set"):
        alike.wrong_answers(frame.assign(label_set=np.where(frame["model"] == "a", "fer7", "ferplus8")))
    with pytest.raises(ValueError, match="vote_share"):
        alike.vote_plausibility(frame.drop(columns="vote_share"))


def test_seeds_of_one_model_are_separate_models() -> None:
    frame = _frame()
    second = frame[frame["model"] == "a"].assign(seed=1)
    labels = set(alike.wrong_answers(pd.concat([frame, second], ignore_index=True)).columns)
    assert labels == {"cnn:a seed 0", "cnn:a seed 1", B, G}


@pytest.mark.data
def test_shipped_gpt4v_answers_against_a_cnn_with_known_wrong_faces(data_root: Path, tmp_path: Path,
                                                                     monkeypatch) -> None:
    """GPT-4V's recorded FER+ answers and a fake CNN that is right on every face except a
    chosen set (and the contempt faces, which no 7-class CNN can answer), through
    ``compare.versus_gpt4v`` as notebook 07 runs it: the overlap counts are exact."""
    from emolib.vlm.recorded import ferplus_test_faces, load_recorded_ferplus, recorded_predictions

    monkeypatch.setenv("EMOLIB_RESULTS_DIR", str(tmp_path))
    profile = load_profile("smoke")
    ferplus_dir = data_root / "fer2013/ferplus"
    faces = ferplus_test_faces(ferplus_dir)
    gpt = recorded_predictions(load_recorded_ferplus("gpt4v", faces=faces))
    catalog.write_subsets(profile, {"fer_private": ("fer2013", faces.ids)})
    catalog.write_stage_subset(catalog.vlm_store(profile), "fer_private_gpt4v", "fer2013", gpt["image_id"].to_numpy())

    plurality = faces.meta["ferplus_label"].to_numpy()
    as_fer7 = compare.label_map("ferplus8", "fer7")[plurality]  # -1: contempt or no FER+ label
    y_pred = np.where(as_fer7 >= 0, as_fer7, faces.labels)
    answered = set(gpt["image_id"])
    contempt = {i for i, p in zip(faces.ids, plurality, strict=True) if i in answered and p == PLUS.index("contempt")}
    chosen = set(sorted(answered - contempt)[::5])  # every 5th answered face: the CNN errs there on purpose
    pick = np.isin(faces.ids, list(chosen))
    y_pred[pick] = (y_pred[pick] + 1) % 7
    cnn = make_predictions(image_id=faces.ids, split=faces.splits, dataset="fer2013", label_set="fer7",
                           y_true=faces.labels, y_pred=y_pred, model="fake", backend="cnn", restoration="none",
                           prompt="-", seed=0, subset="fer_private")
    versus, notice = alike.versus_recorded(pd.concat([cnn, gpt], ignore_index=True), {"fer2013": faces}, profile)
    assert notice == ""

    cnn_wrong = chosen | contempt
    gpt_wrong = set(gpt.loc[gpt["y_pred"] != gpt["y_true"], "image_id"])
    assert (len(answered), len(gpt_wrong), len(contempt)) == (3571, 1277, 29)
    pair = alike.error_overlap(versus).iloc[0]
    assert (pair.a, pair.b, pair.n) == ("cnn:fake", "recorded:gpt4v", 3571)
    assert (pair.wrong_a, pair.wrong_b) == (len(cnn_wrong), len(gpt_wrong))
    assert pair.wrong_both == len(cnn_wrong & gpt_wrong)
    assert (pair.only_a, pair.only_b) == (len(cnn_wrong - gpt_wrong), len(gpt_wrong - cnn_wrong))
    assert pair.right_both == len(answered - cnn_wrong - gpt_wrong)
    assert pair.jaccard == pytest.approx(len(cnn_wrong & gpt_wrong) / len(cnn_wrong | gpt_wrong))
    summary = alike.overlap_summary(versus)
    assert summary["wrong_by_every_model"] == len(cnn_wrong & gpt_wrong)
    # GPT-4V's vote plausibility here is the one plausibility_table reports for the same answers
    ours = alike.vote_plausibility(versus).set_index("who").loc["recorded:gpt4v"]
    table = plausibility.plausibility_table(gpt, {"fer2013": faces}).set_index("error_category").loc["all errors"]
    assert ours["answered_errors"] == table["errors"] == len(gpt_wrong) - 1  # one unanswered ("pain")
    assert ours[["share_ge_0.1", "share_ge_0.3"]].tolist() == pytest.approx(table[["share_ge_0.1", "share_ge_0.3"]])
