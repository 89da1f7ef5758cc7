"""Every bad input a loader reads stops at load with the file, the line (or both places) and the
fix named: Emotion6's ground_truth.txt, manifests, class folders, FER-2013 zips, recorded answers
and unreadable images. Each case builds its broken input in tmp_path from tiny generated images
and calls the real entry point (the loader, or ``load_sets`` of a profile YAML, whose unavailable
row carries the message); with ``data.skip_unreadable: true`` an unreadable image is left out,
named in the set's notes and counted in the table (images + skipped = the images listed)."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from test_bad_inputs import _zip
from test_data_sets import _write_profile

from emolib.config import load_profile
from emolib.data import load_emotion6, load_fer2013, load_sets
from emolib.data.folder import load_class_folders, load_manifest
from emolib.data.imageset import DataError
from emolib.labels import get_label_set
from emolib.vlm.recorded import load_recorded_evoked
from emolib.vlm.recorded_files import load_recorded_file

E6_CLASSES = ("anger", "disgust", "fear", "joy", "sadness", "surprise")
E6_HEADER = "\t".join(["[image_filename]", "[valence]", "[arousal]"]
                      + [f"[prob. {c}]" for c in (*E6_CLASSES, "neutral")])
FER_CLASSES = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
FER_FILES = (("train", "Training"), ("train", "Training"), ("test", "PublicTest"), ("test", "PrivateTest"))
SKIP_ADVICE = "set data.skip_unreadable: true"


# ----------------------------------------------------------------------------- tiny inputs
def _jpeg(seed: int, size: int = 16, gray: bool = False) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size) if gray else (size, size, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="JPEG")
    return out.getvalue()


def _e6_lines() -> list[str]:
    """12 ground-truth lines (file lines 2-13): anger/1.jpg, anger/2.jpg, disgust/1.jpg, ...,
    valence 5, arousal 4, all votes on the image's class."""
    lines = []
    for k, cls in enumerate(E6_CLASSES):
        for n in (1, 2):
            votes = ["1" if j == k else "0" for j in range(7)]
            lines.append("\t".join([f"{cls}/{n}.jpg", "5", "4", *votes]))
    return lines


def _e6_text(edit: Callable[[list[str]], None] | None = None) -> str:
    lines = _e6_lines()
    if edit is not None:
        edit(lines)
    return "\n".join([E6_HEADER, *lines]) + "\n"


def _e6_images(broken: dict[str, bytes] | None = None) -> dict[str, bytes]:
    images = {f"{cls}/{n}.jpg": _jpeg(10 * k + n) for k, cls in enumerate(E6_CLASSES) for n in (1, 2)}
    return {**images, **(broken or {})}


def _emotion6_zip(tmp_path: Path, truth: bytes | None = None, broken: dict[str, bytes] | None = None) -> Path:
    members = {"Emotion6/ground_truth.txt": truth if truth is not None else _e6_text().encode()}
    members.update({f"Emotion6/images/{rel}": data for rel, data in _e6_images(broken).items()})
    return _zip(tmp_path / "Emotion6.zip", members)


def _emotion6_folder(tmp_path: Path, truth: str) -> Path:
    base = tmp_path / "unpacked" / "Emotion6"
    for rel, data in _e6_images().items():
        (base / "images" / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / "images" / rel).write_bytes(data)
    (base / "ground_truth.txt").write_text(truth, encoding="utf-8")
    return tmp_path / "unpacked"


def _files(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def _art(broken: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """Six images: <class>/1.jpg and <class>/2.jpg of joy, sadness and fear."""
    images = {f"{cls}/{n}.jpg": _jpeg(7 * k + n) for k, cls in enumerate(("joy", "sadness", "fear")) for n in (1, 2)}
    return {**images, **(broken or {})}


def _manifest(tmp_path: Path, rows: list[str], header: str = "path,label", broken: dict | None = None,
              encoding: str = "utf-8") -> Path:
    _files(tmp_path / "m", _art(broken))
    (tmp_path / "m" / "list.csv").write_bytes("\n".join([header, *rows, ""]).encode(encoding))
    return tmp_path / "m" / "list.csv"


ART_ROWS = ["joy/1.jpg,joy", "joy/2.jpg,joy", "sadness/1.jpg,sadness", "sadness/2.jpg,sadness",
            "fear/1.jpg,fear", "fear/2.jpg,fear"]


def _fer_members(prefix: str = "", broken: dict[str, bytes] | None = None) -> dict[str, bytes]:
    """28 gray 48x48 faces, 4 per class (2 train, 1 PublicTest, 1 PrivateTest): the Kaggle tree."""
    members = {}
    for k, cls in enumerate(FER_CLASSES):
        for j, (folder, usage) in enumerate(FER_FILES):
            members[f"{prefix}{folder}/{cls}/{usage}_{10 * k + j}.jpg"] = _jpeg(10 * k + j, 48, gray=True)
    return {**members, **(broken or {})}


def _fer_zip(tmp_path: Path, members: dict[str, bytes]) -> Path:
    return _zip(tmp_path / "fer2013.zip", members)


def _fer_csv(tmp_path: Path) -> Path:
    """fer2013.csv of two faces, the second with the pixel 'x7'."""
    row = " ".join(["7"] * 2304)
    lines = ["emotion,pixels,Usage", f"3,{row},Training", f"4,x7 {row[2:]},PublicTest"]
    (tmp_path / "fer2013.csv").write_text("\n".join(lines) + "\n")
    return tmp_path / "fer2013.csv"


# ----------------------------------------------------------------------------- entry points
def _error(call: Callable[[], object]) -> str:
    """The message of the DataError ``call()`` must raise."""
    with pytest.raises(DataError) as err:
        call()
    return str(err.value)


def _table(tmp_path: Path, sets: list[dict], **data) -> pd.DataFrame:
    """``load_sets``' table of a profile YAML: FER-2013 and Emotion6 from ``data`` (absent
    paths unless given: unavailable rows), plus ``sets``."""
    data = {"source": "real", "fer2013": str(tmp_path / "no_fer.zip"), "ferplus": str(tmp_path / "no_ferplus"),
            "emotion6": str(tmp_path / "no_emotion6.zip"), **data}
    profile = load_profile(_write_profile(tmp_path, sets, **data), check_machine=False)
    return load_sets(profile).table.set_index("name")


def _reason(tmp_path: Path, name: str, sets: tuple[dict, ...] = (), **data) -> str:
    row = _table(tmp_path, list(sets), **data).loc[name]
    assert row["status"] == "unavailable", row.to_dict()
    return row["reason"]


def _folder_set(root: Path, **extra) -> dict:
    return {"name": "art", "loader": "class_folders", "path": str(root), "label_set": "emotion6", "role": "evoked",
            **extra}


def _manifest_set(path: Path) -> dict:
    return {"name": "listed", "loader": "manifest", "path": str(path), "label_set": "emotion6", "role": "evoked"}


def _recorded_csv(tmp_path: Path) -> Path:
    path = tmp_path / "answers.csv"
    path.write_bytes("image_id,raw_answer,y_true\nimg_1,happy,happy\nimg_2,colère,angry\n".encode("latin-1"))
    return path


def _recorded_jsonl(tmp_path: Path) -> Path:
    path = tmp_path / "answers.jsonl"
    path.write_bytes('{"image_id": "img_1", "raw_answer": "tristesse é"}\n'.encode("latin-1"))
    return path


def _recorded_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    folder = tmp_path / "recorded" / "gpt4v"
    folder.mkdir(parents=True)
    rows = 'name,gt,gpt4v\nabstract_0001.jpg,negative,"sadness, fear"\nabstract_0002.jpg,négatif,"awe"\n'
    (folder / "abstract_predictions.csv").write_bytes(rows.encode("latin-1"))
    monkeypatch.setenv("EMOLIB_DATA_DIR", str(tmp_path))
    return _error(lambda: load_recorded_evoked("abstract"))


def _replace(line: int, column: int, value: str) -> Callable[[list[str]], None]:
    """An edit of ground-truth file line ``line`` (2 = the first image): cell ``column`` -> value."""
    def edit(lines: list[str]) -> None:
        cells = lines[line - 2].split("\t")
        cells[column] = value
        lines[line - 2] = "\t".join(cells)
    return edit


# ----------------------------------------------------------------------------- the table
@dataclass(frozen=True)
class Case:
    """A broken input: ``run(tmp_path, monkeypatch)`` builds it and returns the message of the
    entry point; it must hold every ``fragment`` (file, line or row, fix) and no ``absent``."""

    name: str
    run: Callable[[Path, pytest.MonkeyPatch], str]
    fragments: tuple[str, ...]
    absent: tuple[str, ...] = ()


CASES = [
    Case("emotion6 non-numeric cell",
         lambda t, m: _error(lambda: load_emotion6(_emotion6_zip(t, _e6_text(_replace(3, 1, "x")).encode()))),
         ("Emotion6.zip::Emotion6/ground_truth.txt, line 3, column 2 (valence): 'x' is not a number",
          "copy that line from Cornell's ground_truth.txt")),
    Case("emotion6 empty cell in the unpacked folder",
         lambda t, m: _error(lambda: load_emotion6(_emotion6_folder(t, _e6_text(_replace(7, 2, ""))))),
         ("unpacked/Emotion6/ground_truth.txt, line 7, column 3 (arousal): '' is not a number",)),
    Case("emotion6 not UTF-8",
         lambda t, m: _error(lambda: load_emotion6(_emotion6_zip(
             t, _e6_text(_replace(4, 0, "disgust/1é.jpg")).encode("latin-1")))),
         ("Emotion6.zip::Emotion6/ground_truth.txt, line 4, byte 10 of the line", "byte 0xe9 is not UTF-8",
          "save it as UTF-8")),
    Case("emotion6 line with 9 fields",
         lambda t, m: _error(lambda: load_emotion6(_emotion6_zip(
             t, _e6_text(lambda lines: lines.__setitem__(4, lines[4].rsplit("\t", 1)[0])).encode()))),
         ("ground_truth.txt, line 6: 9 tab-separated fields, not 10",)),
    Case("emotion6 votes all zero",
         lambda t, m: _error(lambda: load_emotion6(_emotion6_zip(
             t, _e6_text(lambda lines: lines.__setitem__(6, "joy/1.jpg\t5\t4" + "\t0" * 7)).encode()))),
         ("Emotion6.zip::Emotion6/ground_truth.txt, line 8 (joy/1.jpg): all 7 vote shares are 0",
          "or delete the line to leave the image out")),
    Case("emotion6 repeated row (13 lines, 12 images)",
         lambda t, m: _error(lambda: load_emotion6(_emotion6_zip(
             t, _e6_text(lambda lines: lines.append(lines[9])).encode()))),
         ("Emotion6.zip::Emotion6/ground_truth.txt: sadness/2.jpg is on lines 11 and 14 (13 lines for 12 images)",
          "delete the repeated line")),
    Case("emotion6 zero-byte image",
         lambda t, m: _error(lambda: load_emotion6(_emotion6_zip(t, broken={"fear/1.jpg": b""}))),
         ("cannot read emotion6 image", "Emotion6.zip::Emotion6/images/fear/1.jpg: empty file (0 bytes)",
          SKIP_ADVICE)),
    Case("manifest ids from file stems",
         lambda t, m: _error(lambda: load_manifest(_manifest(t, ART_ROWS), "emotion6")),
         ("list.csv: the id '1' is on line 2 (joy/1.jpg) and on line 4 (sadness/1.jpg) (2 repeated id(s))",
          "add an image_id column")),
    Case("manifest repeated image_id",
         lambda t, m: _error(lambda: load_manifest(_manifest(
             t, [f"{r},id{i % 5}" for i, r in enumerate(ART_ROWS)], "path,label,image_id"), "emotion6")),
         ("list.csv: the id 'id0' is on line 2 (joy/1.jpg) and on line 7 (fear/2.jpg)",
          "give every row its own image_id")),
    Case("manifest not UTF-8",
         lambda t, m: _error(lambda: load_manifest(_manifest(
             t, [*ART_ROWS[:2], "sadness/1.jpg,tristesse é"], encoding="latin-1"), "emotion6")),
         ("list.csv, line 4, byte 25 of the line", "0xe9", "save it as UTF-8")),
    Case("manifest label of no class, on its line",
         lambda t, m: _error(lambda: load_manifest(_manifest(t, [ART_ROWS[0], "joy/2.jpg,boredom"]), "emotion6")),
         ("list.csv, line 3: 'boredom' is not a class of emotion6",)),
    Case("manifest undecodable image",
         lambda t, m: _error(lambda: load_manifest(_manifest(
             t, ["joy/1.jpg,joy", "joy/2.jpg,joy"], broken={"joy/2.jpg": b"<html>not found</html>"}), "emotion6")),
         ("cannot read list image", "m/joy/2.jpg: cannot identify image file", SKIP_ADVICE),
         ("BytesIO",)),
    Case("class folders ids from file stems",
         lambda t, m: _error(lambda: load_class_folders(_files(t / "art", _art()), "emotion6", image_id="stem")),
         ("art: file names occur in several folders: the id '1' is fear/1.jpg and joy/1.jpg",
          "set image_id: path in the set's entry")),
    Case("class folders one path twice (1.jpg and 1.png)",
         lambda t, m: _error(lambda: load_class_folders(
             _files(t / "art", _art({"joy/1.png": _jpeg(99)})), "emotion6")),
         ("the id 'joy/1' is joy/1.jpg and joy/1.png", "rename one of the two files")),
    Case("class folders zero-byte image, in the table",
         lambda t, m: _reason(t, "art", (_folder_set(_files(t / "art", _art({"sadness/2.jpg": b""}))),)),
         ("art/sadness/2.jpg: empty file (0 bytes)", SKIP_ADVICE)),
    Case("class folders all unreadable, skip_unreadable already set",
         lambda t, m: _reason(t, "art", (_folder_set(_files(t / "art", {f: b"" for f in _art()})),),
                              skip_unreadable=True),
         ("none of the 6 art images can be read", "art/fear/1.jpg: empty file (0 bytes)"),
         (SKIP_ADVICE,)),
    Case("FER-2013 zip holding the tree twice (56 images, 28 ids)",
         lambda t, m: _error(lambda: load_fer2013(_fer_zip(t, {**_fer_members(), **_fer_members("fer2013/")}))),
         ("fer2013.zip holds the FER-2013 tree twice: test/angry/PrivateTest_3.jpg is both "
          "fer2013/test/angry/PrivateTest_3.jpg and test/angry/PrivateTest_3.jpg",
          "(28 images appear twice among its 56)", "Keep one copy")),
    Case("FER-2013 zero-byte member",
         lambda t, m: _error(lambda: load_fer2013(_fer_zip(t, _fer_members(broken={
             "train/happy/Training_30.jpg": b""})))),
         ("cannot read FER-2013 image", "fer2013.zip::train/happy/Training_30.jpg: empty file (0 bytes)",
          SKIP_ADVICE)),
    Case("FER-2013 every member unreadable, skip_unreadable already set",
         lambda t, m: _reason(t, "fer2013", fer2013=str(_fer_zip(t, {n: b"" for n in _fer_members()})),
                              skip_unreadable=True),
         ("none of the 28 FER-2013 images can be read", "fer2013.zip::test/angry/PrivateTest_3.jpg: empty file"),
         (SKIP_ADVICE,)),
    Case("FER-2013 CSV bad pixel with skip_unreadable set (it does not apply)",
         lambda t, m: _reason(t, "fer2013", fer2013=str(_fer_csv(t)), skip_unreadable=True),
         ("fer2013.csv: row 1 (line 3): pixel 0 is 'x7'", "Fix or delete that row"),
         ("skip_unreadable",)),
    Case("recorded answers CSV in latin-1",
         lambda t, m: _error(lambda: load_recorded_file(_recorded_csv(t), "gpt4v", "rafdb", get_label_set("fer7"))),
         ("answers.csv, line 3, byte 10 of the line", "byte 0xe8 is not UTF-8", "save it as UTF-8")),
    Case("recorded answers JSONL in latin-1",
         lambda t, m: _error(lambda: load_recorded_file(_recorded_jsonl(t), "gpt4v", "rafdb", get_label_set("fer7"))),
         ("answers.jsonl, line 1, byte 48 of the line", "save it as UTF-8")),
    Case("recorded GPT-4V folder file in latin-1",
         _recorded_folder,
         ("recorded/gpt4v/abstract_predictions.csv, line 3, byte 20 of the line", "0xe9", "save it as UTF-8")),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_stops_at_load_naming_file_line_and_fix(tmp_path, monkeypatch, case: Case):
    message = case.run(tmp_path, monkeypatch)
    missing = [f for f in case.fragments if f not in message]
    assert not missing, f"{missing} not in: {message}"
    present = [f for f in case.absent if f in message]
    assert not present, f"{present} in: {message}"


# ----------------------------------------------------------------------------- skip_unreadable
@dataclass(frozen=True)
class SkipCase:
    """One unreadable image in a set of ``listed`` images: ``build(tmp_path)`` gives the
    profile's ``sets`` and data keys; ``file`` is the image's source under tmp_path."""

    name: str
    build: Callable[[Path], tuple[list[dict], dict]]
    listed: int
    file: str


SKIP_CASES = [
    SkipCase("emotion6", lambda t: ([], {"emotion6": str(_emotion6_zip(t, broken={"fear/1.jpg": b""}))}),
             12, "Emotion6.zip::Emotion6/images/fear/1.jpg: empty file (0 bytes)"),
    SkipCase("art", lambda t: ([_folder_set(_files(t / "art", _art({"joy/2.jpg": _jpeg(3)[:200]})))], {}),
             6, "art/joy/2.jpg: "),
    SkipCase("listed", lambda t: ([_manifest_set(_manifest(
        t, [f"{r},r{i}" for i, r in enumerate(["x.jpg,joy", *ART_ROWS[2:]])], "path,label,image_id",
        {"x.jpg": b""}))], {}),
             5, "m/x.jpg: empty file (0 bytes)"),
    SkipCase("fer2013", lambda t: ([], {"fer2013": str(_fer_zip(t, _fer_members(broken={
        "test/sad/PublicTest_52.jpg": b"GIF89a"})))}), 28, "fer2013.zip::test/sad/PublicTest_52.jpg: "),
]


@pytest.mark.parametrize("case", SKIP_CASES, ids=[c.name for c in SKIP_CASES])
def test_unreadable_image_is_named_or_skipped_and_counted(tmp_path, case: SkipCase):
    sets, data = case.build(tmp_path)
    refused = _table(tmp_path, sets, **data).loc[case.name]
    assert refused["status"] == "unavailable"
    assert f"{tmp_path}/{case.file}" in refused["reason"] and SKIP_ADVICE in refused["reason"]
    assert (refused["images"], refused["skipped"]) == (0, 0)

    row = _table(tmp_path, sets, skip_unreadable=True, **data).loc[case.name]
    assert row["status"] == "available", row["reason"]
    assert (row["images"], row["skipped"]) == (case.listed - 1, 1)
    assert row["images"] + row["skipped"] == case.listed
    assert f"unreadable, skipped: {tmp_path}/{case.file}" in row["notes"]


def test_decode_check_is_cached_and_sees_a_repaired_image(tmp_path):
    path = _emotion6_zip(tmp_path, broken={"joy/2.jpg": b""})
    first = load_emotion6(path, skip_unreadable=True)
    again = load_emotion6(path, skip_unreadable=True)
    assert len(first) == len(again) == 11 and "joy/2" not in again.ids
    assert any(n.startswith("decode check of its 12 images read from the cache") for n in again.notes)
    repaired = load_emotion6(_emotion6_zip(tmp_path), skip_unreadable=True)  # the same path, a new zip
    assert len(repaired) == 12 and repaired.meta is None
    assert any(n.startswith("checked that its 12 images decode") for n in repaired.notes)
