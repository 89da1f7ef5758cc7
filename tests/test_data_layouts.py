"""FER-2013 loaders: every layout a user may have gives the same pixels, labels and splits."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from emolib.data import DataError, attach_ferplus, detect_fer_layout, load_fer2013
from emolib.data.fer2013 import KAGGLE_CLASSES
from emolib.data.ferplus import VOTE_COLUMNS

CSV_CODES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]  # fer2013.csv 0-6
USAGES = ["Training", "PublicTest", "PrivateTest"]


@pytest.fixture(scope="module")
def faces() -> pd.DataFrame:
    """21 random 48x48 faces: 7 classes x 3 usages, one each, with distinct pixels."""
    rng = np.random.default_rng(7)
    rows = []
    for k, (code, usage) in enumerate((c, u) for c in range(7) for u in USAGES):
        pixels = rng.integers(0, 256, (48, 48), dtype=np.uint8)
        rows.append({"emotion": code, "Usage": usage, "pixels": pixels, "name": f"{usage}_{1000 + k}"})
    return pd.DataFrame(rows)


def _write_kaggle(root: Path, faces: pd.DataFrame, suffix: str = ".png") -> None:
    for r in faces.itertuples():
        folder = "train" if r.Usage == "Training" else "test"
        path = root / folder / CSV_CODES[r.emotion] / f"{r.name}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(r.pixels).save(path)


def _pixel_strings(faces: pd.DataFrame) -> list[str]:
    return [" ".join(map(str, p.ravel())) for p in faces["pixels"]]


def _write_fer_csv(path: Path, faces: pd.DataFrame) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"emotion": faces["emotion"], "pixels": _pixel_strings(faces), "Usage": faces["Usage"]})
    frame.to_csv(path, index=False)


def _write_icml_csv(path: Path, faces: pd.DataFrame) -> None:
    frame = pd.DataFrame({"emotion": faces["emotion"], " Usage": faces["Usage"], " pixels": _pixel_strings(faces)})
    frame.to_csv(path, index=False)


def _canonical(image_set) -> list[tuple]:
    """(pixel bytes, label, split) per image, sorted: comparable across layouts."""
    rows = zip(image_set.pixels, image_set.labels, image_set.splits, strict=True)
    return sorted((p.tobytes(), int(y), s) for p, y, s in rows)


@pytest.fixture(scope="module")
def layouts(tmp_path_factory, faces) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("fer_layouts")
    _write_kaggle(root / "kaggle", faces)
    with zipfile.ZipFile(root / "archive.zip", "w") as zf:
        for path in sorted((root / "kaggle").rglob("*.png")):
            zf.write(path, path.relative_to(root / "kaggle").as_posix())
    _write_fer_csv(root / "fer2013.csv", faces)
    _write_icml_csv(root / "icml_face_data.csv", faces)
    _write_fer_csv(root / "tv" / "fer2013" / "fer2013.csv", faces)
    return {
        "kaggle_folder": root / "kaggle",
        "kaggle_zip": root / "archive.zip",
        "fer_csv": root / "fer2013.csv",
        "icml_csv": root / "icml_face_data.csv",
        "torchvision": root / "tv",
    }


def test_every_layout_is_detected(layouts):
    for layout, path in layouts.items():
        assert detect_fer_layout(path) == layout


def test_layouts_give_identical_pixels_labels_and_splits(layouts, faces):
    expected = sorted(
        (p.tobytes(), int(e), {"Training": "train", "PublicTest": "public_test", "PrivateTest": "private_test"}[u])
        for p, e, u in zip(faces["pixels"], faces["emotion"], faces["Usage"], strict=True)
    )
    for layout, path in layouts.items():
        assert _canonical(load_fer2013(path)) == expected, layout


def test_kaggle_folder_order_is_not_label_order(layouts):
    """The Kaggle folders are alphabetical (neutral is 5th); labels must follow fer2013.csv codes."""
    assert KAGGLE_CLASSES.index("neutral") == 4
    loaded = load_fer2013(layouts["kaggle_zip"])
    neutral = [i for i, p in enumerate(loaded.meta["kaggle_path"]) if "/neutral/" in p]
    assert neutral and set(loaded.labels[neutral]) == {6}
    assert set(loaded.label_names[neutral]) == {"neutral"}


def test_torchvision_train_test_csv_without_test_labels(tmp_path, faces):
    base = tmp_path / "fer2013"
    base.mkdir()
    train = faces[faces.Usage == "Training"]
    pd.DataFrame({"emotion": train["emotion"], "pixels": _pixel_strings(train)}).to_csv(base / "train.csv", index=False)
    test = faces[faces.Usage != "Training"]
    pd.DataFrame({"pixels": _pixel_strings(test)}).to_csv(base / "test.csv", index=False)
    loaded = load_fer2013(tmp_path)
    assert (loaded.splits == "train").sum() == 7 and (loaded.splits == "test").sum() == 14
    assert (loaded.labels[loaded.splits == "test"] == -1).all()
    assert list(loaded.labels[loaded.splits == "train"]) == list(train["emotion"])


def test_jpeg_kaggle_layout_is_close_to_csv(tmp_path, faces):
    _write_kaggle(tmp_path / "jpg", faces, suffix=".jpg")
    loaded = load_fer2013(tmp_path / "jpg")
    originals = np.stack(faces["pixels"]).astype(int)
    assert len(loaded) == 21
    for image_id, pixels in zip(loaded.ids, loaded.pixels, strict=True):
        # lossy JPEG of noise: not equal, but closest to its own original
        mae = np.abs(originals - pixels.astype(int)).mean(axis=(1, 2))
        assert faces["name"].iloc[int(mae.argmin())] == image_id


# ----------------------------------------------------------------------------- bad input
def test_missing_path_names_the_path_and_the_fix(tmp_path):
    with pytest.raises(DataError, match=r"not found at .*nowhere.*EMOLIB_DATA_DIR"):
        load_fer2013(tmp_path / "nowhere.zip")


def test_unknown_layout(tmp_path):
    (tmp_path / "something").mkdir()
    with pytest.raises(DataError, match="not a FER-2013 layout"):
        load_fer2013(tmp_path / "something")


def test_unknown_class_folder(tmp_path, faces):
    _write_kaggle(tmp_path / "k", faces)
    (tmp_path / "k" / "train" / "contempt").mkdir()
    Image.fromarray(faces["pixels"][0]).save(tmp_path / "k" / "train" / "contempt" / "Training_1.png")
    with pytest.raises(DataError, match=r"unknown class folder train/contempt"):
        load_fer2013(tmp_path / "k")


def test_corrupt_image_is_named_or_listed(tmp_path, faces):
    _write_kaggle(tmp_path / "k", faces)
    bad = tmp_path / "k" / "train" / "happy" / "Training_9999.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(DataError, match=r"Training_9999.png.*skip_unreadable"):
        load_fer2013(tmp_path / "k")
    loaded = load_fer2013(tmp_path / "k", skip_unreadable=True)
    assert len(loaded) == 21
    assert any("Training_9999.png" in u for u in loaded.meta.attrs["unreadable"])


def test_wrong_csv_columns(tmp_path):
    pd.DataFrame({"label": [0], "image": ["0 " * 2304]}).to_csv(tmp_path / "fer2013.csv", index=False)
    with pytest.raises(DataError, match=r"fer2013.csv: missing column\(s\) \['Usage', 'emotion', 'pixels'\]"):
        load_fer2013(tmp_path / "fer2013.csv")


def test_wrong_pixel_count(tmp_path):
    frame = pd.DataFrame({"emotion": [0], "pixels": ["1 2 3"], "Usage": ["Training"]})
    frame.to_csv(tmp_path / "fer2013.csv", index=False)
    with pytest.raises(DataError, match=r"fer2013.csv: row 0 \(line 2\) has 3 pixel values; FER-2013 rows have 2304"):
        load_fer2013(tmp_path / "fer2013.csv")


def test_bad_zip(tmp_path):
    (tmp_path / "archive.zip").write_bytes(b"PK broken")
    with pytest.raises(DataError, match="not a readable zip"):
        load_fer2013(tmp_path / "archive.zip")


def test_ferplus_joins_csv_layout_by_row(tmp_path, layouts, faces):
    """For fer2013.csv the FER+ row is the CSV row: votes land on the right image."""
    votes = np.zeros((len(faces), 10), dtype=int)
    votes[np.arange(len(faces)), np.arange(len(faces)) % 8] = 10  # image k: all votes for class k % 8
    frame = pd.DataFrame(votes, columns=list(VOTE_COLUMNS))
    frame.insert(0, "Image name", [f"fer{k:07d}.png" for k in range(len(faces))])
    frame.insert(0, "Usage", faces["Usage"])
    frame.loc[3, "Image name"] = None  # FER+ dropped this row
    frame.to_csv(tmp_path / "fer2013new.csv", index=False)
    joined = attach_ferplus(load_fer2013(layouts["fer_csv"]), tmp_path)
    expected = np.arange(len(faces)) % 8
    expected[3] = -1
    assert joined.meta["ferplus_label"].tolist() == expected.tolist()
    assert joined.meta["ferplus_name"].isna().tolist() == [k == 3 for k in range(len(faces))]
    assert np.isnan(joined.soft_labels[3]).all() and joined.soft_labels[5, 5] == 1.0


# ----------------------------------------------------------------------------- decoded-array cache
def test_cache_follows_the_source_file(tmp_path, monkeypatch, faces):
    monkeypatch.setenv("EMOLIB_RESULTS_DIR", str(tmp_path / "out"))
    path = tmp_path / "fer2013.csv"
    _write_fer_csv(path, faces)
    first = load_fer2013(path)
    assert "written to the cache" in first.notes[-1]
    again = load_fer2013(path)
    assert "read from the cache" in again.notes[-1]
    assert np.array_equal(again.pixels, first.pixels) and again.labels.tolist() == first.labels.tolist()
    assert again.ids.tolist() == first.ids.tolist() and again.meta.equals(first.meta)
    changed = faces.assign(emotion=(faces["emotion"] + 1) % 7)
    _write_fer_csv(path, changed)  # new content: a new key, and the superseded cache is deleted
    reloaded = load_fer2013(path)
    assert "written to the cache" in reloaded.notes[-1]
    assert reloaded.labels.tolist() == changed["emotion"].tolist()
    assert len(list((tmp_path / "out" / "results" / "cache" / "data").glob("fer2013-*.npz"))) == 1


def test_unreadable_cache_is_rebuilt_and_said(tmp_path, monkeypatch, layouts):
    monkeypatch.setenv("EMOLIB_RESULTS_DIR", str(tmp_path / "out"))
    load_fer2013(layouts["kaggle_zip"])
    (cached,) = (tmp_path / "out" / "results" / "cache" / "data").glob("fer2013-*.npz")
    cached.write_bytes(b"half a file")
    rebuilt = load_fer2013(layouts["kaggle_zip"])
    assert "the previous copy was unreadable" in rebuilt.notes[-1]
    assert "read from the cache" in load_fer2013(layouts["kaggle_zip"]).notes[-1]


def test_cache_keeps_skip_unreadable_apart_and_sees_a_changed_image(tmp_path, monkeypatch, faces):
    monkeypatch.setenv("EMOLIB_RESULTS_DIR", str(tmp_path / "out"))
    _write_kaggle(tmp_path / "k", faces)
    bad = tmp_path / "k" / "train" / "happy" / "Training_9999.png"
    bad.write_bytes(b"not an image")
    skipped = load_fer2013(tmp_path / "k", skip_unreadable=True)
    assert load_fer2013(tmp_path / "k", skip_unreadable=True).meta.attrs["unreadable"] == \
        skipped.meta.attrs["unreadable"] != []
    with pytest.raises(DataError, match="Training_9999.png"):  # not served the skipping load's cache
        load_fer2013(tmp_path / "k")
    Image.fromarray(np.full((48, 48), 7, np.uint8)).save(bad)  # repaired in place
    repaired = load_fer2013(tmp_path / "k", skip_unreadable=True)
    assert len(repaired) == 22 and repaired.meta.attrs["unreadable"] == []


# ----------------------------------------------------------------------------- the profile's sets
def test_profile_faces_are_the_configured_layout_however_it_is_named(tmp_path, layouts):
    """``data.fer2013`` (the default set ``fer2013``), a ``data.sets`` entry of that name, and
    load_fer2013 of the same path give the same faces; a second FER-2013 copy in ``data.sets``
    is an extra faces set under its own name; a missing layout is an unavailable row."""
    from emolib.config import load_profile
    from emolib.data import load_faces, load_sets

    direct = load_fer2013(layouts["kaggle_zip"])
    plain = load_profile("smoke", **{"data.source": "real", "data.fer2013": str(layouts["kaggle_zip"]),
                                     "data.ferplus": str(tmp_path / "no_ferplus")})
    named = load_profile("smoke", **{"data.source": "real", "data.ferplus": str(tmp_path / "no_ferplus"),
                                     "data.emotion6": str(tmp_path / "no_emotion6.zip"),
                                     "data.sets": [{"name": "fer2013", "loader": "fer2013",
                                                    "path": str(layouts["kaggle_zip"])},
                                                   {"name": "fer_csv", "loader": "fer2013",
                                                    "path": str(layouts["fer_csv"])},
                                                   {"name": "fer_gone", "loader": "fer2013",
                                                    "path": str(tmp_path / "gone.zip")}]})
    for faces in (load_faces(plain), load_faces(named), load_sets(named).faces):
        assert faces.name == "fer2013" and faces.label_set_name == "fer7"
        assert faces.ids.tolist() == direct.ids.tolist() and faces.splits.tolist() == direct.splits.tolist()
        assert np.array_equal(faces.pixels, direct.pixels) and faces.labels.tolist() == direct.labels.tolist()
    data = load_sets(named)
    table = data.table.set_index("name")
    assert table["status"].to_dict() == {"fer2013": "available", "emotion6": "unavailable",
                                         "fer_csv": "available", "fer_gone": "unavailable"}
    assert table.loc["fer_csv", "role"] == "faces" and data.get("fer_csv").name == "fer_csv"
    assert _canonical(data.get("fer_csv")) == _canonical(direct)
    assert "FER-2013 not found at" in table.loc["fer_gone", "reason"]
    assert table.loc["emotion6", "path"] == str(tmp_path / "no_emotion6.zip")
    assert "Emotion6 not found at" in table.loc["emotion6", "reason"] and data.evoked() == {}
