"""Agreement statistics against scikit-learn / statsmodels / krippendorff, and vote-based
plausibility against hand-computed shares and the raw FER+ vote file."""

from __future__ import annotations

from pathlib import Path

import krippendorff
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import aggregate_raters, fleiss_kappa

from emolib.data import ImageSet
from emolib.human_eval import agreement, plausibility
from emolib.labels import get_label_set
from emolib.predictions import make_predictions

V = {"m": "model", "l": "label", "b": "both", "n": "neither"}


def _annotations(ratings: dict[str, str]) -> pd.DataFrame:
    """{annotator: one letter per item (m/l/b/n, '.' = not rated)} -> long annotations."""
    rows = [
        {"item_id": f"i{k:02d}", "annotator": who, "verdict": V[c]}
        for who, letters in ratings.items()
        for k, c in enumerate(letters)
        if c != "."
    ]
    return pd.DataFrame(rows)


def _sample(n: int, categories: str) -> pd.DataFrame:
    cat = {"1": "EC I", "2": "EC II", "3": "EC III"}
    return pd.DataFrame(
        {
            "item_id": [f"i{k:02d}" for k in range(n)],
            "model": ["m1"] * n,
            "error_category": [cat[c] for c in categories],
            "weight": 1.0,
        }
    )


def test_cohen_kappa_hand_computed_and_sklearn() -> None:
    # po = 7/10; marginals a m4 l3 b2 n1, b m3 l2 b4 n1: pe = (12 + 6 + 8 + 1) / 100 = 0.27
    ann = _annotations({"a": "mmmmlllbbn", "b": "mmmllbbbbn"})
    matrix = agreement.rating_matrix(ann)
    assert agreement.cohen_kappa(matrix) == pytest.approx(0.43 / 0.73)
    assert agreement.cohen_kappa(matrix) == pytest.approx(
        cohen_kappa_score(list("mmmmlllbbn"), list("mmmllbbbbn"))
    )


def test_three_annotators_with_gaps_against_the_libraries() -> None:
    ratings = {"a": "mmlbnmllbm.m", "b": "mllbnmlbbmnm", "c": "mmlbn.llbmnl"}
    ann = _annotations(ratings)
    matrix = agreement.rating_matrix(ann)
    codes = {"m": 0, "l": 1, "b": 2, "n": 3, ".": np.nan}
    data = np.array([[codes[c] for c in letters] for letters in ratings.values()], dtype=float)
    assert agreement.krippendorff_alpha(matrix) == pytest.approx(
        krippendorff.alpha(
            reliability_data=data, level_of_measurement="nominal", value_domain=[0, 1, 2, 3]
        )
    )
    complete = data[:, ~np.isnan(data).any(axis=0)].T.astype(int)
    table, _ = aggregate_raters(complete, n_cat=4)
    assert agreement.fleiss(matrix) == pytest.approx(fleiss_kappa(table, method="fleiss"))
    pairs = []
    for i, j in [(0, 1), (0, 2), (1, 2)]:
        ok = ~np.isnan(data[i]) & ~np.isnan(data[j])
        pairs.append(cohen_kappa_score(data[i, ok], data[j, ok]))
    assert agreement.cohen_kappa(matrix) == pytest.approx(np.mean(pairs))


def test_agreement_table_per_category_and_undefined_cases() -> None:
    ratings = {"a": "mmlbnmllbmlm", "b": "mllbnmlbbmnm"}
    sample = _sample(12, "111122223333")
    table = agreement.agreement_table(_annotations(ratings), sample).set_index("error_category")
    sub = _annotations({k: v[4:8] for k, v in ratings.items()})
    sub["item_id"] = [f"i{int(i[1:]) + 4:02d}" for i in sub["item_id"]]
    assert table.loc["EC II", "cohen_kappa"] == pytest.approx(
        cohen_kappa_score(list(ratings["a"][4:8]), list(ratings["b"][4:8]))
    )
    assert table.loc["all", "items_multi_rated"] == 12 and table.loc["EC I", "annotators"] == 2
    one = agreement.agreement_table(_annotations({"a": "mmlbnmllbmlm"}), sample)
    assert one[["cohen_kappa", "fleiss_kappa", "krippendorff_alpha"]].isna().all().all()
    empty = agreement.agreement_table(_annotations({}), sample)
    assert (empty["annotators"] == 0).all()


def test_side_with_model_shares_and_weights() -> None:
    ann = _annotations({"a": "mlbn", "b": "mmln"})
    sample = _sample(4, "1122").assign(weight=[1.0, 1.0, 3.0, 3.0])
    side = agreement.side_with_model(ann, sample).set_index("error_category")
    assert side.loc["EC I", "share_model"] == pytest.approx(3 / 4)  # m, l | m, m
    assert side.loc["EC II", "model_plausible"] == pytest.approx(1 / 4)  # b, n | l, n
    # all: weights 1,1 (EC I: 3 model of 4) and 3,3 (EC II: 1 both of 4) -> (3 + 3) / 16
    assert side.loc["all", "model_plausible"] == pytest.approx((3 * 1 + 1 * 3) / (4 * 1 + 4 * 3))


def _voted_set() -> ImageSet:
    names = ("anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral")
    votes = np.array(
        [[0.5, 0.3, 0, 0, 0.2, 0, 0], [0, 0, 0.05, 0.6, 0, 0.35, 0], [0.1, 0, 0.9, 0, 0, 0, 0]],
        dtype=np.float32,
    )
    return ImageSet(
        name="e6",
        label_set_name="emotion6",
        ids=np.array(["x", "y", "z"], dtype=object),
        splits=np.array(["test"] * 3, dtype=object),
        labels=np.array([0, 3, 2]),
        pixels=np.zeros((3, 2, 2), np.uint8),
        soft_labels=votes,
        soft_label_names=names,
    )


def test_vote_share_of_predicted_label_hand_computed() -> None:
    preds = make_predictions(
        image_id=["x", "y", "z", "x", "y", "z"],
        split=["test"] * 6,
        dataset=["e6"] * 6,
        label_set=["emotion6"] * 6,
        y_true=[0, 3, 2, 0, 3, 2],
        y_pred=[1, 5, 0, 4, 2, -1],
        model=["m1"] * 3 + ["m2"] * 3,
        backend="x",
        restoration="none",
        prompt="default",
        seed=0,
        subset="e6_all",
        parse_status=["json"] * 5 + ["unparseable"],
    )
    shares = plausibility.predicted_vote_share(preds, {"e6": _voted_set()})
    np.testing.assert_allclose(shares, [0.3, 0.35, 0.1, 0.2, 0.05, np.nan])
    table = plausibility.plausibility_table(preds, {"e6": _voted_set()}).set_index(
        ["model", "error_category"]
    )
    assert table.loc[("m1", "all errors"), "share_ge_0.3"] == pytest.approx(2 / 3)
    assert table.loc[("m1", "all errors"), "share_ge_0.1"] == pytest.approx(1.0)
    assert table.loc[("m1", "EC III"), "errors"] == 3  # anger->disgust, joy->surprise, fear->anger
    assert table.loc[("m2", "all errors"), "share_ge_0.1"] == pytest.approx(0.5)  # 0.2 and 0.05
    assert table.loc[("m2", "all errors"), "errors"] == 2  # the unparseable row is not an EC


def test_fer7_labels_read_ferplus_votes_by_concept() -> None:
    assert plausibility.vote_column("happy", get_label_set("ferplus8").names) == 1
    assert plausibility.vote_column("angry", get_label_set("ferplus8").names) == 4
    assert plausibility.vote_column("contempt", get_label_set("fer7").names) is None


@pytest.mark.data
def test_recorded_gpt4v_plausibility_matches_raw_ferplus_votes(data_root: Path) -> None:
    """GPT-4V's FER+ errors, read by the one recorded-answers loader the VLM stage uses
    (``emolib.vlm.recorded``): our table against a direct computation from fer2013new.csv."""
    from emolib.vlm.recorded import ferplus_test_faces, load_recorded_ferplus, recorded_predictions

    ferplus_dir = data_root / "fer2013/ferplus"
    raw = pd.read_csv(ferplus_dir / "fer2013new.csv")
    faces = ferplus_test_faces(ferplus_dir)  # PrivateTest with FER+ votes, joined as the loader joins
    loaded = load_recorded_ferplus("gpt4v", ferplus_dir=ferplus_dir)
    preds = recorded_predictions(loaded)
    csv = data_root / "recorded/gpt4v/ferplus_predictions.csv"
    recorded = pd.read_csv(csv)
    # fer0033120.png names two PrivateTest rows of fer2013new.csv; the face FER+'s map matches
    # by pixels has no emotion vote: not joined, and counted
    assert len(recorded) == 3572 and len(preds) == 3571 and loaded.unmatched == 1
    recorded = recorded[recorded["name"] != "fer0033120.png"]
    right = recorded["gpt4v"].str.split(",").str[0].str.strip() == recorded["gt"]
    assert (preds["y_pred"] == preds["y_true"]).sum() == right.sum() == 2294  # 64.2%
    assert (preds["parse_status"] == "unparseable").sum() == 1  # the answer "pain"
    table = plausibility.plausibility_table(preds, {"fer2013": faces}).set_index("error_category")
    # independent: join the recorded answers to the raw votes by FER+ image name
    emotions = list(get_label_set("ferplus8").names)
    joined = recorded.merge(raw[["Image name", *emotions]], left_on="name", right_on="Image name")
    first = joined["gpt4v"].str.split(",").str[0].str.strip()
    wrong = (first != joined["gt"]) & first.isin(emotions)
    votes = joined.loc[wrong, emotions].to_numpy(float)
    picked = np.array([emotions.index(w) for w in first[wrong]])
    share = votes[np.arange(len(picked)), picked] / votes.sum(axis=1)
    row = table.loc["all errors"]
    assert row["errors"] == wrong.sum() and row["with_votes"] == wrong.sum()
    assert row["share_ge_0.1"] == pytest.approx((share >= 0.1 - 1e-6).mean())
    assert row["share_ge_0.3"] == pytest.approx((share >= 0.3 - 1e-6).mean())
    assert row["mean_vote_share"] == pytest.approx(share.mean(), rel=1e-5)
