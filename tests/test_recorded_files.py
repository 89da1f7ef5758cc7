"""Recorded answers of any model on any set (``emolib.vlm.recorded_files``): five foreign GPT-4V
result files (RAF-DB, AffectNet, SFEW 2.0, CK+, FI; ``tests/data/recorded_foreign``) score to
what scikit-learn computes straight from the files with pandas; every row is counted, none is
dropped; the profile entry loads end to end through the VLM stage; the backend answers
``predict`` for any image set of a recorded set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import accuracy_score, f1_score

from emolib.config import ConfigError, VLMConfig, load_profile
from emolib.data import DataError, ImageSet
from emolib.labels import get_label_set
from emolib.metrics import classification_scores
from emolib.predictions import validate_predictions
from emolib.vlm import stage as vlm_stage
from emolib.vlm.answer_files import read_answers
from emolib.vlm.backends import load_backend
from emolib.vlm.recorded import load_recorded_evoked
from emolib.vlm.recorded_files import ROW_STATUSES, load_recorded_file, summary_table

HERE = Path(__file__).parent / "data" / "recorded_foreign"
SFEW_COLUMNS = {"image_id": "name", "y_true": "gt", "ranked": "gpt4v", "raw_answer": "gpt4v"}
# set: (file, label set, answer mode, columns)
FILES = {
    "rafdb": ("rafdb_gpt4v.csv", "fer7", "first_ranked", {}),
    "affectnet": ("affectnet_gpt4v.jsonl", "ferplus8", "first_ranked", {}),
    "sfew": ("sfew_gpt4v.csv", "fer7", "first_ranked", SFEW_COLUMNS),
    "ckplus": ("ckplus_gpt4v.csv", "ckplus7", "raw", {}),
    "fi": ("fi_gpt4v.csv", "mikels8", "first_ranked", {}),
}
# The words of each file and the class each names, written out by hand (not emolib's synonyms).
WORDS = {
    "fer7": {"angry": "angry", "anger": "angry", "disgust": "disgust", "fear": "fear", "happy": "happy",
             "happiness": "happy", "sad": "sad", "sadness": "sad", "surprise": "surprise", "neutral": "neutral"},
    "ferplus8": {"neutral": "neutral", "happy": "happiness", "sad": "sadness", "surprise": "surprise",
                 "fear": "fear", "disgust": "disgust", "anger": "anger", "contempt": "contempt"},
    "ckplus7": {"anger": "anger", "angry": "anger", "contempt": "contempt", "disgust": "disgust",
                "disgusted": "disgust", "fear": "fear", "fearful": "fear", "happy": "happiness",
                "happiness": "happiness", "sad": "sadness", "sadness": "sadness", "surprise": "surprise",
                "surprised": "surprise"},
    "mikels8": {w: w for w in ("amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear",
                               "sadness")},
}
# where every row goes: (truth from the file, truth from the images), (count per status, unparseable)
EXPECTED = {
    "rafdb": ({"scored": 58, "truth_not_a_label": 1, "duplicate_id": 2}, {"scored": 56, "not_joined": 3,
                                                                         "duplicate_id": 2}),
    "affectnet": ({"scored": 49, "truth_not_a_label": 1, "no_image_id": 1}, {"scored": 47, "not_joined": 3,
                                                                             "no_image_id": 1}),
    "sfew": ({"scored": 39, "truth_not_a_label": 1}, {"scored": 37, "not_joined": 3}),
    "ckplus": ({"scored": 34, "truth_not_a_label": 1}, {"scored": 32, "not_joined": 3}),
    "fi": ({"scored": 69, "truth_not_a_label": 1}, {"scored": 67, "not_joined": 3}),
}


# ----------------------------------------------------------------------------- independent reading
def read_raw(name: str) -> pd.DataFrame:
    """The file with pandas alone: image_id, answer word, truth word (format columns by name)."""
    file, _, answer, columns = FILES[name]
    path = HERE / file
    frame = (pd.read_json(path, lines=True, dtype=False) if path.suffix == ".jsonl"
             else pd.read_csv(path, dtype=str, keep_default_na=False))
    frame = frame.rename(columns={v: k for k, v in columns.items() if k != "raw_answer"})
    if answer == "first_ranked":
        words = [(v[0] if v else "") if isinstance(v, list) else v.split(",")[0] for v in frame["ranked"]]
    else:
        words = frame["raw_answer"].fillna("").tolist()
    return pd.DataFrame({"image_id": frame["image_id"].fillna("").astype(str),
                         "answer": [w.strip().strip(".").lower() for w in words],
                         "truth": frame["y_true"].fillna("").str.strip().str.lower()})


def images_of(name: str) -> ImageSet:
    """``<set>_images.csv`` as the data set's images (lazy: no pixel is ever read)."""
    table = pd.read_csv(HERE / f"{name}_images.csv", dtype=str)
    label_set = get_label_set(FILES[name][1])
    return ImageSet(name=name, label_set_name=label_set.name, ids=table["image_id"].to_numpy(dtype=object),
                    splits=np.full(len(table), "test", dtype=object),
                    labels=np.array([label_set.names.index(WORDS[label_set.name][w]) for w in table["label"]]),
                    sources=tuple(f"{name}/{i}" for i in table["image_id"]))


def independent(name: str, with_images: bool) -> pd.DataFrame:
    """The scorable rows and their class names: ids on one row only, with a truth that is a
    class (from the images when joined); an answer that names no class is '<none>'."""
    raw, words = read_raw(name), WORDS[FILES[name][1]]
    raw = raw[(raw["image_id"] != "") & ~raw["image_id"].duplicated(keep=False)]
    if with_images:
        table = pd.read_csv(HERE / f"{name}_images.csv", dtype=str)
        raw = raw.merge(table, on="image_id").assign(truth=lambda f: f["label"])
    return pd.DataFrame({"image_id": raw["image_id"], "y_true": raw["truth"].map(words),
                         "y_pred": raw["answer"].map(words).fillna("<none>")}).dropna(subset=["y_true"])


def sklearn_scores(y_true, y_pred) -> list[float]:
    present = sorted(set(y_true))
    return [accuracy_score(y_true, y_pred),
            f1_score(y_true, y_pred, labels=present, average="macro", zero_division=0),
            f1_score(y_true, y_pred, labels=present, average="weighted", zero_division=0)]


def load(name: str, with_images: bool, **more):
    file, label_set, answer, columns = FILES[name]
    return load_recorded_file(HERE / file, "gpt4v", name, get_label_set(label_set), answer, columns,
                              images_of(name) if with_images else None, **more)


# ----------------------------------------------------------------------------- scores and counts
@pytest.mark.parametrize("with_images", [False, True], ids=["truth_from_file", "truth_from_images"])
@pytest.mark.parametrize("name", list(FILES))
def test_foreign_file_scores_equal_sklearn_from_the_csv(name: str, with_images: bool) -> None:
    recorded = load(name, with_images)
    frame = validate_predictions(recorded.predictions)
    label_set = recorded.label_set
    ours = classification_scores(frame["y_true"], frame["y_pred"], len(label_set))
    expected = independent(name, with_images)
    names = np.array([*label_set.names, "<none>"], dtype=object)  # y_pred -1 is the last entry
    mine = pd.DataFrame({"image_id": frame["image_id"], "y_true": names[frame["y_true"]],
                         "y_pred": names[frame["y_pred"]]})
    pd.testing.assert_frame_equal(mine.sort_values("image_id").reset_index(drop=True),
                                  expected.sort_values("image_id").reset_index(drop=True), check_dtype=False)
    np.testing.assert_allclose([ours["accuracy"], ours["macro_f1"], ours["weighted_f1"]],
                               sklearn_scores(expected["y_true"], expected["y_pred"]))
    assert 0.3 < ours["accuracy"] < 0.9  # real-looking answers: neither chance nor perfect


@pytest.mark.parametrize("with_images", [False, True], ids=["truth_from_file", "truth_from_images"])
@pytest.mark.parametrize("name", list(FILES))
def test_every_row_is_counted_never_dropped(name: str, with_images: bool) -> None:
    recorded = load(name, with_images)
    counts = recorded.counts()
    expected = EXPECTED[name][with_images]
    assert {s: counts[s] for s in ROW_STATUSES} == {s: expected.get(s, 0) for s in ROW_STATUSES}
    assert counts["rows"] == len(read_raw(name)) == sum(counts[s] for s in ROW_STATUSES)
    assert counts["unparseable"] == 2  # the foreign answer and the empty one: wrong answers, in the table
    assert len(recorded.predictions) == counts["scored"]
    no_answer = recorded.predictions[recorded.predictions["parse_status"] == "unparseable"]
    assert (no_answer["y_pred"] == -1).all() and no_answer["raw_response"].isna().sum() == 1  # the empty one
    not_scored = recorded.rows[recorded.rows["status"] != "scored"]
    assert not_scored["row"].is_unique and (not_scored["y_true"] == -1).all()
    note = recorded.note()
    for status, n in expected.items():
        if status != "scored":
            assert f"{n} {status.replace('_', ' ')} (e.g. row " in note
    assert summary_table([recorded]).iloc[0][list(ROW_STATUSES)].to_dict() == {s: counts[s] for s in ROW_STATUSES}


def test_truth_from_images_counts_a_file_label_that_disagrees() -> None:
    recorded = load("rafdb", with_images=True)
    row = recorded.rows.set_index("image_id").loc["test_2100_aligned.jpg"]
    assert row["status"] == "scored" and bool(row["truth_differs"])  # file: Contempt, image: disgust
    assert get_label_set("fer7").names[row["y_true"]] == "disgust" and recorded.counts()["truth_differs"] == 1


def test_empty_truth_and_empty_id_are_their_own_statuses(tmp_path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text("image_id,raw_answer,y_true\na,happy,happy\nb,sad,\n,angry,angry\nc,{\"emotion\": \"fear\"},fear\n")
    recorded = load_recorded_file(path, "m", "mine", get_label_set("fer7"))
    assert recorded.rows["status"].tolist() == ["scored", "truth_missing", "no_image_id", "scored"]
    assert recorded.predictions["parse_status"].tolist() == ["text_match", "json"]


# ----------------------------------------------------------------------------- clear errors
def test_missing_column_names_the_file_and_the_columns(tmp_path) -> None:
    path = tmp_path / "rafdb_mine.csv"
    path.write_text("image_id,answer,y_true\ntest_0001_aligned.jpg,happy,Happiness\n")
    with pytest.raises(DataError, match=r"rafdb_mine.csv: missing column\(s\) \['raw_answer'\]; expected "
                                        r"\['image_id', 'raw_answer'\].*found \['image_id', 'answer', 'y_true'\]"
                                        r".*`columns`"):
        load_recorded_file(path, "gpt4v", "rafdb", get_label_set("fer7"))
    with pytest.raises(DataError, match=r"missing column\(s\) \['ranked'\].*answer: first_ranked reads"):
        read_answers(path, {"raw_answer": "answer"}, "first_ranked")
    with pytest.raises(DataError, match=r"sfew_gpt4v.csv: missing column\(s\) \['image_id', 'raw_answer'\]"
                                        r".*found \['name', 'gt'"):
        read_answers(HERE / "sfew_gpt4v.csv")
    no_truth = tmp_path / "ckplus_mine.csv"
    no_truth.write_text("image_id,raw_answer\nS005_001_00000011.png,happy\n")
    with pytest.raises(DataError, match=r"ckplus_mine.csv: no y_true column, and no images of 'ckplus'"):
        load_recorded_file(no_truth, "gpt4v", "ckplus", get_label_set("ckplus7"))


def test_jsonl_lists_nulls_and_a_broken_line(tmp_path) -> None:
    answers = read_answers(HERE / "affectnet_gpt4v.jsonl", answer="first_ranked")
    assert answers["row"].tolist() == list(range(1, 52))
    assert answers.loc[0, "ranked"] == "contempt, surprise, happy"  # a JSON list, read as a ranked list
    assert answers["image_id"].iloc[-1] == "" and answers.attrs["has_truth"]
    broken = tmp_path / "broken.jsonl"
    lines = (HERE / "affectnet_gpt4v.jsonl").read_text().splitlines()
    broken.write_text("\n".join(lines[:3] + ['{"image_id": "x.jpg", "raw_answer": "happy"'] + lines[3:]) + "\n")
    with pytest.raises(DataError, match=r"broken.jsonl, line 4: not JSON"):
        read_answers(broken)
    with pytest.raises(DataError, match=r"mine.txt: recorded answers are \['.csv', '.jsonl', '.ndjson'\] files"):
        read_answers(tmp_path / "mine.txt")


def test_images_in_another_label_set_are_an_error() -> None:
    file, _, answer, columns = FILES["rafdb"]
    with pytest.raises(DataError, match=r"labelled in fer7, the answers are read in ferplus8; set label_set: fer7"):
        load_recorded_file(HERE / file, "gpt4v", "rafdb", get_label_set("ferplus8"), answer, columns,
                           images_of("rafdb"))


# ----------------------------------------------------------------------------- the profile
def entry(name: str, path: Path | str, **more) -> dict:
    file, label_set, answer, columns = FILES[name]
    return {"model": "gpt4v", "set": name, "path": str(path), "label_set": label_set, "answer": answer,
            **({"columns": columns} if columns else {}), **more}


@pytest.mark.parametrize(("change", "message"), [
    ({"answr": "raw"}, r"recorded_files\[0\]: unknown key\(s\) \['answr'\] for RecordedFileConfig"),
    ({"answer": "top1"}, r"recorded_files\[0\].answer: 'top1' is not one of \['raw', 'first_ranked'\]"),
    ({"label_set": "fer9"}, r"entry \{model: gpt4v, set: rafdb, .*unknown label set 'fer9'"),
    ({"columns": {"truth": "gt"}}, r"entry \{model: gpt4v, set: rafdb.*unknown format column\(s\) \['truth'\]"),
    ({"set": "raf db"}, r"set 'raf db' must be letters, digits"),
])
def test_profile_entries_are_checked_at_load(change: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_profile("smoke", **{"vlm.recorded_files": [entry("rafdb", "recorded/rafdb.csv") | change]})


def test_profile_entry_missing_field_and_duplicates() -> None:
    incomplete = {k: v for k, v in entry("rafdb", "x.csv").items() if k != "path"}
    with pytest.raises(ConfigError, match=r"recorded_files\[0\]: .*missing 1 required .*'path'"):
        load_profile("smoke", **{"vlm.recorded_files": [incomplete]})
    with pytest.raises(ConfigError, match=r"\(model, set\) \[\('gpt4v', 'rafdb'\)\] named by more than one entry"):
        load_profile("smoke", **{"vlm.recorded_files": [entry("rafdb", "a.csv"), entry("rafdb", "b.csv")]})


def write_class_folders(root: Path, name: str) -> None:
    """The images of ``<set>_images.csv`` as tiny PNGs in ``root/<label>/<image_id>``."""
    for image_id, label in pd.read_csv(HERE / f"{name}_images.csv", dtype=str).itertuples(index=False):
        (root / label).mkdir(parents=True, exist_ok=True)
        Image.new("L", (8, 8), 128).save(root / label / Path(image_id).with_suffix(".png").name)


def test_profile_yaml_with_recorded_files_runs_the_vlm_stage(tmp_path, monkeypatch) -> None:
    """A profile in tmp_path: RAF-DB's images are a data set of the profile (truth joined by
    image_id), CK+'s truth is the file's; both are models of the VLM stage's predictions, every
    row of both files is accounted for, and an edited file is scored again."""
    monkeypatch.setattr(vlm_stage, "lazy_embedder", lambda: None)  # text matching only, as sklearn above
    write_class_folders(tmp_path / "rafdb", "rafdb")
    answers = tmp_path / "rafdb_gpt4v.csv"  # the ids of the images are their .png names
    answers.write_text((HERE / "rafdb_gpt4v.csv").read_text().replace("_aligned.jpg", "_aligned.png"))
    profile_file = tmp_path / "mine.yaml"
    profile_file.write_text(json.dumps({  # JSON is YAML
        "seed": 0, "device": "cpu", "weights": "offline",
        "data": {"source": "synthetic", "synthetic_per_class": 2,
                 "sets": [{"name": "rafdb", "loader": "class_folders", "path": str(tmp_path / "rafdb"),
                           "label_set": "fer7", "role": "faces", "image_id": "file"}]},
        "vlm": {"clip_models": [], "hf_models": [], "recorded": [],
                "recorded_files": [entry("rafdb", answers), entry("ckplus", HERE / "ckplus_gpt4v.csv")]}}))
    profile = load_profile(profile_file)
    result = vlm_stage.run_zero_shot(profile, {})

    assert result.status[["backend", "model", "status"]].values.tolist() == [["recorded", "gpt4v", "available"]] * 2
    rows = result.predictions.groupby("subset").size().to_dict()
    assert rows == {"rafdb_gpt4v": 56, "ckplus_gpt4v": 34}
    raf = result.predictions[result.predictions["subset"] == "rafdb_gpt4v"]
    assert set(raf["dataset"]) == {"rafdb"} and set(raf["label_set"]) == {"fer7"} and set(raf["prompt"]) == {"recorded"}
    expected = independent("rafdb", with_images=True)
    names = np.array([*get_label_set("fer7").names, "<none>"], dtype=object)
    got = raf.assign(image_id=raf["image_id"].str.replace(".png", ".jpg"))
    got = got.set_index("image_id").loc[expected["image_id"]]
    assert names[got["y_true"]].tolist() == expected["y_true"].tolist()
    assert names[got["y_pred"]].tolist() == expected["y_pred"].tolist()
    summary = pd.read_csv(result.store.path("recorded_files.csv"))
    counted = ["set", "truth", "rows", "scored", "not_joined", "duplicate_id", "truth_not_a_label"]
    assert summary[counted].values.tolist() == [["rafdb", "images", 61, 56, 3, 2, 0],
                                                ["ckplus", "file", 35, 34, 0, 0, 1]]
    assert any(n.startswith("recorded gpt4v rafdb") and "3 not joined (e.g. row 11 'test_3001_aligned.png'" in n
               for n in result.notes)

    again = vlm_stage.run_zero_shot(profile, {})  # complete: read back
    pd.testing.assert_frame_equal(again.predictions, result.predictions)
    answers.write_text(answers.read_text().replace("Ranking: disgust, sadness, anger\",\"disgust",
                                                   "Ranking: anger\",\"anger"))
    edited = vlm_stage.run_zero_shot(profile, {})
    assert any("recorded files ['gpt4v:rafdb'] changed" in n for n in edited.notes)
    first = edited.predictions.set_index("image_id").loc["test_0001_aligned.png"]
    assert get_label_set("fer7").names[first["y_pred"]] == "angry"


def test_backend_predicts_for_an_image_set_and_marks_images_without_an_answer() -> None:
    file, label_set, answer, columns = FILES["rafdb"]
    config = VLMConfig(recorded=(), recorded_files=load_profile("smoke", **{
        "vlm.recorded_files": [entry("rafdb", HERE / file)]}).vlm.recorded_files)
    backend = load_backend("recorded:gpt4v", config)
    backend.embedder = None
    images = images_of("rafdb")
    frame = validate_predictions(backend.predict(images, images.label_set, None, "default"))
    assert frame["image_id"].tolist() == list(images.ids) and set(frame["prompt"]) == {"recorded"}
    missing = frame[frame["parse_status"] == "not_recorded"]
    # three images have no answer, and the id on two rows has two: which counts is unknowable
    assert sorted(missing["image_id"]) == ["test_0186_aligned.jpg", "test_2200_aligned.jpg", "test_2201_aligned.jpg",
                                           "test_2202_aligned.jpg"]
    assert (missing["y_pred"] == -1).all() and missing["raw_response"].isna().all()
    expected = independent("rafdb", with_images=True).set_index("image_id")
    answered = frame[frame["parse_status"] != "not_recorded"].set_index("image_id")
    names = np.array([*images.label_set.names, "<none>"], dtype=object)
    assert names[answered["y_pred"]].tolist() == expected.loc[answered.index, "y_pred"].tolist()
    with pytest.raises(ValueError, match=r"recorded:gpt4v has no answers for data set 'fer2013'; it has answers for "
                                         r"\['rafdb'\]"):
        backend.predict(ImageSet("fer2013", "fer7", images.ids, images.splits, images.labels, sources=images.sources),
                        images.label_set)
    with pytest.raises(ValueError, match="cannot answer prompt 'positive_first'"):
        backend.predict(images, images.label_set, None, "positive_first")


def test_evoked_folder_counts_a_foreign_fine_label(tmp_path, monkeypatch) -> None:
    """The shipped folder layout with a label no Mikels class names: counted, not a KeyError."""
    monkeypatch.setenv("EMOLIB_DATA_DIR", str(tmp_path))
    folder = tmp_path / "recorded" / "gpt4v"
    folder.mkdir(parents=True)
    (folder / "artphoto_predictions.csv").write_text(
        'name,gt,gpt4v\na1,positive,"awe,fear"\na2,negative,"fear,awe"\na3,positive,"amusement,awe"\n')
    (folder / "artphoto_labels.csv").write_text("name,gt,gpt4v\na1,awe,\na2,Happy,\n")
    recorded = load_recorded_evoked("artphoto")
    assert recorded.frame["image_id"].tolist() == ["a1"] and recorded.unmatched == 2
    assert "2 name(s) without a label of mikels8, e.g. a2 (Happy), a3 (no label)" in recorded.notes[-1]
    (folder / "artphoto_labels.csv").unlink()  # no labels file: the file's own gt (sentiment here) is tried
    recorded = load_recorded_evoked("artphoto")
    assert len(recorded.frame) == 0 and recorded.unmatched == 3
    assert recorded.notes[0] == "fine labels from artphoto_predictions.csv (gt)"
