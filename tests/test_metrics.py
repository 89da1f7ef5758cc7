"""Metrics against scikit-learn and hand-computed values; no-answer rows count as wrong."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from emolib import catalog
from emolib.config import load_profile
from emolib.data import make_synthetic_faces
from emolib.metrics import classification_scores, confusion, per_class_table, summarize
from emolib.paths import RESULTS_ENV_VAR
from emolib.predictions import (
    COLUMNS,
    CONFIG_KEYS,
    NO_PROMPT,
    image_columns,
    make_predictions,
    read_predictions,
    validate_predictions,
    write_predictions,
)
from emolib.stats import bootstrap_ci


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
    lo, hi = bootstrap_ci(small_true, small_pred, partial(classification_scores, n_classes=3), n_boot=500)["accuracy"]
    acc = (small_true == small_pred).mean()
    assert lo < acc < hi
    blo, bhi = bootstrap_ci(big_true, big_pred, partial(classification_scores, n_classes=3), n_boot=500)["accuracy"]
    assert (bhi - blo) < (hi - lo) * 0.5
    # binomial standard error: 95% interval half-width ~ 1.96 * sqrt(p(1-p)/n)
    assert (hi - lo) / 2 == pytest.approx(1.96 * np.sqrt(acc * (1 - acc) / 100), rel=0.25)


def test_summarize_counts_unparseable_as_wrong(tmp_path):
    frame = make_predictions(
        image_id=["a", "b", "c", "d"], split="test", dataset="d", label_set="emotion6",
        y_true=[0, 1, 2, 3], y_pred=[0, 1, -1, -1], model="m", backend="hf", restoration="none",
        prompt="base", seed=0, subset="d_all",
        parse_status=["json", "text_match", "unparseable", "error"],
        raw_response=["{}", "joy", "??", None],
    )
    write_predictions(tmp_path / "p.parquet", frame)
    back = read_predictions(tmp_path / "p.parquet")
    row = summarize(back, n_boot=50).iloc[0]
    assert row["n"] == 4 and row["accuracy"] == 0.5
    assert row["n_unparseable"] == 1 and row["n_error"] == 1


def test_summarize_scores_each_configuration_apart():
    """One row per CONFIG_KEYS group: the same ids under two restorations and two prompts are
    four scores, each against scikit-learn, and every key is its own column."""
    rng = np.random.default_rng(1)
    ids = [f"i{k}" for k in range(60)]
    y_true = rng.integers(0, 7, 60)
    frames, expected = [], {}
    for restoration in ("none", "bicubic-96"):
        for prompt in ("default", "persona"):
            y_pred = np.where(rng.random(60) < 0.5, y_true, rng.integers(0, 7, 60))
            frames.append(make_predictions(
                image_id=ids, split="private_test", dataset="fer2013", label_set="fer7", y_true=y_true,
                y_pred=y_pred, model="m", backend="clip", restoration=restoration, prompt=prompt, seed=0,
                subset="fer_eval_60"))
            expected[(restoration, prompt)] = (accuracy_score(y_true, y_pred),
                                               f1_score(y_true, y_pred, average="macro"))
    table = summarize(pd.concat(frames, ignore_index=True), n_boot=20)
    assert list(table.columns[:len(CONFIG_KEYS)]) == list(CONFIG_KEYS) and len(table) == 4
    for row in table.itertuples():
        accuracy, macro_f1 = expected[(row.restoration, row.prompt)]
        assert row.n == 60 and row.subset == "fer_eval_60" and row.seed == 0
        assert row.accuracy == pytest.approx(accuracy) and row.macro_f1 == pytest.approx(macro_f1)


def test_predictions_contract_is_enforced():
    good = dict(image_id=["a"], split=["t"], dataset=["d"], label_set=["fer7"], y_true=[0], y_pred=[0],
                model=["m"], backend=["cnn"], restoration=["none"], prompt=[NO_PROMPT], seed=[0],
                subset=["s"])
    made = make_predictions(**good)
    assert list(made.columns) == list(COLUMNS) and made["parse_status"].tolist() == ["scored"]
    with pytest.raises(ValueError, match="unparseable/error rows must have y_pred == -1"):
        make_predictions(**{**good, "parse_status": ["unparseable"]})
    with pytest.raises(ValueError, match="unknown parse_status"):
        make_predictions(**{**good, "parse_status": ["guess"]})
    with pytest.raises(ValueError, match="missing column"):
        validate_predictions(make_predictions(**good).drop(columns="restoration"))
    with pytest.raises(ValueError, match=r"missing column\(s\) \['seed', 'subset'\]"):
        make_predictions(**{k: v for k, v in good.items() if k not in ("seed", "subset")})


def test_predictions_take_scalars_for_shared_facts_and_refuse_repeated_rows():
    shared = dict(split="private_test", dataset="fer2013", label_set="fer7", model="m", backend="cnn",
                  prompt=NO_PROMPT, seed=1, subset="fer_private")
    frame = make_predictions(image_id=["a", "b", "a", "b"], y_true=[0, 1, 0, 1], y_pred=[0, 0, 0, 1],
                             restoration=["none", "none", "bicubic-96", "bicubic-96"], **shared)
    assert frame["model"].tolist() == ["m"] * 4 and frame["seed"].tolist() == [1] * 4
    assert frame["seed"].dtype == np.int64 and frame["prompt"].tolist() == [NO_PROMPT] * 4
    # the same image under the same configuration twice: one fact, two answers
    with pytest.raises(ValueError, match="duplicate rows for the same"):
        make_predictions(image_id=["a", "a"], y_true=[0, 0], y_pred=[0, 1], restoration="none", **shared)


def test_image_columns_carry_the_image_sets_facts():
    faces = make_synthetic_faces(per_class=2, seed=0).split("private_test")
    picked = faces.select_ids(faces.ids[[3, 0]], "two_faces").with_pixels(faces.pixels[[3, 0]], "bicubic-96")
    columns = image_columns(picked)
    assert columns["image_id"].tolist() == [faces.ids[3], faces.ids[0]]
    assert columns["y_true"].tolist() == [faces.labels[3], faces.labels[0]]
    assert (columns["restoration"], columns["subset"], columns["dataset"]) == ("bicubic-96", "two_faces",
                                                                            faces.name)
    frame = make_predictions(**columns, y_pred=[0, 1], model="m", backend="cnn", prompt=NO_PROMPT, seed=0)
    assert frame["restoration"].tolist() == ["bicubic-96"] * 2 and frame["split"].tolist() == ["private_test"] * 2


def test_per_class_table_rows():
    t = per_class_table([0, 0, 1, 1], [0, 1, 1, 1], ("a", "b"))
    assert list(t.index) == ["a", "b", "macro avg", "weighted avg"]
    assert t.loc["a", "recall"] == 0.5 and t.loc["b", "precision"] == pytest.approx(2 / 3)


def test_missing_stage_predictions_name_the_notebook(tmp_path, monkeypatch):
    monkeypatch.setenv(RESULTS_ENV_VAR, str(tmp_path))
    profile = load_profile("smoke")
    expected = r"the cnn predictions of profile 'smoke' not found .*: run notebooks/03_cnn_training.ipynb"
    with pytest.raises(catalog.MissingUpstream, match=expected):
        catalog.read_stage_predictions(profile, "cnn")
    frame = make_predictions(image_id=["a"], split="t", dataset="d", label_set="fer7", y_true=[0], y_pred=[0],
                             model="m", backend="clip", restoration="none", prompt="default", seed=0,
                             subset="s")
    write_predictions(catalog.predictions_path(profile, "vlm"), frame)
    found, status = catalog.study_predictions(profile)
    assert found["model"].tolist() == ["m"]
    status = status.set_index("stage")
    assert status.loc["cnn", "status"] == "not run: run notebooks/03_cnn_training.ipynb"
    assert status.loc["vlm", "status"] == "found" and status.loc["vlm", "rows"] == 1
