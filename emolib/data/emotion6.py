"""Emotion6 (Peng et al., CVPR 2015): 1,980 Flickr images, 330 per emotion keyword.

Layout (zip or unpacked folder): ``Emotion6/images/<class>/<n>.jpg`` and
``Emotion6/ground_truth.txt`` (tab-separated: image, valence, arousal on 1-9, then the
share of user-study votes for anger, disgust, fear, joy, sadness, surprise, neutral).
The label is the folder (the search keyword), as in the seed study; the vote shares are
kept as soft labels. Images are read on demand.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from emolib.data.imageset import ZIP_SEP, DataError, ImageSet
from emolib.labels import EMOTION6_DISTRIBUTION, get_label_set

EMOTION6 = get_label_set("emotion6")


def _find_root(names: list[str], where: str) -> str:
    for name in names:
        parts = name.split("/")
        if parts[-1] == "ground_truth.txt" and "__MACOSX" not in parts:  # not a Mac's ._ metadata copy
            return name[: -len("ground_truth.txt")]
    raise DataError(
        f"{where}: no ground_truth.txt found. Expected the Emotion6 layout "
        "Emotion6/images/<class>/<n>.jpg with Emotion6/ground_truth.txt (Cornell's download)."
    )


def _parse_ground_truth(text: str, where: str) -> pd.DataFrame:
    frame = pd.read_csv(io.StringIO(text), sep="\t")
    if frame.shape[1] != 10:
        raise DataError(
            f"{where}: ground_truth.txt must have 10 tab-separated columns (image, valence, "
            f"arousal, 7 vote shares); found {frame.shape[1]}"
        )
    frame.columns = ["image", "valence", "arousal", *EMOTION6_DISTRIBUTION]
    return frame


def load_emotion6(path: str | Path) -> ImageSet:
    """Emotion6 from its zip or unpacked folder: labels from folders, votes, valence, arousal."""
    path = Path(path)
    if not path.exists():
        raise DataError(
            f"Emotion6 not found at {path}. Request it from Cornell (Peng et al., CVPR 2015), "
            "put Emotion6.zip (or the unpacked Emotion6/ folder) there, or set data.emotion6."
        )
    if path.is_file():
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
                root = _find_root(names, str(path))
                truth = _parse_ground_truth(zf.read(root + "ground_truth.txt").decode(), str(path))
        except zipfile.BadZipFile as err:
            raise DataError(
                f"{path} is not a zip archive ({err}). Point data.emotion6 at Cornell's Emotion6.zip (download "
                "it again if it is damaged) or at the unpacked folder holding Emotion6/ground_truth.txt."
            ) from err
        images = set(names)
        source_of = lambda rel: f"{path}{ZIP_SEP}{root}images/{rel}"  # noqa: E731
        exists = lambda rel: f"{root}images/{rel}" in images  # noqa: E731
    else:
        base = path / "Emotion6" if (path / "Emotion6").is_dir() else path
        gt = base / "ground_truth.txt"
        if not gt.is_file():
            _find_root([], str(path))
        truth = _parse_ground_truth(gt.read_text(), str(gt))
        source_of = lambda rel: str(base / "images" / rel)  # noqa: E731
        exists = lambda rel: (base / "images" / rel).is_file()  # noqa: E731
    classes = truth["image"].str.split("/").str[0]
    unknown = sorted(set(classes) - set(EMOTION6.names))
    if unknown:
        raise DataError(f"{path}: unknown Emotion6 class folder(s) {unknown}; expected {EMOTION6.names}")
    missing = [rel for rel in truth["image"] if not exists(rel)]
    if missing:
        raise DataError(f"{path}: {len(missing)} images listed in ground_truth.txt are missing, e.g. {missing[:3]}")
    votes = truth[list(EMOTION6_DISTRIBUTION)].to_numpy(dtype=np.float32)
    return ImageSet(
        name="emotion6",
        label_set_name="emotion6",
        ids=truth["image"].str.replace(".jpg", "", regex=False).to_numpy(dtype=object),
        splits=np.array(["test"] * len(truth), dtype=object),
        labels=np.array([EMOTION6.index(c) for c in classes], dtype=np.int64),
        sources=tuple(source_of(rel) for rel in truth["image"]),
        soft_labels=votes / votes.sum(axis=1, keepdims=True),
        soft_label_names=EMOTION6_DISTRIBUTION,
        valence=truth["valence"].to_numpy(dtype=np.float32),
        arousal=truth["arousal"].to_numpy(dtype=np.float32),
        notes=(f"loaded from {path}",),
    )
