"""Data sets named in a profile (``data.sets``): real Emotion6 images laid out as class folders
and as a manifest load with the right ids, labels and label set; a missing or unusable set is an
unavailable row; wrong entries fail at profile load; the defaults are what ``data.fer2013`` /
``data.emotion6`` always gave; the VLM stage scores every available evoked set."""

from __future__ import annotations

import io
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from emolib import catalog
from emolib.config import ConfigError, load_profile, to_dict
from emolib.data import (
    DataError,
    load_emotion6,
    load_evoked,
    load_set,
    load_sets,
    make_synthetic_faces,
    stratified_indices,
)
from emolib.data.stage import define_subsets, run_audit
from emolib.paths import RESULTS_ENV_VAR, resolve_data_path
from emolib.schema import config_hash

NUMBERS = {"anger": ("1", "10", "100"), "disgust": ("1", "2", "3"), "fear": ("1", "2", "3"),
           "joy": ("1", "2", "3"), "sadness": ("1", "2", "3"), "surprise": ("1", "2", "3")}
FOLDER_OF = {"anger": "angry", "sadness": "sad"}  # synonyms a user's folders may carry


@pytest.fixture(scope="module")
def evoked_files(data_root: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pd.DataFrame]:
    """18 real Emotion6 images (3 per class) out of the shared zip, as class folders
    ``art/<class>/<n>.jpg`` (anger and sadness under the synonyms angry and sad) and listed in
    a manifest with its own column names (``list.csv``: file, emotion, part, name). Returns
    the folder and one row per image (also its truth and JPEG bytes)."""
    root = tmp_path_factory.mktemp("evoked")
    rows = []
    with zipfile.ZipFile(data_root / "emotion6" / "Emotion6.zip") as zf:
        for cls, numbers in NUMBERS.items():
            for n in numbers:
                data = zf.read(f"Emotion6/images/{cls}/{n}.jpg")
                rel = f"art/{FOLDER_OF.get(cls, cls)}/{n}.jpg"
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / rel).write_bytes(data)
                rows.append({"file": rel, "emotion": cls, "part": "train" if n == "1" else "test",
                             "name": f"e6_{cls}_{n}", "truth": cls, "jpeg": data})
    frame = pd.DataFrame(rows)
    frame[["file", "emotion", "part", "name"]].to_csv(root / "list.csv", index=False)
    return root, frame


def _write_profile(tmp_path: Path, sets: list[dict], **data) -> Path:
    """``tmp_path/mine.yaml``: synthetic FER-2013 and Emotion6 stand-ins plus ``sets``."""
    path = tmp_path / "mine.yaml"
    body = {"device": "cpu", "data": {"source": "synthetic", "synthetic_per_class": 4, "sets": sets, **data}}
    path.write_text(yaml.safe_dump(body))
    return path


def _folders(root: Path, **extra) -> dict:
    return {"name": "art", "loader": "class_folders", "path": str(root / "art"), "label_set": "emotion6",
            "role": "evoked", **extra}


def _manifest(root: Path, **extra) -> dict:
    return {"name": "listed", "loader": "manifest", "path": str(root / "list.csv"), "label_set": "emotion6",
            "role": "evoked", "columns": {"path": "file", "label": "emotion", "split": "part", "image_id": "name"},
            **extra}


def _decoded(jpeg: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"))


@pytest.mark.data
def test_class_folder_and_manifest_sets_of_a_profile_yaml_load(tmp_path, evoked_files):
    root, frame = evoked_files
    profile = load_profile(_write_profile(tmp_path, [_folders(root), _manifest(root)]))
    assert [s.name for s in profile.data.all_sets()] == ["fer2013", "emotion6", "art", "listed"]
    data = load_sets(profile)
    table = data.table.set_index("name")
    assert table["status"].tolist() == ["available"] * 4 and set(table["reason"]) == {""}
    assert table.loc[["art", "listed"], ["images", "classes"]].to_numpy().tolist() == [[18, 6], [18, 6]]
    assert table.loc["art", "path"] == str(root / "art") and table.loc["listed", "path"] == str(root / "list.csv")
    assert table.loc["fer2013", "role"] == "faces" and list(data.evoked()) == ["emotion6", "art", "listed"]

    folders = data.get("art")
    assert folders.name == "art" and folders.label_set_name == "emotion6" and set(folders.splits) == {"test"}
    ids = frame["file"].str.removeprefix("art/").str.removesuffix(".jpg")
    assert sorted(folders.ids) == sorted(ids)
    truth = dict(zip(ids, frame["truth"], strict=True))
    assert folders.label_names.tolist() == [truth[i] for i in folders.ids]  # angry -> anger, sad -> sadness
    jpeg = dict(zip(ids, frame["jpeg"], strict=True))
    for i in (0, 7, 17):
        np.testing.assert_array_equal(folders.image(i), _decoded(jpeg[folders.ids[i]]))

    listed = data.get("listed")
    assert listed.name == "listed" and listed.label_set_name == "emotion6"
    assert listed.ids.tolist() == frame["name"].tolist()
    assert listed.label_names.tolist() == frame["truth"].tolist()
    assert listed.splits.tolist() == frame["part"].tolist()
    assert listed.class_counts().loc["train"].drop("total").tolist() == [1] * 6
    np.testing.assert_array_equal(listed.image(5), _decoded(frame["jpeg"][5]))


@pytest.mark.data
def test_missing_or_unusable_sets_are_unavailable_rows_and_the_rest_loads(tmp_path, evoked_files):
    root, _ = evoked_files
    sets = [_folders(root, name="gone", path=str(tmp_path / "nowhere")),
            _manifest(root, name="no_csv", path="absent/manifest.csv"),  # relative: under the data root
            _folders(root, name="clash", image_id="file"),  # 1.jpg in every class folder: ids not unique
            _folders(root)]
    data = load_sets(load_profile(_write_profile(tmp_path, sets)))
    table = data.table.set_index("name")
    assert table["status"].to_dict() == {"fer2013": "available", "emotion6": "available", "gone": "unavailable",
                                         "no_csv": "unavailable", "clash": "unavailable", "art": "available"}
    assert table.loc["gone", "path"] == str(tmp_path / "nowhere")
    assert f"image folder {tmp_path / 'nowhere'} does not exist" in table.loc["gone", "reason"]
    assert table.loc["no_csv", "path"] == str(resolve_data_path("absent/manifest.csv"))
    assert "does not exist" in table.loc["no_csv", "reason"]
    assert "occur in several folders" in table.loc["clash", "reason"]
    assert table.loc[["gone", "no_csv", "clash"], "images"].tolist() == [0, 0, 0]
    assert list(data.evoked()) == ["emotion6", "art"]
    with pytest.raises(DataError, match=r"data set 'gone' is unavailable: image folder .*nowhere does not exist"):
        data.get("gone")


@pytest.mark.data
def test_unique_file_ids_subsample_and_named_subsets(tmp_path, evoked_files, monkeypatch):
    monkeypatch.setenv(RESULTS_ENV_VAR, str(tmp_path / "out"))
    root, _ = evoked_files
    flat = tmp_path / "flat"
    for image in (root / "art").glob("*/*.jpg"):  # unique names: <class>_<n>.jpg
        (flat / image.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(image, flat / image.parent.name / f"{image.parent.name}_{image.name}")
    entry = _folders(root, name="stems", path=str(flat), image_id="stem", subsample=12, eval_size=6)
    profile = load_profile(_write_profile(tmp_path, [entry], eval_size=7, emotion6_eval_size=5))
    whole = load_set(load_profile(_write_profile(tmp_path, [{**entry, "subsample": None}])), "stems")
    assert sorted(whole.ids)[:4] == ["angry_1", "angry_10", "angry_100", "disgust_1"] and len(whole) == 18
    stems = load_set(profile, "stems")
    assert stems.ids.tolist() == whole.ids[stratified_indices(whole.labels, 12, profile.seed)].tolist()
    assert np.bincount(stems.labels).tolist() == [2] * 6

    faces = make_synthetic_faces(4, seed=0)
    leakage = run_audit(profile, faces)["leakage"]
    subsets = define_subsets(profile, faces, load_sets(profile).evoked(), leakage).set_index("subset")
    assert list(subsets.index[-4:]) == ["emotion6_all", "emotion6_eval_5", "stems_all", "stems_eval_6"]
    assert subsets.loc[["stems_all", "stems_eval_6"], "n"].tolist() == [12, 6]
    assert set(subsets.loc[["stems_all", "stems_eval_6"], "dataset"]) == {"stems"}
    assert catalog.evoked_eval_name(profile, "stems") == "stems_eval_6"
    assert catalog.subset_ids(profile, "stems_all").tolist() == stems.ids.tolist()
    want = stems.ids[stratified_indices(stems.labels, 6, profile.seed)]
    assert catalog.subset_ids(profile, "stems_eval_6").tolist() == want.tolist()
    # FER-2013's and Emotion6's subsets are those a profile without data.sets stores
    plain = load_profile(_write_profile(tmp_path, [], eval_size=7, emotion6_eval_size=5))
    before = define_subsets(plain, faces, load_evoked(plain), run_audit(plain, faces)["leakage"])
    assert before["subset"].tolist() == list(subsets.index[:-2])
    for name in before["subset"]:
        assert catalog.subset_ids(plain, name).tolist() == catalog.subset_ids(profile, name).tolist()


@pytest.mark.parametrize(("entry", "message"), [
    ({"loader": "folders"}, r"data.sets\[0\] \('x'\): unknown loader 'folders'; use one of .*class_folders"),
    ({"role": "both"}, r"data.sets\[0\] \('x'\): unknown role 'both'; use one of \['faces', 'evoked'\]"),
    ({"label_set": "plutchik"}, r"data.sets\[0\] \('x'\): unknown label set 'plutchik'; known: .*mikels8"),
    ({"label_set": None}, r"data.sets\[0\] \('x'\): loader 'class_folders' needs label_set"),
    ({"role": None}, r"data.sets\[0\] \('x'\): loader 'class_folders' needs role"),
    ({"name": "FI"}, r"data.sets\[0\] \('FI'\): name it with lower-case letters"),
    ({"name": "emotion6"}, r"the set named 'emotion6' is the study's own and needs loader 'emotion6'"),
    ({"columns": {"label": "emotion"}}, r"columns is an option of loader 'manifest' only"),
    ({"loader": "manifest", "columns": {"truth": "emotion"}}, r"columns renames \['path', 'label', 'split', "),
    ({"image_id": "hash"}, r"image_id 'hash': class_folders sets take one of \['path', 'stem', 'file'\]"),
    ({"eval_size": 0}, r"eval_size: 0 is out of range; it must be at least 1"),
    ({"extra": 1}, r"unknown key\(s\) \['extra'\] for DataSetConfig"),
])
def test_a_wrong_entry_fails_at_profile_load_naming_it_and_the_fix(tmp_path, entry, message):
    base = {"name": "x", "loader": "class_folders", "path": "x", "label_set": "mikels8", "role": "evoked"}
    with pytest.raises(ConfigError, match=message):
        load_profile(_write_profile(tmp_path, [{**base, **entry}]))


def test_more_wrong_entries(tmp_path):
    art = {"name": "art", "loader": "class_folders", "path": "art", "label_set": "mikels8", "role": "evoked"}
    with pytest.raises(ConfigError, match=r"sets\[1\] \('art'\): the name 'art' is already used by data.sets\[0\]"):
        load_profile(_write_profile(tmp_path, [art, {**art, "path": "other"}]))
    with pytest.raises(ConfigError, match=r"loader 'emotion6' always gives label set 'emotion6' and role 'evoked'"):
        load_profile(_write_profile(tmp_path, [{"name": "e6", "loader": "emotion6", "path": "e", "role": "faces"}]))
    with pytest.raises(ConfigError, match=r"FER-2013 is cut by data.subsample and data.eval_size"):
        load_profile(_write_profile(tmp_path, [{"name": "fer2013", "loader": "fer2013", "path": "f", "eval_size": 9}]))
    with pytest.raises(ConfigError, match=r"eval_size 9 contradicts data.emotion6_eval_size 5; set it in one place"):
        load_profile(_write_profile(tmp_path, [{"name": "emotion6", "loader": "emotion6", "path": "e",
                                                "eval_size": 9}], emotion6_eval_size=5))
    with pytest.raises(ConfigError, match=r"data.sets: expected a list"):
        load_profile("smoke", **{"data.sets": {"name": "art"}})


def test_defaults_come_from_the_data_keys_and_keep_the_config_hash(tmp_path):
    quick = load_profile("quick", check_machine=False)
    fer, e6 = quick.data.all_sets()
    assert (fer.name, fer.loader, fer.path, fer.label_set, fer.role) == (
        "fer2013", "fer2013", quick.data.fer2013, "fer7", "faces")
    assert (e6.name, e6.loader, e6.path, e6.label_set, e6.role, e6.eval_size) == (
        "emotion6", "emotion6", quick.data.emotion6, "emotion6", "evoked", quick.data.emotion6_eval_size)
    # an empty data.sets is left out of the config: every stage folder of an existing profile stays
    assert "sets" not in to_dict(quick.data)
    without = load_profile("smoke", **{"data.sets": []})
    assert config_hash(without.data) == config_hash(load_profile("smoke").data)
    assert catalog.data_store(without).hash == catalog.data_store(load_profile("smoke")).hash
    named = load_profile("smoke", **{"data.sets": [{"name": "fi", "loader": "class_folders", "path": "fi",
                                                     "label_set": "mikels8", "role": "evoked"}]})
    assert config_hash(named.data) != config_hash(without.data)
    assert to_dict(named.data)["sets"][0]["name"] == "fi"


def _resolved(source: str) -> str:
    archive, member = source.split("::")
    return f"{Path(archive).resolve()}::{member}"


@pytest.mark.data
def test_default_emotion6_is_what_data_emotion6_gave(tmp_path, data_root):
    zip_path = data_root / "emotion6" / "Emotion6.zip"
    direct = load_emotion6(zip_path)
    profile = load_profile("quick", check_machine=False)
    for got in (load_evoked(profile), load_set(profile, "emotion6"), load_sets(profile).image_sets["emotion6"]):
        assert got.name == "emotion6" and got.ids.tolist() == direct.ids.tolist()
        np.testing.assert_array_equal(got.labels, direct.labels)
        np.testing.assert_array_equal(got.soft_labels, direct.soft_labels)
        np.testing.assert_array_equal(got.valence, direct.valence)
        # the same zip members; the zip's path may be spelled through a symlink on one side
        assert [_resolved(s) for s in got.sources] == [_resolved(s) for s in direct.sources]
    cut = load_profile("quick", check_machine=False, **{"data.emotion6_subsample": 60})
    want = direct.ids[stratified_indices(direct.labels, 60, cut.seed)]
    assert load_evoked(cut).ids.tolist() == want.tolist()
    # the same set named in data.sets, at an absolute path, with its own subsample
    entry = {"name": "emotion6", "loader": "emotion6", "path": str(zip_path), "subsample": 60}
    renamed = load_profile(_write_profile(tmp_path, [entry], source="real"))
    assert load_evoked(renamed).ids.tolist() == want.tolist()
    assert renamed.data.get_set("emotion6").label_set == "emotion6"


@pytest.mark.slow
@pytest.mark.data
def test_vlm_stage_scores_every_available_evoked_set(tmp_path, evoked_files, monkeypatch):
    """Smoke (its CLIP stand-in only) plus a class-folders evoked set: the stage scores that
    set's evaluation subset beside FER-2013's and Emotion6's; once its files go, notebook 01
    stores no subset for it and the stored stage is scored again without it, with notes."""
    from emolib.vlm.scores import score_table
    from emolib.vlm.stage import run_zero_shot

    monkeypatch.setenv(RESULTS_ENV_VAR, str(tmp_path / "out"))
    root, frame = evoked_files
    art = tmp_path / "art"
    shutil.copytree(root / "art", art)
    profile = load_profile("smoke", **{"vlm.hf_models": [], "data.sets": [_folders(root, path=str(art),
                                                                                    eval_size=12)]})
    data = load_sets(profile)
    define_subsets(profile, data.faces, data.evoked(), run_audit(profile, data.faces)["leakage"])
    result = run_zero_shot(profile, {})
    predictions = result.predictions
    on_art = predictions[predictions["dataset"] == "art"]
    assert set(on_art["subset"]) == {"art_eval_12"} and set(on_art["label_set"]) == {"emotion6"}
    assert set(on_art["backend"]) == {"clip"}
    assert catalog.id_problem(on_art["image_id"], set(catalog.subset_ids(profile, "art_eval_12"))) == ""
    truth = dict(zip(frame["file"].str.removeprefix("art/").str.removesuffix(".jpg"), frame["truth"], strict=True))
    names = np.array(data.get("art").label_set.names)
    assert names[on_art["y_true"]].tolist() == [truth[i] for i in on_art["image_id"]]
    assert set(predictions["subset"]) == {catalog.fer_eval_name(profile), "emotion6_eval_24", "art_eval_12",
                                          catalog.FER_KAGGLE_TEST}  # smoke: vlm.clip_benchmark_models
    scores = score_table(predictions, n_boot=20).set_index("subset")
    assert scores.loc["art_eval_12", "n"] == 12
    assert run_zero_shot(profile, {}).predictions.equals(result.predictions)  # read back

    shutil.rmtree(art)
    data = load_sets(profile)
    assert data.table.set_index("name").loc["art", "status"] == "unavailable"
    define_subsets(profile, data.faces, data.evoked(), run_audit(profile, data.faces)["leakage"])
    again = run_zero_shot(profile, {})
    assert "art_eval_12" not in set(again.predictions["subset"])
    assert any("evoked data sets changed" in n and "art_eval_12" in n for n in again.notes)
    assert any(n.startswith("evoked data set art is unavailable, not scored") and str(art) in n for n in again.notes)
    kept = again.predictions[again.predictions["dataset"] != "art"].reset_index(drop=True)
    before = predictions[predictions["dataset"] != "art"].reset_index(drop=True)
    pd.testing.assert_frame_equal(kept.drop(columns="latency_s"), before.drop(columns="latency_s"))
