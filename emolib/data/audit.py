"""Duplicate and leakage audit of an ImageSet.

- Exact duplicates: images whose pixels are identical (grouped by a hash of the bytes).
- Near duplicates: perceptual hashes (``imagehash.phash``: DCT of a 32x32 Lanczos thumbnail,
  8x8 low frequencies against their median) within a Hamming distance. Candidate pairs come
  from multi-index hashing: split the 64 bits into ``threshold + 1`` blocks; two hashes within
  the threshold agree exactly on at least one block (pigeonhole), so only pairs sharing a
  block value are compared. No pair within the threshold is missed.
- Leakage: a test image with a duplicate in ``train``; ``leakage_free_mask`` drops those.

FER-2013 has 1,516 groups of pixel-identical images (1,853 extra copies), 531 of them span
train and test and 57 span classes: a study that ignores them can report inflated accuracy.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.fftpack
from PIL import Image

from emolib.data.checks import unreadable_images
from emolib.data.imageset import ImageSet
from emolib.quiet import progress_bar

HASH_BITS = 64


# ----------------------------------------------------------------------------- exact
def exact_group_ids(image_set: ImageSet) -> np.ndarray:
    """(n,) int: the same number for images with identical pixels (shape included)."""
    if image_set.pixels is not None:
        flat = np.ascontiguousarray(image_set.pixels.reshape(len(image_set), -1))
        keys = flat.view(np.dtype((np.void, flat.shape[1]))).ravel()
        return np.unique(keys, return_inverse=True)[1].ravel()
    from emolib.data.imageset import image_hash

    hashes = [image_hash(img) for img in progress_bar(image_set.images(), desc="hashing", leave=False)]
    return np.unique(np.array(hashes), return_inverse=True)[1]


def find_exact_duplicates(image_set: ImageSet) -> pd.DataFrame:
    """One row per image that has at least one pixel-identical copy:
    group, index, image_id, split, label (group = the images that are identical)."""
    groups = exact_group_ids(image_set)
    sizes = np.bincount(groups)
    rows = np.flatnonzero(sizes[groups] > 1)
    frame = pd.DataFrame({
        "group": groups[rows], "index": rows, "image_id": image_set.ids[rows],
        "split": image_set.splits[rows], "label": image_set.labels[rows],
    })
    frame["group"] = pd.factorize(frame["group"], sort=True)[0]
    return frame.sort_values(["group", "index"]).reset_index(drop=True)


def summarize_groups(duplicates: pd.DataFrame) -> pd.DataFrame:
    """Per duplicate group: size, splits and labels it holds, whether it crosses train/test
    and whether its labels conflict."""
    def describe(group: pd.DataFrame) -> pd.Series:
        splits = sorted(set(group["split"]))
        return pd.Series({
            "size": len(group),
            "splits": ",".join(splits),
            "labels": ",".join(map(str, sorted(set(group["label"])))),
            "train_and_test": "train" in splits and len(splits) > 1,
            "conflicting_labels": group["label"].nunique() > 1,
        })

    if duplicates.empty:
        return pd.DataFrame(columns=["size", "splits", "labels", "train_and_test", "conflicting_labels"])
    return duplicates.groupby("group").apply(describe, include_groups=False)


# ----------------------------------------------------------------------------- near
def perceptual_hashes(image_set: ImageSet, hash_size: int = 8, highfreq_factor: int = 4) -> np.ndarray:
    """(n,) uint64 pHash of every image, bit for bit what ``imagehash.phash`` gives."""
    side = hash_size * highfreq_factor
    thumbs = np.empty((len(image_set), side, side), dtype=np.float64)
    for i in progress_bar(range(len(image_set)), desc="pHash", leave=False, mininterval=1):
        img = Image.fromarray(image_set.image(i)).convert("L")
        thumbs[i] = np.asarray(img.resize((side, side), Image.Resampling.LANCZOS))
    dct = scipy.fftpack.dct(scipy.fftpack.dct(thumbs, axis=1), axis=2)[:, :hash_size, :hash_size]
    bits = dct > np.median(dct.reshape(len(dct), -1), axis=1)[:, None, None]
    weights = (1 << np.arange(HASH_BITS - 1, -1, -1, dtype=np.uint64))
    return (bits.reshape(len(dct), -1).astype(np.uint64) * weights).sum(axis=1, dtype=np.uint64)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bitwise Hamming distance of uint64 arrays, elementwise."""
    x = np.bitwise_xor(a, b)
    return np.unpackbits(x.view(np.uint8).reshape(-1, 8), axis=1).sum(axis=1)


def near_duplicate_pairs(hashes: np.ndarray, threshold: int) -> pd.DataFrame:
    """All pairs (i < j) with Hamming distance <= threshold, columns i, j, distance."""
    n_blocks = threshold + 1
    edges = np.linspace(0, HASH_BITS, n_blocks + 1).astype(int)
    found: list[np.ndarray] = []
    index = np.arange(len(hashes))
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        block = (hashes >> np.uint64(lo)) & np.uint64((1 << (hi - lo)) - 1)
        keyed = pd.DataFrame({"key": block, "i": index})
        joined = keyed.merge(keyed, on="key", suffixes=("", "_other"))  # same block value
        joined = joined[joined["i"] < joined["i_other"]]
        found.append(joined[["i", "i_other"]].to_numpy())
    if not sum(len(f) for f in found):
        return pd.DataFrame({"i": [], "j": [], "distance": []}, dtype=np.int64)
    pairs = np.unique(np.concatenate(found), axis=0)
    distance = hamming(hashes[pairs[:, 0]], hashes[pairs[:, 1]])
    keep = distance <= threshold
    return pd.DataFrame({"i": pairs[keep, 0], "j": pairs[keep, 1], "distance": distance[keep]})


def find_near_duplicates(image_set: ImageSet, threshold: int = 4,
                         pairs: pd.DataFrame | None = None) -> pd.DataFrame:
    """Pairs of images within ``threshold`` pHash bits that are NOT pixel-identical, with
    their ids, splits and labels. ``pairs``: precomputed ``near_duplicate_pairs`` output."""
    if pairs is None:
        pairs = near_duplicate_pairs(perceptual_hashes(image_set), threshold)
    exact = exact_group_ids(image_set)
    pairs = pairs[exact[pairs["i"]] != exact[pairs["j"]]].reset_index(drop=True)
    for side in ("i", "j"):
        idx = pairs[side].to_numpy()
        pairs[f"id_{side}"] = image_set.ids[idx]
        pairs[f"split_{side}"] = image_set.splits[idx]
        pairs[f"label_{side}"] = image_set.labels[idx]
    return pairs


# ----------------------------------------------------------------------------- leakage
def leakage_free_mask(image_set: ImageSet, threshold: int | None = None,
                      pairs: pd.DataFrame | None = None) -> np.ndarray:
    """(n,) bool, True = keep: False for every non-train image that has a pixel-identical
    copy in ``train`` (or, with ``threshold``, a pHash neighbour within it; ``pairs``:
    precomputed ``near_duplicate_pairs`` output for that threshold)."""
    is_train = image_set.splits == "train"
    groups = exact_group_ids(image_set)
    train_groups = np.zeros(groups.max() + 1, dtype=bool)
    train_groups[groups[is_train]] = True
    leaked = ~is_train & train_groups[groups]
    if threshold is not None:
        if pairs is None:
            pairs = near_duplicate_pairs(perceptual_hashes(image_set), threshold)
        i, j = pairs["i"].to_numpy(), pairs["j"].to_numpy()
        cross = is_train[i] != is_train[j]
        test_side = np.where(is_train[i[cross]], j[cross], i[cross])
        leaked[test_side] = True
    return ~leaked


def audit_summary(image_set: ImageSet, threshold: int | None = 4,
                  hashes: np.ndarray | None = None) -> pd.DataFrame:
    """The audit as one table of (check, count) rows, including unreadable images."""
    exact = find_exact_duplicates(image_set)
    groups = summarize_groups(exact)
    rows = [
        ("images", len(image_set)),
        ("exact duplicate groups", len(groups)),
        ("extra exact copies", int(groups["size"].sum() - len(groups)) if len(groups) else 0),
        ("exact groups spanning train and a test split", int(groups["train_and_test"].sum()) if len(groups) else 0),
        ("exact groups with conflicting labels", int(groups["conflicting_labels"].sum()) if len(groups) else 0),
        ("test images with an exact copy in train", int((~leakage_free_mask(image_set)).sum())),
    ]
    if threshold is not None:
        hashes = perceptual_hashes(image_set) if hashes is None else hashes
        pairs = near_duplicate_pairs(hashes, threshold)
        near = find_near_duplicates(image_set, threshold, pairs)
        cross = (near["split_i"] == "train") != (near["split_j"] == "train")
        rows += [
            (f"near-duplicate pairs (pHash <= {threshold}, not identical)", len(near)),
            ("near-duplicate pairs across train and test", int(cross.sum())),
            ("near-duplicate pairs with conflicting labels", int((near["label_i"] != near["label_j"]).sum())),
            ("test images with an exact or near copy in train",
             int((~leakage_free_mask(image_set, threshold, pairs)).sum())),
        ]
    rows.append(("unreadable images (skipped, listed in notes)", len(unreadable_images(image_set))))
    return pd.DataFrame(rows, columns=["check", "count"])
