"""Duplicate audit on a fixture with planted exact and near duplicates."""

from __future__ import annotations

import imagehash
import numpy as np
from PIL import Image

from emolib.data import ImageSet
from emolib.data.audit import (
    audit_summary,
    find_exact_duplicates,
    find_near_duplicates,
    leakage_free_mask,
    near_duplicate_pairs,
    perceptual_hashes,
)


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
