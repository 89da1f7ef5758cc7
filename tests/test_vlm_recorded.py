"""Recorded GPT-4V answers (real data): join, labels and metrics against scikit-learn, and
the one loader that notebooks 04, 05 and 07 share."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, f1_score

from emolib.config import load_profile
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


def test_backend_predicts_the_recorded_ferplus_answers_for_fer2013_faces(data_root) -> None:
    """``load_backend("recorded:gpt4v")`` answers ``predict`` like every backend: one row per
    PrivateTest face in image-set order, truth from the faces (fer7), the recorded top-1 read
    in fer7 (contempt and pain are no fer7 label), faces without an answer ``not_recorded``.
    Checked against the raw file joined by FER+'s own map with pandas."""
    from emolib.config import VLMConfig
    from emolib.vlm.backends import load_backend
    from emolib.vlm.recorded import ferplus_test_faces

    backend = load_backend("recorded:gpt4v", VLMConfig(recorded=("gpt4v",)))
    backend.embedder = None  # text matching only, as the independent reading below
    faces = ferplus_test_faces(data_root / "fer2013" / "ferplus")
    frame = validate_predictions(backend.predict(faces, faces.label_set))
    assert frame["image_id"].tolist() == list(faces.ids) and len(frame) == 3589
    assert (frame["y_true"].to_numpy() == faces.labels).all() and set(frame["prompt"]) == {"recorded"}

    raw = pd.read_csv(data_root / "recorded/gpt4v/ferplus_predictions.csv")
    link = pd.read_csv(data_root / "fer2013/ferplus/kaggle_to_ferplus.csv")
    link = link[link["usage"] == "PrivateTest"].assign(image_id=lambda f: f["kaggle_path"].str.split("/").str[-1]
                                                      .str.removesuffix(".jpg"))
    joined = link.merge(raw, left_on="ferplus_png", right_on="name", how="left").set_index("image_id")
    joined = joined.loc[frame["image_id"]]
    fer7 = {"anger": "angry", "disgust": "disgust", "fear": "fear", "happiness": "happy", "sadness": "sad",
            "surprise": "surprise", "neutral": "neutral"}
    first = joined["gpt4v"].str.split(",").str[0].str.strip().map(fer7)
    names = np.array([*get_label_set("fer7").names, "<none>"], dtype=object)
    answered = joined["gpt4v"].notna().to_numpy()
    assert (frame.loc[~answered, "parse_status"] == "not_recorded").all()
    assert (~answered).sum() == 3589 - 3572  # every row of the file answers one face here
    np.testing.assert_array_equal(names[frame["y_pred"]][answered], first.fillna("<none>").to_numpy()[answered])
    scored = frame[answered]
    ours = classification_scores(scored["y_true"], scored["y_pred"], 7)
    np.testing.assert_allclose([ours["accuracy"], ours["macro_f1"], ours["weighted_f1"]],
                               sklearn_scores(scored["y_true"], scored["y_pred"]))


@pytest.mark.slow
def test_notebooks_04_05_07_read_the_same_recorded_answers(data_root) -> None:
    """One loader: the VLM stage (notebook 04) parses the recorded answers once; the prompt
    notebook (05, ``recorded_predictions``) and human evaluation (07, ``collect_predictions``)
    read its table, so all three agree on n, truth and parsing, and those equal the raw files."""
    from smoke_stages import run_vlm

    from emolib import catalog
    from emolib.human_eval import stage as human_eval
    from emolib.prompts import analysis
    from emolib.prompts.sweep import recorded_predictions as sweep_recorded

    profile = load_profile("smoke", **{"vlm.clip_models": [], "vlm.clip_benchmark_models": [], "vlm.hf_models": [],
                                       "vlm.recorded": ["gpt4v"]})
    result = run_vlm(profile)
    columns = ["image_id", "split", "dataset", "label_set", "y_true", "y_pred", "model", "backend",
               "restoration", "prompt", "seed", "subset", "raw_response", "parse_status"]
    nb04 = result.predictions[result.predictions["backend"] == "recorded"]
    nb05, sentiment = sweep_recorded(profile)
    nb07, sources = human_eval.collect_predictions(profile, human_eval.load_image_sets(profile))
    nb07 = nb07[nb07["backend"] == "recorded"]
    for other in (nb05, nb07):
        pd.testing.assert_frame_equal(other[columns].reset_index(drop=True), nb04[columns].reset_index(drop=True))

    sizes = nb04.groupby("subset").size().to_dict()
    assert sizes == {"fer_private_gpt4v": 3571, "artphoto_gpt4v": 801, "abstract_gpt4v": 227}
    for subset in sizes:  # the coverage of each file is a named subset of its own
        assert sorted(catalog.subset_ids(profile, subset)) == sorted(nb04.loc[nb04.subset == subset, "image_id"])
    fer = nb04[nb04["subset"] == "fer_private_gpt4v"]
    assert set(fer["dataset"]) == {"fer2013"} and set(fer["label_set"]) == {"ferplus8"}
    assert set(fer["model"]) == {"gpt4v"} and set(fer["prompt"]) == {"recorded"}

    # truth and parsing against the raw file, joined to FER-2013 ids by FER+'s own map
    raw = pd.read_csv(data_root / "recorded/gpt4v/ferplus_predictions.csv")
    link = pd.read_csv(data_root / "fer2013/ferplus/kaggle_to_ferplus.csv")
    link = link[link["usage"] == "PrivateTest"].assign(image_id=lambda f: f["kaggle_path"].str.split("/").str[-1]
                                                      .str.removesuffix(".jpg"))
    joined = raw.merge(link[["ferplus_png", "image_id"]], left_on="name", right_on="ferplus_png")
    joined = joined.merge(fer, on="image_id", suffixes=("_file", ""))
    assert len(joined) == 3571 and "fer0033120.png" not in set(joined["name"])  # the one unlabelled face
    ferplus8 = get_label_set("ferplus8")
    np.testing.assert_array_equal(joined["y_true"], joined["gt"].map(ferplus8.names.index))
    first = joined["gpt4v"].map(first_ranked)
    np.testing.assert_array_equal(joined["y_pred"], [ferplus8.names.index(w) if w in ferplus8.names else -1
                                                     for w in first])
    assert joined.loc[joined["y_pred"] < 0, "gpt4v"].map(first_ranked).tolist() == ["pain"]
    assert (joined["y_pred"] == joined["y_true"]).sum() == 2294

    # notebook 05's analyses of the same rows: sentiment of ArtPhoto/Abstract, ranked labels
    bias = analysis.recorded_sentiment(sentiment, n_boot=20).set_index("subset")
    assert bias.loc["artphoto_gpt4v", "n"] == 801 and bias.loc["abstract_gpt4v", "n"] == 227
    preference = analysis.recorded_preferences(nb05)
    assert set(preference["subset"]) == set(sizes) and set(preference["model"]) == {"gpt4v"}
    # notebook 07 counts them, and says why it cannot show their images on smoke's synthetic sets
    rows = sources[sources["backend"] == "recorded"].set_index("subset")
    assert rows["rows"].to_dict() == sizes
    assert rows["status"].str.startswith("no images here").all()
