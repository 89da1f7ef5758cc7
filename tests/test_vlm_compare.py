"""CNNs against GPT-4V on the same FER+ faces: label mapping, soft accuracy, McNemar, by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emolib import catalog
from emolib.config import load_profile
from emolib.data import ImageSet
from emolib.labels import get_label_set
from emolib.predictions import make_predictions
from emolib.stats import mcnemar_test
from emolib.vlm import compare

FER7, PLUS = get_label_set("fer7"), get_label_set("ferplus8")


def test_fer7_maps_one_to_one_onto_ferplus8_and_contempt_has_no_counterpart():
    forward = compare.label_map("fer7", "ferplus8")
    assert [PLUS.names[i] for i in forward[:-1]] == ["anger", "disgust", "fear", "happiness", "sadness",
                                                     "surprise", "neutral"]
    assert forward[-1] == -1  # no answer stays no answer
    backward = compare.label_map("ferplus8", "fer7")
    assert backward[PLUS.index("contempt")] == -1
    assert FER7.names[backward[PLUS.index("happiness")]] == "happy"


@pytest.fixture
def setting(tmp_path, monkeypatch):
    """Four faces with FER-2013 labels, FER+ plurality labels and vote shares; the subset
    ``fer_private`` holds all four and GPT-4V answered three of them."""
    monkeypatch.setenv("EMOLIB_RESULTS_DIR", str(tmp_path))
    profile = load_profile("smoke")
    ids = np.array(["a", "b", "c", "d"], dtype=object)
    fer = [FER7.index(n) for n in ("happy", "sad", "angry", "neutral")]
    plus = [PLUS.index(n) for n in ("happiness", "sadness", "contempt", "neutral")]
    votes = np.zeros((4, 8), np.float32)
    votes[0, PLUS.index("happiness")] = 1.0
    votes[1, [PLUS.index("sadness"), PLUS.index("neutral")]] = 0.6, 0.4
    votes[2, [PLUS.index("contempt"), PLUS.index("anger")]] = 0.7, 0.3
    votes[3, PLUS.index("neutral")] = 1.0
    faces = ImageSet("fer2013", "fer7", ids, np.full(4, "private_test", dtype=object), np.array(fer),
                     pixels=np.zeros((4, 48, 48), np.uint8), soft_labels=votes, soft_label_names=PLUS.names,
                     meta=pd.DataFrame({"ferplus_label": plus}))
    catalog.write_subsets(profile, {"fer_private": ("fer2013", ids)})
    catalog.write_stage_subset(catalog.vlm_store(profile), "fer_private_gpt4v", "fer2013", ids[:3])
    cnn = make_predictions(image_id=ids, split="private_test", dataset="fer2013", label_set="fer7", y_true=fer,
                           y_pred=[FER7.index(n) for n in ("happy", "neutral", "angry", "neutral")],
                           model="cnn1", backend="cnn", restoration="none", prompt="-", seed=0, subset="fer_private")
    gpt = make_predictions(image_id=ids[:3], split="private_test", dataset="fer2013", label_set="ferplus8",
                           y_true=plus[:3], y_pred=[PLUS.index(n) for n in ("happiness", "sadness", "contempt")],
                           model="gpt4v", backend="recorded", restoration="none", prompt="recorded", seed=0,
                           subset="fer_private_gpt4v", parse_status="text_match")
    return profile, faces, pd.concat([cnn, gpt], ignore_index=True)


def test_versus_scores_both_models_on_the_same_faces_by_hand(setting):
    profile, faces, predictions = setting
    frame = compare.versus_gpt4v(predictions, faces, profile)
    assert sorted(frame.groupby("model")["image_id"].apply(tuple).to_dict().items()) == [
        ("cnn1", ("a", "b", "c")), ("gpt4v", ("a", "b", "c"))]
    scores = compare.score_versus(frame, n_boot=50).set_index("model")
    # CNN: a right (happiness), b wrong (neutral for sadness), c wrong (anger for contempt)
    assert scores.loc["cnn1", "accuracy"] == pytest.approx(1 / 3)
    assert scores.loc["cnn1", "soft_accuracy"] == pytest.approx((1.0 + 0.4 + 0.3) / 3)
    assert scores.loc["cnn1", "accuracy_without_contempt"] == pytest.approx(1 / 2)
    assert scores.loc["cnn1", "accuracy_fer2013_labels"] == pytest.approx(2 / 3)  # a, c right on FER-2013's labels
    assert scores.loc["gpt4v", "accuracy"] == pytest.approx(1.0)
    assert scores.loc["gpt4v", "accuracy_fer2013_labels"] == pytest.approx(2 / 3)  # contempt has no fer7 counterpart
    assert (scores["n_contempt"] == 1).all()
    tests = compare.mcnemar_versus(frame, ("recorded", "gpt4v"))
    row = tests.iloc[0]
    assert (row.model, row.n, row.b, row.c) == ("cnn1", 3, 0, 2)
    assert row.p == pytest.approx(mcnemar_test(0, 2)[1])
    per_class = compare.per_class_versus(frame).set_index(["model", "class"])
    assert per_class.loc[("gpt4v", "contempt"), "f1"] == pytest.approx(1.0)
    assert per_class.loc[("cnn1", "contempt"), "f1"] == pytest.approx(0.0)


def test_versus_refuses_truth_that_disagrees_with_the_faces(setting):
    profile, faces, predictions = setting
    predictions.loc[(predictions["model"] == "gpt4v") & (predictions["image_id"] == "a"), "y_true"] = PLUS.index("fear")
    with pytest.raises(ValueError, match="truth differs"):
        compare.versus_gpt4v(predictions, faces, profile)
