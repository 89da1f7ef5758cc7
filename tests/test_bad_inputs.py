"""A corpus of broken inputs, built in tmp_path from real faces of the shared FER-2013 zip:
each must fail with an error naming the file (and row), the bad value and the fix, or, for
the harmless variants a user really has (a zip re-made on a Mac, Windows line endings,
torchvision's unlabelled test.csv), load exactly what a clean copy loads."""

from __future__ import annotations

import zipfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from emolib.data.emotion6 import load_emotion6
from emolib.data.fer2013 import load_fer2013
from emolib.data.fer_csv import format_pixel_strings
from emolib.data.imageset import DataError
from emolib.vlm.recorded import load_recorded_evoked, load_recorded_ferplus

pytestmark = pytest.mark.data

CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]  # fer2013.csv codes 0-6
USAGES = ["Training", "PublicTest", "PrivateTest"]


@pytest.fixture(scope="module")
def faces(data_root: Path) -> pd.DataFrame:
    """21 real faces: the first JPEG of each class and usage in the shared Kaggle zip."""
    rows = []
    with zipfile.ZipFile(data_root / "fer2013" / "fer2013.zip") as zf:
        names = sorted(zf.namelist())
        for code, cls in enumerate(CLASSES):
            for usage in USAGES:
                folder = "train" if usage == "Training" else "test"
                name = next(n for n in names if n.startswith(f"{folder}/{cls}/{usage}_"))
                jpeg = zf.read(name)
                pixels = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
                rows.append({"emotion": code, "Usage": usage, "member": name, "jpeg": jpeg, "pixels": pixels})
    return pd.DataFrame(rows)


def _fer_rows(faces: pd.DataFrame) -> list[list[str]]:
    pixels = format_pixel_strings(np.stack(faces["pixels"]))
    return [[str(e), p, u] for e, p, u in zip(faces["emotion"], pixels, faces["Usage"], strict=True)]


def _write_csv(path: Path, header: str, rows: list[list[str]], newline: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(newline.join([header] + [",".join(r) for r in rows]).encode() + newline.encode())
    return path


def _fer_csv(tmp_path: Path, faces: pd.DataFrame, row: int | None = None, column: int = 1, value: str = "",
             header: str = "emotion,pixels,Usage", name: str = "fer2013.csv") -> Path:
    """fer2013.csv of the faces, with field ``column`` of ``row`` replaced by ``value``."""
    rows = _fer_rows(faces)
    if row is not None:
        rows[row][column] = value
    return _write_csv(tmp_path / name, header, rows)


def _pixel_edit(faces: pd.DataFrame, row: int, edit) -> str:
    values = format_pixel_strings(faces["pixels"].iloc[row][None])[0].split(" ")
    return " ".join(edit(values))


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def _kaggle_members(faces: pd.DataFrame) -> dict[str, bytes]:
    return dict(zip(faces["member"], faces["jpeg"], strict=True))


# ----------------------------------------------------------------------------- the corpus
def _replace_pixel(k: int, token: str):
    return lambda values: values[:k] + [token] + values[k + 1:]


CSV_CASES = {
    # name: (row, column, value, expected message after "<file>: ")
    "non-numeric pixel": (3, 1, ("pix", 5, "x7"), r"row 3 \(line 5\): pixel 5 is 'x7', not an integer 0-255"),
    "float pixel": (4, 1, ("pix", 0, "12.5"), r"row 4 \(line 6\): pixel 0 is '12.5', not an integer 0-255"),
    "negative pixel": (2, 1, ("pix", 9, "-3"), r"row 2 \(line 4\): pixel 9 is '-3', not an integer 0-255"),
    "pixel above 255": (6, 1, ("pix", 7, "256"), r"row 6 \(line 8\): pixel 7 is '256', not an integer 0-255"),
    "pixel of four digits": (6, 1, ("pix", 2303, "1000"), r"row 6 \(line 8\): pixel 2303 is '1000'"),
    "tab between pixels": (1, 1, ("pix", 3, "70\t80"), r"row 1 \(line 3\): pixel 3 is '70\\t80'"),
    "short pixel row": (2, 1, ("drop", 0, ""), r"row 2 \(line 4\) has 2303 pixel values; FER-2013 rows have 2304"),
    "long pixel row": (20, 1, ("add", 0, "9"), r"row 20 \(line 22\) has 2305 pixel values"),
    "empty pixel field": (5, 1, ("set", 0, ""), r"row 5 \(line 7\) has 0 pixel values"),
    "label out of range": (4, 0, ("set", 0, "7"), r"row 4 \(line 6\): emotion is '7'; FER-2013 codes are 0-6"),
    "label -1": (0, 0, ("set", 0, "-1"), r"row 0 \(line 2\): emotion is '-1'; .*-1 means 'no label'"),
    "label as a word": (9, 0, ("set", 0, "happy"), r"row 9 \(line 11\): emotion is 'happy'"),
    "empty label": (10, 0, ("set", 0, ""), r"row 10 \(line 12\): emotion is ''"),
    "unknown usage": (11, 2, ("set", 0, "Validation"), r"row 11 \(line 13\): Usage is 'Validation'; expected one of"),
}


@pytest.mark.parametrize("case", sorted(CSV_CASES))
def test_broken_fer2013_csv_names_file_row_value_and_fix(tmp_path, faces, case):
    row, column, (kind, k, token), expected = CSV_CASES[case]
    if kind == "pix":
        value = _pixel_edit(faces, row, _replace_pixel(k, token))
    elif kind == "drop":
        value = _pixel_edit(faces, row, lambda v: v[1:])
    elif kind == "add":
        value = _pixel_edit(faces, row, lambda v: v + [token])
    else:
        value = token
    path = _fer_csv(tmp_path, faces, row, column, value)
    with pytest.raises(DataError, match=r"fer2013\.csv: " + expected) as err:
        load_fer2013(path)
    assert str(err.value).startswith(f"{path}: row {row} ")
    assert "Fix or delete that row, or download the file again" in str(err.value)


def test_icml_csv_with_label_minus_one_names_the_icml_file(tmp_path, faces):
    rows = [[e, u, p] for e, p, u in _fer_rows(faces)]
    rows[8][0] = "-1"
    path = _write_csv(tmp_path / "icml_face_data.csv", "emotion, Usage, pixels", rows)
    with pytest.raises(DataError, match=r"icml_face_data\.csv: row 8 \(line 10\): emotion is '-1'"):
        load_fer2013(path)


@pytest.mark.parametrize(
    ("header", "keep", "expected"),
    [
        ("pixels,Usage", [1, 2],
         r"missing column\(s\) \['emotion'\]; found \['pixels', 'Usage'\].*only torchvision's test.csv may lack"),
        ("emotion,pixels", [0, 1], r"missing column\(s\) \['Usage'\]"),
    ],
)
def test_csv_without_a_needed_column_is_an_error(tmp_path, faces, header, keep, expected):
    rows = [[r[i] for i in keep] for r in _fer_rows(faces)]
    with pytest.raises(DataError, match=r"fer2013\.csv: " + expected):
        load_fer2013(_write_csv(tmp_path / "fer2013.csv", header, rows))


def test_unparseable_or_empty_csv(tmp_path, faces):
    ragged = _fer_rows(faces)
    ragged[3].append("extra")
    with pytest.raises(DataError, match=r"fer2013\.csv is not a readable CSV \(.*Expected 3 columns, got 4"):
        load_fer2013(_write_csv(tmp_path / "a" / "fer2013.csv", "emotion,pixels,Usage", ragged))
    with pytest.raises(DataError, match=r"fer2013\.csv holds a header but no rows"):
        load_fer2013(_write_csv(tmp_path / "b" / "fer2013.csv", "emotion,pixels,Usage", []))
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "fer2013.csv").write_bytes(b"")
    with pytest.raises(DataError, match=r"fer2013\.csv is not a readable CSV \(Empty CSV file"):
        load_fer2013(tmp_path / "c" / "fer2013.csv")


def test_harmless_csv_variants_load_exactly(tmp_path, faces):
    """Windows line endings, quoted pixel strings, doubled spaces: the same pixels as clean."""
    expected = np.stack(faces["pixels"])
    clean = load_fer2013(_fer_csv(tmp_path / "clean", faces), cache=False)
    assert np.array_equal(clean.pixels, expected) and clean.labels.tolist() == faces["emotion"].tolist()
    crlf = _write_csv(tmp_path / "crlf" / "fer2013.csv", "emotion,pixels,Usage", _fer_rows(faces), "\r\n")
    quoted = [[e, f'"{p}"', u] for e, p, u in _fer_rows(faces)]
    spaced = [[e, " " + p.replace(" ", "  ", 5), u] for e, p, u in _fer_rows(faces)]
    for rows_path in (crlf, _write_csv(tmp_path / "q" / "fer2013.csv", "emotion,pixels,Usage", quoted),
                      _write_csv(tmp_path / "s" / "fer2013.csv", "emotion,pixels,Usage", spaced)):
        loaded = load_fer2013(rows_path, cache=False)
        assert np.array_equal(loaded.pixels, expected), rows_path
        assert loaded.splits.tolist() == clean.splits.tolist()


# ----------------------------------------------------------------------------- torchvision layout
def test_torchvision_test_csv_without_labels_is_the_documented_exception(tmp_path, faces):
    base = tmp_path / "tv" / "fer2013"
    rows = _fer_rows(faces)
    train = [[e, p] for e, p, u in rows if u == "Training"]
    _write_csv(base / "train.csv", "emotion,pixels", train)
    _write_csv(base / "test.csv", "pixels", [[p] for e, p, u in rows if u != "Training"])
    loaded = load_fer2013(tmp_path / "tv")
    assert (loaded.labels[loaded.splits == "test"] == -1).all() and (loaded.splits == "test").sum() == 14
    assert "test.csv has no labels" in loaded.notes[0]
    _write_csv(base / "train.csv", "pixels", [[p] for _, p in train])  # train.csv must carry labels
    with pytest.raises(DataError, match=r"train\.csv: missing column\(s\) \['emotion'\]"):
        load_fer2013(tmp_path / "tv")
    (base / "test.csv").unlink()
    with pytest.raises(DataError, match=r"fer2013 holds none of fer2013\.csv, icml_face_data\.csv and lacks test\.csv"):
        load_fer2013(tmp_path / "tv")


# ----------------------------------------------------------------------------- Kaggle zip / folder
def test_zip_remade_on_a_mac_loads_and_says_what_it_ignored(tmp_path, faces):
    members = _kaggle_members(faces)
    mac = {f"__MACOSX/{'/'.join(n.split('/')[:-1])}/._{n.split('/')[-1]}": b"\x00\x05\x16\x07 AppleDouble"
           for n in members}
    path = _zip(tmp_path / "archive.zip", {**members, **mac, "__MACOSX/._train": b"\x00", "train/.DS_Store": b"x"})
    loaded = load_fer2013(path)
    assert len(loaded) == 21 and np.array_equal(loaded.pixels, np.stack(faces["pixels"][np.argsort(faces["member"])]))
    assert any("ignored 22 macOS metadata entries (__MACOSX/, ._*)" in note for note in loaded.notes)
    # the same AppleDouble files next to the images of an unpacked folder
    folder = tmp_path / "unpacked"
    for name, data in {**members, **{n.replace("__MACOSX/", ""): d for n, d in mac.items()}}.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)
    assert len(load_fer2013(folder)) == 21


def test_missing_test_folder_is_named(tmp_path, faces):
    train_only = {n: d for n, d in _kaggle_members(faces).items() if n.startswith("train/")}
    with pytest.raises(DataError, match=r"archive\.zip has no images under test/<class>/: .*unpack the whole archive"):
        load_fer2013(_zip(tmp_path / "archive.zip", train_only))
    for name, data in train_only.items():
        (tmp_path / "k" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "k" / name).write_bytes(data)
    with pytest.raises(DataError, match=r"k holds train/ but no test/ folder"):
        load_fer2013(tmp_path / "k")


def test_broken_jpeg_is_named_or_listed(tmp_path, faces):
    members = _kaggle_members(faces)
    bad = "train/happy/Training_99999999.jpg"
    path = _zip(tmp_path / "archive.zip", {**members, bad: members[faces["member"].iloc[9]][:300]})
    with pytest.raises(DataError, match=r"cannot read FER-2013 image .*archive\.zip::train/happy/Training_99999999"
                                        r"\.jpg: Truncated File Read\. Replace it .*skip_unreadable"):
        load_fer2013(path)
    loaded = load_fer2013(path, skip_unreadable=True)
    assert len(loaded) == 21 and "Training_99999999" in loaded.meta.attrs["unreadable"][0]


def test_wrong_image_size_is_named(tmp_path, faces):
    big = cv2.imencode(".jpg", cv2.resize(faces["pixels"].iloc[0], (64, 64)))[1].tobytes()
    path = _zip(tmp_path / "archive.zip", {**_kaggle_members(faces), "train/angry/Training_1.jpg": big})
    with pytest.raises(DataError, match=r"zip::train/angry/Training_1\.jpg is 64x64, FER-2013 images are 48x48"):
        load_fer2013(path)


def test_not_a_zip(tmp_path):
    (tmp_path / "archive.zip").write_bytes(b"<html>rate limited</html>")
    with pytest.raises(DataError, match=r"archive\.zip is not a readable zip archive .*download it again"):
        load_fer2013(tmp_path / "archive.zip")


# ----------------------------------------------------------------------------- Emotion6, recorded answers
def test_emotion6_path_that_is_not_a_zip(tmp_path):
    (tmp_path / "Emotion6.zip").write_text("not a zip")
    with pytest.raises(DataError, match=r"Emotion6\.zip is not a zip archive .*Cornell's Emotion6\.zip"):
        load_emotion6(tmp_path / "Emotion6.zip")


def test_emotion6_zip_remade_on_a_mac(tmp_path, data_root):
    """The ._ground_truth.txt a Mac adds must not be taken for the ground truth."""
    with zipfile.ZipFile(data_root / "emotion6" / "Emotion6.zip") as zf:
        members = {n: zf.read(n) for n in zf.namelist() if not n.endswith("/")}
    mac = _zip(tmp_path / "Emotion6.zip", {"__MACOSX/Emotion6/._ground_truth.txt": b"\x00\x05\x16\x07", **members})
    assert len(load_emotion6(mac)) == 1980


@pytest.mark.parametrize(
    ("file", "columns", "missing"),
    [
        ("ferplus_predictions.csv", ["name", "gt"], "gpt4v"),
        ("abstract_predictions.csv", ["name", "gpt4v"], "gt"),
        ("abstract_labels.csv", ["name"], "gt"),
    ],
)
def test_recorded_csv_missing_a_column(tmp_path, monkeypatch, data_root, file, columns, missing):
    folder = tmp_path / "recorded" / "gpt4v"
    folder.mkdir(parents=True)
    for name in ("ferplus_predictions.csv", "abstract_predictions.csv", "abstract_labels.csv"):
        frame = pd.read_csv(data_root / "recorded" / "gpt4v" / name)
        (frame[columns] if name == file else frame).to_csv(folder / name, index=False)
    monkeypatch.setenv("EMOLIB_DATA_DIR", str(tmp_path))
    load = (lambda: load_recorded_ferplus(ferplus_dir=data_root / "fer2013" / "ferplus")) if "ferplus" in file \
        else (lambda: load_recorded_evoked("abstract"))
    with pytest.raises(DataError, match=rf"{file}: missing column\(s\) \['{missing}'\]; expected \[.*\], found "):
        load()
