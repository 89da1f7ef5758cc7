"""The data stage (notebook 01): the duplicate and leakage audit, and the named evaluation
subsets every later stage scores (``emolib.catalog``) for FER-2013 and every available evoked
set of the profile, computed once and stored as ids."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from emolib import catalog
from emolib.config import Profile
from emolib.data.audit import (
    audit_summary,
    find_exact_duplicates,
    find_near_duplicates,
    leakage_free_mask,
    near_duplicate_pairs,
    perceptual_hashes,
    summarize_groups,
)
from emolib.data.imageset import ImageSet
from emolib.data.subsets import stratified_indices
from emolib.recorder import CostRecorder
from emolib.store import write_parquet

AUDIT_TABLES = ("summary", "groups", "exact", "near", "leakage")


def run_audit(profile: Profile, image_set: ImageSet) -> dict[str, pd.DataFrame]:
    """Exact and near-duplicate audit, cached in the data stage folder.

    Returns ``summary`` (check, count), ``groups`` (per exact duplicate group), ``exact``
    (rows of duplicated images), ``near`` (near-duplicate pairs) and ``leakage``
    (image_id, split, keep_exact, keep_near: the leakage-free split masks).
    """
    store = catalog.data_store(profile)
    names = AUDIT_TABLES
    if store.is_complete() and all(store.path(f"audit_{n}.parquet").is_file() for n in names):
        return {n: pd.read_parquet(store.path(f"audit_{n}.parquet")) for n in names}
    recorder = CostRecorder(store.dir, "data", profile.cost.sample_interval_s)
    threshold = profile.data.phash_threshold if profile.data.near_duplicates else None
    with recorder.phase("preprocess", model="audit", items=len(image_set)):
        exact = find_exact_duplicates(image_set)
        hashes = perceptual_hashes(image_set) if threshold is not None else None
        pairs = near_duplicate_pairs(hashes, threshold) if threshold is not None else None
        out = {
            "summary": audit_summary(image_set, threshold, hashes),
            "groups": summarize_groups(exact).reset_index(),
            "exact": exact,
            "near": find_near_duplicates(image_set, threshold, pairs) if threshold is not None
            else pd.DataFrame(columns=["i", "j", "distance"]),
            "leakage": pd.DataFrame({
                "image_id": image_set.ids, "split": image_set.splits,
                "keep_exact": leakage_free_mask(image_set),
                "keep_near": leakage_free_mask(image_set, threshold, pairs) if threshold is not None
                else leakage_free_mask(image_set),
            }),
        }
    for name, frame in out.items():
        text_columns = {c: str for c in frame.columns if frame[c].dtype == object}
        write_parquet(store.path(f"audit_{name}.parquet"), frame.astype(text_columns))
    store.write_meta(n_images=len(image_set))
    return out


def leakage_table(leakage: pd.DataFrame) -> pd.DataFrame:
    """Images per split in the standard and the two leakage-free versions of each split."""
    table = leakage.groupby("split").agg(
        standard=("image_id", "size"), leakage_free_exact=("keep_exact", "sum"),
        leakage_free_near=("keep_near", "sum"),
    )
    return table.reset_index()


def define_subsets(profile: Profile, faces: ImageSet, evoked: ImageSet | Mapping[str, ImageSet],
                   leakage: pd.DataFrame) -> pd.DataFrame:
    """Compute and store the data stage's named subsets (``catalog.write_subsets``):
    ``fer_private``, its two leakage-free versions (from the audit's ``leakage`` table),
    the shared stratified draw ``fer_eval_<n>`` (``data.eval_size``, profile seed),
    ``fer_kaggle_test`` (every PublicTest and PrivateTest face: CLIP_benchmark's test set), and for
    each evoked set ``<name>_all`` and ``<name>_eval_<n>`` (its ``eval_size``; Emotion6:
    ``data.emotion6_eval_size``). ``evoked``: the available evoked sets by profile set name
    (``DataSets.evoked()``), or one ImageSet, the profile's ``emotion6``. Returns one row per
    subset: subset, dataset, n."""
    evoked = {"emotion6": evoked} if isinstance(evoked, ImageSet) else dict(evoked)
    private = faces.split("private_test")
    test = leakage[leakage["split"] == "private_test"]
    named = [
        ("fer_private", faces.name, private.ids),
        ("fer_private_leakage_free_exact", faces.name, test.loc[test["keep_exact"], "image_id"].to_numpy()),
        ("fer_private_leakage_free_near", faces.name, test.loc[test["keep_near"], "image_id"].to_numpy()),
        (catalog.fer_eval_name(profile), faces.name, _draw(private, profile.data.eval_size, profile.seed)),
        (catalog.FER_KAGGLE_TEST, faces.name, faces.ids[np.isin(faces.splits, catalog.KAGGLE_TEST_SPLITS)]),
    ]
    for name, image_set in evoked.items():
        size = profile.data.get_set(name).eval_size
        named += [(catalog.evoked_all_name(name), image_set.name, image_set.ids),
                  (catalog.evoked_eval_name(profile, name), image_set.name, _draw(image_set, size, profile.seed))]
    names = [n for n, _, _ in named]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ValueError(f"subset name(s) {twice} would name two subsets: rename the data set(s) of data.sets "
                         "whose <name>_all / <name>_eval_<n> collide")
    subsets = {name: (dataset, ids) for name, dataset, ids in named}
    catalog.write_subsets(profile, subsets)
    return pd.DataFrame([{"subset": name, "dataset": dataset, "n": len(ids)}
                         for name, (dataset, ids) in subsets.items()])


def _draw(image_set: ImageSet, size: int | None, seed: int) -> np.ndarray:
    """Ids of ``size`` images stratified by class (all when ``size`` is None), in set order."""
    if size is None or size >= len(image_set):
        return image_set.ids
    return image_set.ids[stratified_indices(image_set.labels, size, seed)]
