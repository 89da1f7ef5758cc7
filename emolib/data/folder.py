"""Generic loaders for the other evoked-emotion sets (ArtPhoto, Abstract, EmoSet, FI).

- ``load_class_folders(root, label_set)``: ``root/<class>/*.jpg`` (optionally
  ``root/<split>/<class>/*.jpg``); class folder names may be synonyms (``sad`` -> sadness).
  Ids are ``<class>/<stem>`` (``image_id="path"``), or the file's ``stem`` or ``file`` name
  (the form recorded answers may use; then they must be unique).
- ``load_manifest(csv, label_set)``: a CSV with columns ``path`` and ``label`` (optional
  ``split``, ``image_id``; ``columns`` maps these names to the CSV's own), paths relative to
  the CSV's folder.
Ids must be unique (a repeated id is a DataError naming both places and the fix). Images are
read on demand, once checked to decode at load (``emolib.data.checks.keep_readable``). A
profile names such sets in ``data.sets`` (``emolib.data.sets``).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd

from emolib.data.checks import keep_readable, read_utf8, repeated_keys
from emolib.data.imageset import DataError, ImageSet
from emolib.labels import get_label_set, normalize_label

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".gif"}


def _label_index(word: str, label_set_name: str, where: str) -> int:
    label_set = get_label_set(label_set_name)
    member = normalize_label(word, label_set)
    if member is None:
        raise DataError(
            f"{where}: {word!r} is not a class of {label_set_name} {list(label_set.names)}; "
            "rename the folder/label or choose the right label set"
        )
    return label_set.names.index(member)


ID_FORMS = {"path": lambda rel: rel.with_suffix("").as_posix(), "stem": lambda rel: rel.stem,
            "file": lambda rel: rel.name}


def _repeat_message(ids: list[str], places: list[str]) -> str:
    """'<id>' is <place> and <place> (k repeated ids), for the first id that repeats; '' if none."""
    repeats = repeated_keys(ids)
    if not repeats:
        return ""
    key, (first, second, *_) = next(iter(repeats.items()))
    return f"the id {key!r} is {places[first]} and {places[second]} ({len(repeats)} repeated id(s))"


def load_class_folders(root: str | Path, label_set: str, name: str | None = None,
                       image_id: str = "path", skip_unreadable: bool = False) -> ImageSet:
    """Images in ``root/<class>/`` or ``root/<split>/<class>/`` folders; ids per ``image_id``
    (``path``: ``<class>/<stem>``, or ``<split>/<class>/<stem>``; ``stem``; ``file``). Every
    image is checked to decode (``checks.keep_readable``; ``skip_unreadable`` leaves those
    that do not out, listed in ``notes``)."""
    if image_id not in ID_FORMS:
        raise ValueError(f"image_id {image_id!r}: use one of {sorted(ID_FORMS)}")
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist: put the images there as <class>/<image> (or "
                        "<split>/<class>/<image>), or point the set's path at them")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"{root} holds no images ({sorted(IMAGE_SUFFIXES)}) in class folders")
    ids, splits, labels, sources = [], [], [], []
    for path in files:
        rel = path.relative_to(root)
        if len(rel.parts) not in (2, 3):
            raise DataError(f"{path}: expected <class>/<image> or <split>/<class>/<image> under {root}")
        splits.append(rel.parts[0] if len(rel.parts) == 3 else "test")
        labels.append(_label_index(rel.parts[-2], label_set, str(path.parent)))
        ids.append(ID_FORMS[image_id](rel))
        sources.append(str(path))
    repeated = _repeat_message(ids, [p.relative_to(root).as_posix() for p in files])
    if repeated:
        fix = ("rename one of the two files" if image_id == "path" else
               "set image_id: path in the set's entry (ids <class>/<stem>), or rename the files")
        raise DataError(f"{root}: file names occur in several folders: {repeated}; ids must be unique: {fix}")
    image_set = ImageSet(
        name=name or root.name, label_set_name=label_set,
        ids=np.array(ids, dtype=object), splits=np.array(splits, dtype=object),
        labels=np.array(labels, dtype=np.int64), sources=tuple(sources),
        notes=(f"loaded from {root}",),
    )
    return keep_readable(image_set, "class_folders", root, skip_unreadable)


def _read_manifest(csv_path: Path) -> pd.DataFrame:
    """The manifest's rows as text (a DataError naming the file, and the line of a byte that
    is not UTF-8, when it cannot be read)."""
    if not csv_path.is_file():
        raise DataError(f"manifest {csv_path} does not exist: write the CSV there (path,label[,split,image_id]), "
                        "or point the set's path at it")
    text = read_utf8(csv_path)
    try:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise DataError(f"{csv_path} is not a readable CSV ({err}); write it as UTF-8 with a header line "
                        "path,label[,split,image_id]") from err


def _manifest_ids(frame: pd.DataFrame, csv_path: Path) -> list[str]:
    """The ids of the rows (``image_id``, else the file stems); DataError naming the two lines
    of an id that repeats and the fix."""
    given = "image_id" in frame
    ids = frame["image_id"].astype(str).tolist() if given else [Path(p).stem for p in frame["path"]]
    repeated = _repeat_message(ids, [f"on line {i + 2} ({p})" for i, p in enumerate(frame["path"])])
    if repeated:
        fix = ("give every row its own image_id" if given else
               "the ids are the file stems (no image_id column): add an image_id column with a unique id per "
               "row (the profile's columns option can name yours)")
        raise DataError(f"{csv_path}: {repeated}; ids must be unique: {fix}")
    return ids


def load_manifest(csv_path: str | Path, label_set: str, name: str | None = None,
                  columns: dict[str, str] | None = None, skip_unreadable: bool = False) -> ImageSet:
    """Images listed in a CSV (``path``, ``label``, optional ``split`` and ``image_id``);
    ``columns`` maps any of these names to the CSV's own (``{"label": "emotion"}``). Ids must
    be unique; every image is checked to decode (``skip_unreadable`` as ``load_class_folders``)."""
    csv_path = Path(csv_path)
    frame = _read_manifest(csv_path)
    own = {theirs: ours for ours, theirs in (columns or {}).items()}
    absent = sorted(set(own) - set(frame.columns))
    if absent:
        raise DataError(f"{csv_path}: the columns {absent} named in the profile's columns are not in the CSV, "
                        f"which has {list(frame.columns)}")
    frame = frame.rename(columns=own)
    missing = {"path", "label"} - set(frame.columns)
    if missing:
        raise DataError(f"{csv_path}: missing column(s) {sorted(missing)}; needs path,label[,split,image_id] "
                        f"(has {list(frame.columns)}; a profile's columns option renames them)")
    paths = [p if Path(p).is_absolute() else str(csv_path.parent / p) for p in frame["path"]]
    absent = [f"line {i + 2}: {p}" for i, p in enumerate(paths) if not Path(p).is_file()]
    if absent:
        raise DataError(f"{csv_path}: {len(absent)} listed images do not exist, e.g. {absent[:3]}")
    ids = _manifest_ids(frame, csv_path)
    image_set = ImageSet(
        name=name or csv_path.stem, label_set_name=label_set,
        ids=np.array(ids, dtype=object),
        splits=(frame["split"] if "split" in frame else pd.Series(["test"] * len(frame))).to_numpy(dtype=object),
        labels=np.array([_label_index(str(w), label_set, f"{csv_path}, line {i + 2}")
                         for i, w in enumerate(frame["label"])], dtype=np.int64),
        sources=tuple(paths),
        notes=(f"loaded from {csv_path}",),
    )
    return keep_readable(image_set, "manifest", csv_path, skip_unreadable)
