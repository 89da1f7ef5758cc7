"""emolib.catalog: named subsets stored once, selected by id, checked on use; missing upstream."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from emolib import catalog
from emolib.config import load_profile
from emolib.data import DataError, make_synthetic_faces
from emolib.predictions import make_predictions


@pytest.fixture
def profile(tmp_path, monkeypatch):
    monkeypatch.setenv("EMOLIB_RESULTS_DIR", str(tmp_path))
    return load_profile("smoke")


def _rows(ids, model="m", restoration="none", subset="big", y_pred=None):
    ids = list(ids)
    return make_predictions(image_id=ids, split="private_test", dataset="faces", label_set="fer7",
                            y_true=[0] * len(ids), y_pred=y_pred if y_pred is not None else [0] * len(ids),
                            model=model, backend="cnn", restoration=restoration, prompt="-", seed=0, subset=subset)


def test_missing_subsets_name_the_notebook_to_run(profile):
    with pytest.raises(catalog.MissingUpstream, match="01_data.ipynb"):
        catalog.subset_ids(profile, "fer_private")
    with pytest.raises(catalog.MissingUpstream, match="03_cnn_training.ipynb"):
        catalog.subset_ids(profile, "fer_hard")
    with pytest.raises(catalog.MissingUpstream, match="04_vlm_zero_shot.ipynb"):
        catalog.read_stage_predictions(profile, "vlm")


def test_subsets_round_trip_in_their_stored_order(profile):
    catalog.write_subsets(profile, {"big": ("faces", np.array(["c", "a", "b", "d"])), "small": ("faces", ["a", "d"])})
    assert list(catalog.subset_ids(profile, "big")) == ["c", "a", "b", "d"]
    assert list(catalog.subset_ids(profile, "small")) == ["a", "d"]
    with pytest.raises(KeyError, match="holds \\['big', 'small'\\]"):
        catalog.subset_ids(profile, "nope")
    with pytest.raises(ValueError, match="twice"):
        catalog.write_subsets(profile, {"x": ("faces", ["a", "a"])})


def test_on_subset_restricts_covering_configurations_and_skips_smaller_ones(profile):
    catalog.write_subsets(profile, {"big": ("faces", ["a", "b", "c", "d"]), "small": ("faces", ["b", "d"])})
    original = _rows("abcd", y_pred=[0, 1, 0, 1])
    restored = _rows("bd", restoration="bicubic-96", subset="small")
    both = pd.concat([original, restored], ignore_index=True)
    on_small = catalog.on_subset(both, profile, "small")
    assert sorted(zip(on_small["restoration"], on_small["image_id"], strict=True)) == [
        ("bicubic-96", "b"), ("bicubic-96", "d"), ("none", "b"), ("none", "d")]
    assert set(on_small["subset"]) == {"small"}
    # the original faces are wrong on exactly b and d: accuracy on `small` is 0, on `big` 0.5
    assert (on_small.loc[on_small["restoration"] == "none", "y_pred"] == 1).all()
    on_big = catalog.on_subset(both, profile, "big")
    assert set(on_big["restoration"]) == {"none"} and len(on_big) == 4  # restored faces never covered `big`


def test_on_subset_fails_on_a_dropped_or_repeated_row(profile):
    catalog.write_subsets(profile, {"big": ("faces", ["a", "b", "c"]), "small": ("faces", ["a", "b"])})
    with pytest.raises(ValueError, match="1 id\\(s\\) of the subset missing, e.g. \\['b'\\]"):
        catalog.on_subset(_rows("ac"), profile, "small")
    rows = _rows("abc")
    with pytest.raises(ValueError, match="1 id\\(s\\) twice, e.g. \\['a'\\]"):
        catalog.on_subset(pd.concat([rows, rows.iloc[:1]], ignore_index=True), profile, "small")


def test_select_ids_keeps_the_order_and_refuses_unknown_or_ambiguous_ids():
    faces = make_synthetic_faces(2, seed=0)
    ids = list(faces.ids[[5, 1, 3]])
    picked = faces.select_ids(ids, "three")
    assert list(picked.ids) == ids and picked.subset_name == "three"
    assert list(picked.labels) == list(faces.labels[[5, 1, 3]])
    with pytest.raises(DataError, match="lacks, e.g. \\['nope'\\]"):
        faces.select_ids(["nope"], "x")
    doubled = faces.subset(np.array([0, 0, 1]))
    with pytest.raises(DataError, match="not unique"):
        doubled.select_ids([faces.ids[0]], "x")


def test_stage_folders_follow_the_config_and_cost_sources_name_every_cnn(profile):
    other = load_profile("smoke", **{"cnn.epochs": 2})
    assert catalog.cnn_store(profile).dir != catalog.cnn_store(other).dir
    assert catalog.data_store(profile).dir == catalog.data_store(other).dir  # data does not depend on the CNN
    # one model's overrides do not move the other models' training folders
    tuned = load_profile("smoke", **{"cnn.per_model": {"resnet50": {"epochs": 3}}})
    assert catalog.cnn_model_store(tuned, "vgg19_bn", 0).dir == catalog.cnn_model_store(profile, "vgg19_bn", 0).dir
    assert catalog.cnn_model_store(tuned, "resnet50", 0).dir != catalog.cnn_model_store(profile, "resnet50", 0).dir
    sources = catalog.cost_sources(profile)
    trained = [s.what for s in sources if s.stage == "cnn" and s.what.startswith("training")]
    assert trained == [f"training {m} seed 0" for m in profile.cnn.models]
