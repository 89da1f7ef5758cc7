"""Generic loaders for the other evoked-emotion sets (ArtPhoto, Abstract, EmoSet, FI).

- ``load_class_folders(root, label_set)``: ``root/<class>/*.jpg`` (optionally
  ``root/<split>/<class>/*.jpg``); class folder names may be synonyms (``sad`` -> sadness).
  Ids are ``<class>/<stem>`` (``image_id="path"``), or the file's ``stem`` or ``file`` name
  (the form recorded answers may use; then they must be unique).
- ``load_manifest(csv, label_set)``: a CSV with columns ``path`` and ``label`` (optional
  ``split``, ``image_id``; ``columns`` maps these names to the CSV's own), paths relative to
  the CSV's folder.
Images are read on demand. A profile names such sets in ``data.sets`` (``emolib.data.sets``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

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


def load_class_folders(root: str | Path, label_set: str, name: str | None = None,
                       image_id: str = "path") -> ImageSet:
    """Images in ``root/<class>/`` or ``root/<split>/<class>/`` folders; ids per ``image_id``
    (``path``: ``<class>/<stem>``, or ``<split>/<class>/<stem>``; ``stem``; ``file``)."""
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
    repeated = sorted(set(pd.Series(ids)[pd.Series(ids).duplicated()]))
    if repeated:
        raise DataError(f"{root}: {len(repeated)} file name(s) occur in several folders, e.g. {repeated[:3]}; "
                        "ids must be unique: use image_id 'path'")
    return ImageSet(
        name=name or root.name, label_set_name=label_set,
        ids=np.array(ids, dtype=object), splits=np.array(splits, dtype=object),
        labels=np.array(labels, dtype=np.int64), sources=tuple(sources),
        notes=(f"loaded from {root}",),
    )


def load_manifest(csv_path: str | Path, label_set: str, name: str | None = None,
                  columns: dict[str, str] | None = None) -> ImageSet:
    """Images listed in a CSV (``path``, ``label``, optional ``split`` and ``image_id``);
    ``columns`` maps any of these names to the CSV's own (``{"label": "emotion"}``)."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError(f"manifest {csv_path} does not exist: write the CSV there (path,label[,split,image_id]), "
                        "or point the set's path at it")
    try:
        frame = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{csv_path} is not a readable CSV ({err}); write it as UTF-8 with a header line "
                        "path,label[,split,image_id]") from err
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
    absent = [p for p in paths if not Path(p).is_file()]
    if absent:
        raise DataError(f"{csv_path}: {len(absent)} listed images do not exist, e.g. {absent[:3]}")
    ids = frame["image_id"] if "image_id" in frame else frame["path"].map(lambda p: Path(p).stem)
    return ImageSet(
        name=name or csv_path.stem, label_set_name=label_set,
        ids=ids.astype(str).to_numpy(dtype=object),
        splits=(frame["split"] if "split" in frame else pd.Series(["test"] * len(frame))).to_numpy(dtype=object),
        labels=np.array([_label_index(str(w), label_set, str(csv_path)) for w in frame["label"]], dtype=np.int64),
        sources=tuple(paths),
        notes=(f"loaded from {csv_path}",),
    )
