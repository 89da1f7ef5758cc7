"""Duplicate audit on a fixture with planted exact and near duplicates, and the named
subsets notebook 01 derives from it."""

from __future__ import annotations

import imagehash
import numpy as np
import pytest
from PIL import Image

from emolib import catalog
from emolib.config import load_profile
from emolib.data import ImageSet, make_synthetic_evoked, stratified_indices
from emolib.data.audit import (
    audit_summary,
    find_exact_duplicates,
    find_near_duplicates,
    leakage_free_mask,
    near_duplicate_pairs,
    perceptual_hashes,
)
from emolib.data.stage import define_subsets, leakage_table, run_audit
from emolib.paths import RESULTS_ENV_VAR
from emolib.recorder import COST_FILE, read_cost_records


def _smooth_image(rng: np.random.Generator) -> np.ndarray:
    """A random smooth 48x48 image (random low-frequency blobs): distinct pHashes."""
    small = rng.integers(0, 256, (6, 6)).astype(np.uint8)
    return np.asarray(Image.fromarray(small).resize((48, 48), Image.Resampling.BICUBIC))


def _planted() -> ImageSet:
    rng = np.random.default_rng(3)
    base = [_smooth_image(rng) for _ in range(30)]
    pixels = list(base)
    splits = ["train"] * 20 + ["private_test"] * 10
    labels = [i % 7 for i in range(30)]
    # exact copies: image 0 into test with the same label, image 1 into test with another
    # label, image 2 twice within train
    plants = ((0, "private_test", labels[0]), (1, "private_test", 5), (2, "train", labels[2]), (2, "train", labels[2]))
    for src, split, label in plants:
        pixels.append(base[src].copy())
        splits.append(split)
        labels.append(label)
    # near copies: image 3 with +2 brightness and a few changed pixels, into test
    near = np.clip(base[3].astype(int) + 2, 0, 255).astype(np.uint8)
    near[0, :3] = 0
    pixels.append(near)
    splits.append("private_test")
    labels.append(labels[3])
    n = len(pixels)
    return ImageSet("planted", "fer7", np.array([f"img{i}" for i in range(n)], dtype=object),
                    np.array(splits, dtype=object), np.array(labels), pixels=np.stack(pixels))


def test_exact_duplicates_found_with_groups():
    s = _planted()
    dup = find_exact_duplicates(s)
    groups = dup.groupby("group")["index"].apply(list).tolist()
    assert sorted(groups) == [[0, 30], [1, 31], [2, 32, 33]]


def test_phash_equals_imagehash():
    s = _planted()
    ours = perceptual_hashes(s)
    theirs = [int(str(imagehash.phash(Image.fromarray(p))), 16) for p in s.pixels]
    assert [int(h) for h in ours] == theirs


def test_near_pairs_equal_brute_force():
    s = _planted()
    h = perceptual_hashes(s)
    for t in (0, 2, 4, 8):
        got = {(int(r.i), int(r.j)) for r in near_duplicate_pairs(h, t).itertuples()}
        brute = {(i, j) for i in range(len(h)) for j in range(i + 1, len(h))
                 if bin(int(h[i]) ^ int(h[j])).count("1") <= t}
        assert got == brute, t


def test_planted_near_duplicate_is_found_and_not_exact():
    s = _planted()
    near = find_near_duplicates(s, threshold=4)
    assert (3, 34) in set(zip(near["i"], near["j"], strict=True))
    assert not any((i, j) in {(0, 30), (1, 31)} for i, j in zip(near["i"], near["j"], strict=True))


def test_leakage_free_mask_and_summary():
    s = _planted()
    keep_exact = leakage_free_mask(s)
    assert set(np.flatnonzero(~keep_exact)) == {30, 31}
    keep_near = leakage_free_mask(s, threshold=4)
    assert {30, 31, 34} <= set(np.flatnonzero(~keep_near))
    summary = audit_summary(s, threshold=4).set_index("check")["count"]
    assert summary["exact duplicate groups"] == 3
    assert summary["extra exact copies"] == 4
    assert summary["exact groups spanning train and a test split"] == 2
    assert summary["exact groups with conflicting labels"] == 1
    assert summary["test images with an exact copy in train"] == 2


def test_named_subsets_come_from_the_audit_and_are_stored_once(tmp_path, monkeypatch):
    monkeypatch.setenv(RESULTS_ENV_VAR, str(tmp_path))
    profile = load_profile("smoke", **{"data.eval_size": 7, "data.emotion6_eval_size": 6})
    s, evoked = _planted(), make_synthetic_evoked(2, seed=0)
    audit = run_audit(profile, s)
    assert run_audit(profile, s)["leakage"].equals(audit["leakage"])  # read back, not recomputed
    records = read_cost_records(catalog.data_store(profile).dir / COST_FILE)
    assert [(r["phase"], r["model"], r["items"]) for r in records] == [("preprocess", "audit", 35)]
    table = leakage_table(audit["leakage"]).set_index("split")
    assert table.loc["private_test"].tolist() == [13, 11, 10] and table.loc["train", "standard"] == 22

    sizes = define_subsets(profile, s, evoked, audit["leakage"]).set_index("subset")["n"]
    assert sizes.to_dict() == {"fer_private": 13, "fer_private_leakage_free_exact": 11,
                               "fer_private_leakage_free_near": 10, "fer_eval_7": 7,
                               "fer_kaggle_test": 13,  # no PublicTest faces planted: PrivateTest's
                               "emotion6_all": 12, "emotion6_eval_6": 6}
    private = s.split("private_test")
    assert catalog.subset_ids(profile, "fer_private").tolist() == private.ids.tolist()
    assert catalog.subset_ids(profile, "fer_kaggle_test").tolist() == private.ids.tolist()
    exact = set(catalog.subset_ids(profile, "fer_private_leakage_free_exact"))
    near = set(catalog.subset_ids(profile, "fer_private_leakage_free_near"))
    assert set(private.ids) - exact == {"img30", "img31"}  # the exact copies of training faces
    assert set(private.ids) - near == {"img30", "img31", "img34"}  # and the brightened copy
    want = private.ids[stratified_indices(private.labels, 7, profile.seed)]
    assert catalog.subset_ids(profile, "fer_eval_7").tolist() == want.tolist()
    chosen = catalog.select_subset(s, profile, "fer_eval_7")
    assert chosen.subset_name == "fer_eval_7" and chosen.ids.tolist() == want.tolist()
    assert catalog.fer_eval_name(profile) == "fer_eval_7"
    with pytest.raises(KeyError, match=r"no subset 'fer_eval_8' .*'fer_eval_7'"):
        catalog.subset_ids(profile, "fer_eval_8")
    with pytest.raises(catalog.MissingUpstream, match=r"subset 'fer_hard' .*run notebooks/03_cnn_training"):
        catalog.subset_ids(profile, "fer_hard")
