"""Recorded GPT-4V answers (real data): join, labels and metrics against scikit-learn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from emolib.labels import get_label_set
from emolib.metrics import classification_scores
from emolib.predictions import validate_predictions
from emolib.vlm.recorded import (
    first_ranked,
    load_recorded_evoked,
    load_recorded_ferplus,
    recorded_predictions,
    sentiment_frame,
)

pytestmark = pytest.mark.data


def sklearn_scores(y_true, y_pred) -> tuple[float, float, float]:
    present = np.unique(y_true)
    return (accuracy_score(y_true, y_pred),
            f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0),
            f1_score(y_true, y_pred, labels=present, average="weighted", zero_division=0))


def test_first_ranked_reads_the_top_label() -> None:
    assert first_ranked("sadness,neutral,contempt") == "sadness"
    assert first_ranked(" Awe , Content") == "Awe"
    assert first_ranked(np.nan) is None and first_ranked("") is None


def test_ferplus_join_labels_and_metrics_equal_sklearn(data_root) -> None:
    recorded = load_recorded_ferplus("gpt4v")
    file_rows = len(pd.read_csv(data_root / "recorded/gpt4v/ferplus_predictions.csv"))
    assert file_rows == 3572
    # One FER+ name (fer0033120.png) occurs twice in fer2013new.csv; the image matched by
    # pixels carries only NF votes, so it has no label: counted as unmatched, not dropped silently.
    assert len(recorded.frame) + recorded.unmatched == file_rows and recorded.unmatched == 1
    ferplus8 = get_label_set("ferplus8")
    np.testing.assert_array_equal(recorded.frame["gt_file"].map(ferplus8.names.index), recorded.frame["y_true"])
    assert set(recorded.frame["split"]) == {"private_test"}
    frame = validate_predictions(recorded_predictions(recorded))
    assert (frame["parse_status"] == "unparseable").sum() == 1  # "pain" is not a FER+ label
    ours = classification_scores(frame["y_true"], frame["y_pred"], 8)
    expected = sklearn_scores(frame["y_true"], frame["y_pred"])
    np.testing.assert_allclose([ours["accuracy"], ours["macro_f1"], ours["weighted_f1"]], expected)
    assert 0.6 < ours["accuracy"] < 0.7


@pytest.mark.parametrize(("dataset", "n"), [("artphoto", 801), ("abstract", 227)])
def test_evoked_fine_and_sentiment_equal_sklearn(data_root, dataset: str, n: int) -> None:
    recorded = load_recorded_evoked(dataset, "gpt4v")
    assert len(recorded.frame) == n and recorded.unmatched == 0
    frame = validate_predictions(recorded_predictions(recorded))
    ours = classification_scores(frame["y_true"], frame["y_pred"], 8)
    np.testing.assert_allclose([ours["accuracy"], ours["macro_f1"], ours["weighted_f1"]],
                               sklearn_scores(frame["y_true"], frame["y_pred"]))
    sentiment = sentiment_frame(recorded, frame)
    s = classification_scores(sentiment["y_true"], sentiment["y_pred"], 2)
    np.testing.assert_allclose([s["accuracy"], s["macro_f1"]],
                               sklearn_scores(sentiment["y_true"], sentiment["y_pred"])[:2])
    assert s["accuracy"] > ours["accuracy"]  # coarse sentiment is easier than 8 classes
