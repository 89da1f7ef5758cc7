"""The Kaggle-JPEG -> FER+ map (issue 13): the copy shipped with emolib equals the shared
one, a Kaggle-zip user without it gets FER+ labels, and ``build_kaggle_to_ferplus``
rebuilds it from pixels."""

from __future__ import annotations

import gzip
import tomllib
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from emolib.data.fer_csv import write_fer_csv
from emolib.data.ferplus import LINK_COLUMNS, attach_ferplus, build_kaggle_to_ferplus, load_kaggle_link
from emolib.data.imageset import ImageSet, image_hash
from emolib.paths import project_root

pytestmark = pytest.mark.data

CODES = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
SPLITS = {"Training": "train", "PublicTest": "public_test", "PrivateTest": "private_test"}


@pytest.fixture(scope="module")
def ferplus_dir(data_root: Path) -> Path:
    return data_root / "fer2013" / "ferplus"


@pytest.fixture(scope="module")
def shared_map(ferplus_dir: Path) -> pd.DataFrame:
    return pd.read_csv(ferplus_dir / "kaggle_to_ferplus.csv")


def test_shipped_map_equals_the_shared_one(ferplus_dir, shared_map):
    shipped, source = load_kaggle_link(None)
    assert source == "kaggle_to_ferplus.csv.gz shipped with emolib"
    pd.testing.assert_frame_equal(shipped, shared_map)
    assert list(shipped.columns) == list(LINK_COLUMNS)
    packaged = resources.files("emolib.data") / "kaggle_to_ferplus.csv.gz"
    assert gzip.decompress(packaged.read_bytes()) == (ferplus_dir / "kaggle_to_ferplus.csv").read_bytes()
    with open(project_root() / "pyproject.toml", "rb") as handle:
        package_data = tomllib.load(handle)["tool"]["setuptools"]["package-data"]["emolib"]
    assert "data/*.csv.gz" in package_data


def test_kaggle_user_without_the_map_gets_ferplus_labels(tmp_path, ferplus_dir, fer2013_real):
    """A FER+ folder with only fer2013new.csv (what microsoft/FERPlus gives): the shipped map
    joins exactly as the shared copy does."""
    (tmp_path / "fer2013new.csv").symlink_to(ferplus_dir / "fer2013new.csv")
    faces = attach_ferplus(fer2013_real, tmp_path)
    assert faces.notes[-1] == ("FER+ votes joined through kaggle_to_ferplus.csv.gz shipped with emolib: "
                               "177 images without a FER+ label")
    reference = attach_ferplus(fer2013_real, ferplus_dir)
    assert reference.notes[-1].startswith(f"FER+ votes joined through {ferplus_dir / 'kaggle_to_ferplus.csv'}")
    assert faces.meta["fer2013_row"].tolist() == reference.meta["fer2013_row"].tolist()
    row = faces.meta.index[faces.meta["kaggle_path"] == "train/angry/Training_1426440.jpg"][0]
    assert faces.meta.loc[row, "ferplus_name"] == "fer0000000.png"  # votes 4,0,0,1,3,2,0,0 -> neutral
    assert np.allclose(faces.soft_labels[row], np.array([4, 0, 0, 1, 3, 2, 0, 0]) / 10)


# ----------------------------------------------------------------------------- rebuild
def _lossy(pixels: np.ndarray) -> np.ndarray:
    """Noise of -2..2 grey levels (mean |noise| 1.2, like the JPEGs' 1.1-1.6), picked by each
    image's content so that identical images stay identical."""
    pool = np.random.default_rng(0).integers(-2, 3, (4096, 48, 48), dtype=np.int16)
    keys = [int(image_hash(image)[:8], 16) % len(pool) for image in pixels]
    return np.clip(pixels + pool[keys], 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def rebuilt_csv(tmp_path_factory, fer2013_real, shared_map, ferplus_dir):
    """A full-size fer2013.csv put together from the Kaggle JPEGs: row r holds (lossy) the
    JPEG the shared map links to row r; the 177 rows it links to none get the 177 unlinked
    JPEGs of their usage in path order. Returns the file and the JPEG index of each row."""
    usage = pd.read_csv(ferplus_dir / "fer2013new.csv", usecols=["Usage"])["Usage"].to_numpy()
    position = pd.Series(np.arange(len(fer2013_real)), index=fer2013_real.meta["kaggle_path"])
    linked = shared_map.dropna(subset=["fer2013_row"])
    jpeg_of_row = np.full(len(usage), -1)
    jpeg_of_row[linked["fer2013_row"].astype(int)] = position[linked["kaggle_path"]].to_numpy()
    for name in SPLITS:
        free = np.flatnonzero((jpeg_of_row < 0) & (usage == name))
        unlinked = shared_map[shared_map["fer2013_row"].isna() & (shared_map["usage"] == name)]
        jpeg_of_row[free] = position[sorted(unlinked["kaggle_path"])].to_numpy()
    kaggle_class = shared_map.set_index("kaggle_path")["kaggle_class"][fer2013_real.meta["kaggle_path"]].to_numpy()
    rows = ImageSet(
        name="fer2013", label_set_name="fer7", ids=np.arange(len(usage)).astype(str).astype(object),
        splits=np.array([SPLITS[u] for u in usage], dtype=object),
        labels=np.array([CODES.index(c) for c in kaggle_class[jpeg_of_row]], dtype=np.int64),
        pixels=_lossy(fer2013_real.pixels[jpeg_of_row]),
    )
    path = write_fer_csv(rows, tmp_path_factory.mktemp("fer2013_from_zip") / "fer2013.csv")
    return path, jpeg_of_row


def test_rebuild_reproduces_the_shared_map_on_a_sample(rebuilt_csv, fer2013_real, shared_map, ferplus_dir):
    path, jpeg_of_row = rebuilt_csv
    shared = shared_map.set_index("kaggle_path").loc[fer2013_real.meta["kaggle_path"]].reset_index()
    # groups of pixel-identical JPEGs within a usage: the shared map pairs them in path order
    group = pd.Series([image_hash(p) for p in fer2013_real.pixels]) + "/" + shared["usage"]
    size = group.map(group.value_counts())
    has_unlinked = group.isin(group[shared["fer2013_row"].isna()])
    rng = np.random.default_rng(13)
    plain = np.flatnonzero(shared["fer2013_row"].notna() & ~has_unlinked)
    duplicated = np.flatnonzero((size > 1) & ~has_unlinked)
    unlinked = np.flatnonzero(shared["fer2013_row"].isna() & (size == 1))
    seeds = np.concatenate([rng.choice(plain, 250, replace=False), rng.choice(duplicated, 20, replace=False),
                            rng.choice(unlinked, 10, replace=False)])
    sample = np.flatnonzero(group.isin(group[seeds]))  # whole groups, so that their pairing is defined
    assert 280 <= len(sample) < 400 and (size[sample] > 1).sum() >= 40

    rebuilt = build_kaggle_to_ferplus(path, fer2013_real.subset(sample), ferplus_dir)
    assert list(rebuilt.columns) == list(LINK_COLUMNS)
    expected = shared.iloc[sample].reset_index(drop=True)
    rebuilt = rebuilt.set_index("kaggle_path").loc[expected["kaggle_path"]].reset_index()
    linked = expected["fer2013_row"].notna().to_numpy()
    assert rebuilt["fer2013_row"][linked].tolist() == expected["fer2013_row"][linked].astype(int).tolist()
    assert rebuilt["ferplus_png"][linked].tolist() == expected["ferplus_png"][linked].tolist()
    for column in ("usage", "kaggle_class"):
        assert rebuilt[column].tolist() == expected[column].tolist()
    assert ((rebuilt["mae"] > 0) & (rebuilt["mae"] <= 1.6)).all()
    # identical JPEGs: every copy is a candidate of each. The shared map, matched against the
    # original pixels, also counts a few near-duplicates that the noise here pushes past 1.6
    # (over all 35,887 images: 99.8% equal, none above it)
    assert (rebuilt["n_candidates"] >= size[sample].to_numpy()).all()
    assert (rebuilt["n_candidates"] <= expected["n_candidates"])[linked].all()
    assert (rebuilt["n_candidates"] == expected["n_candidates"])[linked].mean() > 0.97
    # images the shared map could not link (FER+ dropped their row) get their fer2013.csv row
    row_of_jpeg = pd.Series(np.arange(len(jpeg_of_row)), index=jpeg_of_row)
    assert rebuilt["fer2013_row"][~linked].tolist() == row_of_jpeg[sample[~linked]].tolist()
    votes = pd.read_csv(ferplus_dir / "fer2013new.csv", usecols=["Image name"])["Image name"]
    assert rebuilt["ferplus_png"][~linked].tolist() == votes[row_of_jpeg[sample[~linked]]].tolist()


def test_rebuild_of_a_few_rows_by_hand(tmp_path, fer2013_real, ferplus_dir):
    """Three JPEGs against a 4-row fer2013.csv: one exact, one lossy, one without a match; a
    fourth row duplicates the first: two candidates, paired to the lower row."""
    pick = fer2013_real.subset(np.flatnonzero(fer2013_real.splits == "train")[:3])
    pixels = pick.pixels.copy()
    pixels[1] = np.clip(pixels[1].astype(int) + 1, 0, 255)  # MAE <= 1: still a match
    pixels[2] = 255 - pixels[2]  # nothing like the JPEG
    rows = ImageSet(name="fer2013", label_set_name="fer7", ids=np.array(["a", "b", "c", "d"], dtype=object),
                    splits=np.array(["train"] * 4, dtype=object), labels=np.r_[pick.labels, pick.labels[:1]],
                    pixels=np.concatenate([pixels, pick.pixels[:1]]))
    frame = build_kaggle_to_ferplus(write_fer_csv(rows, tmp_path / "fer2013.csv"), pick, ferplus_dir)
    frame = frame.set_index("kaggle_path").loc[pick.meta["kaggle_path"]]
    assert frame["fer2013_row"].tolist() == [0, 1, pd.NA]
    assert frame["n_candidates"].tolist() == [2, 1, 0]
    assert frame["mae"].iloc[0] == 0 and 0 < frame["mae"].iloc[1] <= 1 and np.isnan(frame["mae"].iloc[2])
    assert frame["ferplus_png"].iloc[:2].tolist() == ["fer0000000.png", "fer0000001.png"]
