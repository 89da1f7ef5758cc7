"""Metrics against scikit-learn and hand-computed values; no-answer rows count as wrong."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from emolib.metrics import bootstrap_ci, classification_scores, confusion, per_class_table, summarize
from emolib.predictions import make_predictions, read_predictions, validate_predictions, write_predictions


def test_hand_computed_example():
    # 3 classes; true 0 0 1 1 2 2, pred 0 1 1 1 -1 2
    s = classification_scores(np.array([0, 0, 1, 1, 2, 2]), np.array([0, 1, 1, 1, -1, 2]), 3)
    assert s["accuracy"] == pytest.approx(4 / 6)
    assert s["precision"].tolist() == pytest.approx([1.0, 2 / 3, 1.0])
    assert s["recall"].tolist() == pytest.approx([0.5, 1.0, 0.5])
    f1 = [2 / 3, 0.8, 2 / 3]
    assert s["f1"].tolist() == pytest.approx(f1)
    assert s["macro_f1"] == pytest.approx(np.mean(f1))
    assert s["weighted_f1"] == pytest.approx(np.mean(f1))  # equal supports


@pytest.mark.parametrize("seed", range(5))
def test_against_sklearn_with_missing_answers(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 7, 400)
    y_pred = np.where(rng.random(400) < 0.4, y_true, rng.integers(-1, 7, 400))
    s = classification_scores(y_true, y_pred, 7)
    labels = list(range(7))
    assert s["accuracy"] == pytest.approx(accuracy_score(y_true, y_pred))
    for avg in ("macro", "weighted"):
        assert s[f"{avg}_f1"] == pytest.approx(f1_score(y_true, y_pred, labels=labels, average=avg, zero_division=0))
    p, r, f, _ = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    assert np.allclose(s["precision"], p) and np.allclose(s["recall"], r) and np.allclose(s["f1"], f)
    cm = confusion(y_true, y_pred, 7)
    assert (cm[:, :7] == confusion_matrix(y_true, y_pred, labels=labels)).all()
    assert cm[:, 7].sum() == (y_pred == -1).sum()


def test_bootstrap_ci_brackets_the_estimate_and_narrows_with_n():
    rng = np.random.default_rng(0)
    small_true = rng.integers(0, 3, 100)
    small_pred = np.where(rng.random(100) < 0.7, small_true, rng.integers(0, 3, 100))
    big_true = np.tile(small_true, 10)
    big_pred = np.tile(small_pred, 10)
    lo, hi = bootstrap_ci(small_true, small_pred, 3, n_boot=500)["accuracy"]
    acc = (small_true == small_pred).mean()
    assert lo < acc < hi
    blo, bhi = bootstrap_ci(big_true, big_pred, 3, n_boot=500)["accuracy"]
    assert (bhi - blo) < (hi - lo) * 0.5
    # binomial standard error: 95% interval half-width ~ 1.96 * sqrt(p(1-p)/n)
    assert (hi - lo) / 2 == pytest.approx(1.96 * np.sqrt(acc * (1 - acc) / 100), rel=0.25)


def test_summarize_counts_unparseable_as_wrong(tmp_path):
    frame = make_predictions(
        image_id=["a", "b", "c", "d"], split=["test"] * 4, dataset=["d"] * 4, label_set=["emotion6"] * 4,
        y_true=[0, 1, 2, 3], y_pred=[0, 1, -1, -1], model=["m"] * 4, backend=["hf"] * 4, variant=["base"] * 4,
        parse_status=["json", "text_match", "unparseable", "error"],
        raw_response=["{}", "joy", "??", None],
    )
    write_predictions(tmp_path / "p.parquet", frame)
    back = read_predictions(tmp_path / "p.parquet")
    row = summarize(back, n_boot=50).iloc[0]
    assert row["n"] == 4 and row["accuracy"] == 0.5
    assert row["n_unparseable"] == 1 and row["n_error"] == 1


def test_predictions_contract_is_enforced():
    good = dict(image_id=["a"], split=["t"], dataset=["d"], label_set=["fer7"], y_true=[0], y_pred=[0],
                model=["m"], backend=["cnn"], variant=["v"])
    make_predictions(**good)
    with pytest.raises(ValueError, match="unparseable/error rows must have y_pred == -1"):
        make_predictions(**{**good, "parse_status": ["unparseable"]})
    with pytest.raises(ValueError, match="unknown parse_status"):
        make_predictions(**{**good, "parse_status": ["guess"]})
    with pytest.raises(ValueError, match="missing column"):
        validate_predictions(make_predictions(**good).drop(columns="variant"))


def test_per_class_table_rows():
    t = per_class_table([0, 0, 1, 1], [0, 1, 1, 1], ("a", "b"))
    assert list(t.index) == ["a", "b", "macro avg", "weighted avg"]
    assert t.loc["a", "recall"] == 0.5 and t.loc["b", "precision"] == pytest.approx(2 / 3)


def test_missing_stage_predictions_name_the_notebook(tmp_path):
    from emolib.predictions import read_stage_predictions

    expected = r"p.parquet does not exist: run notebooks/03_x.ipynb for profile 'quick'"
    with pytest.raises(FileNotFoundError, match=expected):
        read_stage_predictions(tmp_path / "p.parquet", "03_x.ipynb", "quick")
