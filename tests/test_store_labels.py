"""Stage store (atomic writes, meta, reuse), label sets, subsets, other loaders' errors."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from emolib.config import load_profile
from emolib.data import DataError, load_class_folders, load_emotion6, load_manifest, stratified_indices
from emolib.data.synthetic import make_synthetic_faces
from emolib.labels import LABEL_SETS, get_label_set, normalize_label
from emolib.store import StageStore, atomic_write, write_text


def test_stage_store_meta_and_reuse():
    profile = load_profile("smoke")
    store = StageStore(profile, "demo", profile.data)
    assert store.dir.name == store.hash and store.dir.parent.name == "demo"
    assert not store.is_complete()
    calls = []
    compute = lambda: calls.append(1) or pd.DataFrame({"x": [1, 2]})  # noqa: E731
    store.load_or_compute_frame("t.parquet", compute)
    store.load_or_compute_frame("t.parquet", compute)
    assert calls == [1]
    store.write_meta(timings={"all": 1.0})
    meta = json.loads(store.meta_path.read_text())
    assert meta["status"] == "complete" and meta["config_hash"] == store.hash
    assert {"git_revision", "packages", "hardware", "config"} <= set(meta)
    assert meta["packages"]["torch"] != "" and meta["hardware"]["cpu_cores_logical"] >= 1
    assert StageStore(profile, "demo", profile.data).is_complete()
    assert StageStore(profile, "demo", load_profile("smoke", **{"data.phash_threshold": 9}).data).dir != store.dir


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "x.txt"
    write_text(path, "old")

    def boom(tmp):
        tmp.write_text("half")
        raise RuntimeError("crash")

    with pytest.raises(RuntimeError):
        atomic_write(path, boom)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_label_sets_and_synonyms():
    assert get_label_set("fer7").names == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert normalize_label("Joy", get_label_set("fer7")) == "happy"
    assert normalize_label("happy", get_label_set("emotion6")) == "joy"
    assert normalize_label("angry", get_label_set("ferplus8")) == "anger"
    assert normalize_label("content", get_label_set("mikels8")) == "contentment"
    assert normalize_label("contempt", get_label_set("fer7")) is None
    for label_set in LABEL_SETS.values():  # every label has a sentiment and an arousal
        for i in range(len(label_set)):
            assert label_set.sentiment(i) in {"positive", "negative", "neutral"}
            assert label_set.arousal(i) in {"high", "low"}
    mikels = get_label_set("mikels8")
    assert [mikels.sentiment(i) for i in range(8)] == ["positive"] * 4 + ["negative"] * 4


def test_ckplus_class_folders_load_into_ckplus7(tmp_path):
    # CK+48's folder names: "happy" for happiness; index = CK+ emotion code - 1
    for cls in ("anger", "contempt", "happy", "surprise"):
        (tmp_path / "ck" / cls).mkdir(parents=True)
        Image.new("L", (8, 8)).save(tmp_path / "ck" / cls / "s1.png")
    s = load_class_folders(tmp_path / "ck", "ckplus7")
    assert dict(zip(s.ids, s.labels.tolist(), strict=True)) == {
        "anger/s1": 0, "contempt/s1": 1, "happy/s1": 4, "surprise/s1": 6}
    (tmp_path / "ck" / "neutral").mkdir()
    Image.new("L", (8, 8)).save(tmp_path / "ck" / "neutral" / "s1.png")
    with pytest.raises(DataError, match=r"'neutral' is not a class of ckplus7"):
        load_class_folders(tmp_path / "ck", "ckplus7")


def test_stratified_indices_keep_shares_and_seed():
    labels = np.repeat(np.arange(4), [500, 50, 300, 150])
    idx = stratified_indices(labels, 100, seed=1)
    assert len(idx) == 100 and len(set(idx)) == 100
    assert np.bincount(labels[idx]).tolist() == [50, 5, 30, 15]
    assert (idx == stratified_indices(labels, 100, seed=1)).all()
    assert not (idx == stratified_indices(labels, 100, seed=2)).all()


def test_synthetic_faces_shapes_and_balance():
    s = make_synthetic_faces(per_class=5, seed=0)
    assert s.pixels.shape == (105, 48, 48) and s.pixels.dtype == np.uint8
    assert np.bincount(s.labels).tolist() == [15] * 7
    assert (make_synthetic_faces(per_class=5, seed=0).pixels == s.pixels).all()


def test_class_folders_and_manifest(tmp_path):
    for cls in ("amusement", "sad"):
        (tmp_path / "art" / cls).mkdir(parents=True)
        Image.new("RGB", (8, 8), "red").save(tmp_path / "art" / cls / "a.jpg")
    s = load_class_folders(tmp_path / "art", "mikels8")
    assert sorted(s.label_names) == ["amusement", "sadness"]
    assert s.image(0).shape == (8, 8, 3)
    pd.DataFrame({"path": ["art/sad/a.jpg"], "label": ["fear"]}).to_csv(tmp_path / "m.csv", index=False)
    assert load_manifest(tmp_path / "m.csv", "mikels8").label_names.tolist() == ["fear"]
    (tmp_path / "art" / "boredom").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "art" / "boredom" / "b.jpg")
    with pytest.raises(DataError, match=r"'boredom' is not a class of mikels8"):
        load_class_folders(tmp_path / "art", "mikels8")
    pd.DataFrame({"file": ["x"]}).to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match=r"bad.csv: missing column"):
        load_manifest(tmp_path / "bad.csv", "mikels8")


def test_emotion6_errors(tmp_path):
    with pytest.raises(DataError, match="Emotion6 not found"):
        load_emotion6(tmp_path / "Emotion6.zip")
    with zipfile.ZipFile(tmp_path / "e.zip", "w") as zf:
        zf.writestr("Emotion6/ground_truth.txt", "a\tb\n1\t2\n")
    with pytest.raises(DataError, match="10 tab-separated columns"):
        load_emotion6(tmp_path / "e.zip")
    header = "[image_filename]\t[valence]\t[arousal]" + "".join(f"\t[p{i}]" for i in range(7))
    with zipfile.ZipFile(tmp_path / "f.zip", "w") as zf:
        zf.writestr("Emotion6/ground_truth.txt", header + "\njoy/1.jpg\t5\t5\t0\t0\t0\t1\t0\t0\t0\n")
    with pytest.raises(DataError, match=r"1 images listed in ground_truth.txt are missing"):
        load_emotion6(tmp_path / "f.zip")


def test_select_ids_keeps_the_given_order_and_names_the_subset():
    faces = make_synthetic_faces(per_class=2, seed=0)
    wanted = faces.ids[[7, 2, 30]]
    picked = faces.select_ids(wanted, "three")
    assert picked.ids.tolist() == wanted.tolist() and picked.subset_name == "three"
    assert picked.labels.tolist() == faces.labels[[7, 2, 30]].tolist()
    np.testing.assert_array_equal(picked.pixels, faces.pixels[[7, 2, 30]])
    assert faces.subset_name == "all" and faces.variant == "none"
    with pytest.raises(DataError, match=r"subset 'other' names 1 id\(s\) this image set lacks, e.g. \['nope'\]"):
        faces.select_ids([wanted[0], "nope"], "other")
    twice = faces.subset(np.array([0, 0, 1]))
    with pytest.raises(DataError, match="not unique here"):
        twice.select_ids([faces.ids[0]], "dup")
