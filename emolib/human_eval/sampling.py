"""Errors drawn for human evaluation, stratified by backend, model and error category, seeded.

A sample is a table with one row per item (a wrong answer of one model on one image):
``item_id`` (stable hash of the model configuration and the image), the prediction row, its
``error_category`` (EC I-III), ``true_name``/``pred_name``, ``stratum_size`` and ``weight``
(errors in the stratum per sampled item, to weight shares back to all errors), and the
blinding: ``model_is_a`` says whether answer A is the model's (else the data set's label),
drawn per item so the annotator cannot tell which is which. ``save_sample`` writes it, with
one PNG per item, to a stage folder named after the sampling settings and the predictions.

Only a row whose image can be shown is drawn. A predictions row whose ``image_id`` is not in
the loaded image set of its data set (recorded answers named otherwise than the images, say),
appears twice in its split there, or whose data set is not loaded at all, is counted in the
unmatched table (``unmatched_rows``, ``UNMATCHED_FILE`` beside the sample, ``read_unmatched``):
one row per (dataset, backend, model, reason) with its rows, errors and example ids, shown by
notebook 07. The sample's ``stratum_size`` and ``weight`` then count the matched errors.
"""

from __future__ import annotations

import hashlib
import io
import zlib
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from PIL import Image

from emolib import catalog
from emolib.config import Profile
from emolib.data import ImageSet
from emolib.human_eval.categories import ERROR_CATEGORIES, add_error_categories
from emolib.labels import get_label_set
from emolib.predictions import CONFIG_KEYS
from emolib.quiet import progress_bar
from emolib.recorder import CostRecorder
from emolib.store import write_bytes, write_parquet

STAGE = "human_eval"
SAMPLE_FILE = "sample.parquet"
UNMATCHED_FILE = "unmatched.parquet"
UNMATCHED_COLUMNS = ["dataset", "backend", "model", "reason", "rows", "errors", "examples"]
NOT_LOADED, NOT_IN_SET, AMBIGUOUS = ("data set not loaded", "image_id not in the loaded image set",
                                     "image_id twice in its split of the loaded set")
IMAGES_DIR = "images"
STRATUM = ["backend", "model", "error_category"]


def item_ids(frame: pd.DataFrame) -> np.ndarray:
    """(n,) stable 12-hex ids from the configuration (``CONFIG_KEYS``) and image_id."""
    keys = (
        frame[[*CONFIG_KEYS, "image_id"]]
        .astype(str)
        .agg("|".join, axis=1)
    )
    return np.array([hashlib.sha1(k.encode()).hexdigest()[:12] for k in keys], dtype=object)


def error_pool(predictions: pd.DataFrame) -> pd.DataFrame:
    """The wrong answers (EC I-III) of a predictions table with category, label names and id.
    Rows without an answer or without a label are not annotatable and are left out here
    (``count_error_categories`` reports them)."""
    frame = add_error_categories(predictions)
    frame = frame[frame["error_category"].isin(ERROR_CATEGORIES)].copy()
    frame["true_name"] = [
        get_label_set(s).names[i] for s, i in zip(frame["label_set"], frame["y_true"], strict=True)
    ]
    frame["pred_name"] = [
        get_label_set(s).names[i] for s, i in zip(frame["label_set"], frame["y_pred"], strict=True)
    ]
    frame["item_id"] = item_ids(frame) if len(frame) else pd.Series(dtype=object)
    return frame.reset_index(drop=True)


def allocate(
    sizes: pd.Series, n: int, allocation: Literal["equal", "proportional"] = "equal"
) -> pd.Series:
    """Items to draw per stratum: (s,) stratum sizes -> (s,) counts summing to min(n, total).

    ``equal``: the same number per stratum, strata smaller than their share give the rest to
    the others (water filling). ``proportional``: shares of ``n`` by size, largest remainder."""
    sizes = sizes.astype(int)
    n = min(int(n), int(sizes.sum()))
    if allocation == "proportional":
        exact = sizes / max(sizes.sum(), 1) * n
        counts = np.floor(exact).astype(int)
        order = (exact - counts).sort_values(ascending=False, kind="stable").index
        counts[order[: n - counts.sum()]] += 1
        return counts
    counts = pd.Series(0, index=sizes.index)
    while counts.sum() < n:
        open_ = sizes > counts
        share = max(1, (n - counts.sum()) // int(open_.sum()))
        for key in sizes.index[open_]:
            if counts.sum() >= n:
                break
            counts[key] = min(sizes[key], counts[key] + share)
    return counts


def sample_errors(
    predictions: pd.DataFrame,
    n: int,
    seed: int,
    allocation: Literal["equal", "proportional"] = "equal",
) -> pd.DataFrame:
    """Draw ``n`` errors stratified by (model, error_category); same inputs, same sample.

    Each stratum is drawn with its own generator (seeded by ``seed`` and the stratum name),
    so adding a model does not change the items drawn for the others. Rows come in a
    seeded random order (``order``) so an annotator does not see the strata in blocks."""
    pool = error_pool(predictions)
    if pool.empty:
        return pool.assign(stratum_size=[], weight=[], model_is_a=[], order=[])
    sizes = pool.groupby(STRATUM).size()
    counts = allocate(sizes, n, allocation)
    parts = []
    for key, rows in pool.groupby(STRATUM):
        k = int(counts[key])
        rng = np.random.default_rng([seed, zlib.crc32("|".join(key).encode())])
        rows = rows.sort_values("item_id")
        chosen = rows.iloc[np.sort(rng.choice(len(rows), size=k, replace=False))]
        parts.append(chosen.assign(stratum_size=len(rows), weight=len(rows) / max(k, 1)))
    sample = pd.concat(parts).sort_values("item_id").reset_index(drop=True)
    rng = np.random.default_rng(seed)
    sample["model_is_a"] = rng.random(len(sample)) < 0.5
    sample["order"] = rng.permutation(len(sample))
    return sample.sort_values("order").reset_index(drop=True)


def answer_texts(sample: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(answer A, answer B) label words per item, following the blinding ``model_is_a``."""
    a = np.where(sample["model_is_a"], sample["pred_name"], sample["true_name"])
    b = np.where(sample["model_is_a"], sample["true_name"], sample["pred_name"])
    return a, b


def png_bytes(image: np.ndarray) -> bytes:
    """uint8 (H, W) or (H, W, 3) -> PNG bytes."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def image_positions(image_set: ImageSet) -> pd.Series:
    """Row of each image in ``image_set`` keyed by ``"<split>/<image_id>"``; ids that occur
    twice in one split are left out (ambiguous: better no image than the wrong one)."""
    keys = pd.Series(image_set.splits, dtype=str) + "/" + pd.Series(image_set.ids, dtype=str)
    unique = ~keys.duplicated(keep=False).to_numpy()
    return pd.Series(np.flatnonzero(unique), index=keys[unique].to_numpy())


def locate_images(predictions: pd.DataFrame, image_sets: dict[str, ImageSet]) -> tuple[np.ndarray, np.ndarray]:
    """Where each predictions row's image is: (n,) row positions in ``image_sets[dataset]``
    (-1 where not found) and (n,) reasons ('' where found; ``NOT_LOADED``, ``NOT_IN_SET`` or
    ``AMBIGUOUS``)."""
    position = np.full(len(predictions), -1, dtype=np.int64)
    reason = np.full(len(predictions), "", dtype=object)
    datasets = predictions["dataset"].to_numpy(dtype=object)
    keys = (predictions["split"].astype(str) + "/" + predictions["image_id"].astype(str)).to_numpy(dtype=object)
    for dataset in pd.unique(datasets):
        rows = datasets == dataset
        if dataset not in image_sets:
            reason[rows] = NOT_LOADED
            continue
        image_set = image_sets[dataset]
        found = pd.Series(keys[rows]).map(image_positions(image_set))
        all_keys = pd.Series(image_set.splits, dtype=str) + "/" + pd.Series(image_set.ids, dtype=str)
        position[rows] = found.fillna(-1).to_numpy(dtype=np.int64)
        reason[rows] = np.where(found.notna(), "", np.where(pd.Series(keys[rows]).isin(set(all_keys)),
                                                             AMBIGUOUS, NOT_IN_SET))
    return position, reason


def unmatched_rows(predictions: pd.DataFrame, image_sets: dict[str, ImageSet]) -> pd.DataFrame:
    """The predictions rows whose image cannot be shown (``locate_images``), counted per
    (dataset, backend, model, reason): rows, errors among them (EC I-III: what could have been
    sampled) and up to three example ids (``UNMATCHED_COLUMNS``); empty when every image is found."""
    _, reason = locate_images(predictions, image_sets)
    missing = reason != ""
    if not missing.any():
        return pd.DataFrame(columns=UNMATCHED_COLUMNS)
    frame = add_error_categories(predictions[missing]).assign(reason=reason[missing])
    frame["error"] = frame["error_category"].isin(ERROR_CATEGORIES)
    out = frame.groupby(["dataset", "backend", "model", "reason"], sort=False).agg(
        rows=("image_id", "size"), errors=("error", "sum"),
        examples=("image_id", lambda ids: ", ".join(map(str, pd.unique(ids)[:3])))).reset_index()
    return out[UNMATCHED_COLUMNS].astype({"rows": int, "errors": int})


def save_sample(
    profile: Profile, predictions: pd.DataFrame, image_sets: dict[str, ImageSet]
) -> Path:
    """Draw (or reuse) the sample of this profile's predictions; write ``sample.parquet``,
    ``images/<item_id>.png`` and the unmatched table (``UNMATCHED_FILE``: rows whose image
    cannot be found, counted, never drawn) to its stage folder and return the folder."""
    store = catalog.human_eval_store(profile, predictions)
    if store.is_complete() and store.path(UNMATCHED_FILE).is_file():
        return store.dir
    cfg = profile.human_eval
    recorder = CostRecorder(store.dir, STAGE)
    with recorder.phase("preprocess", model="sample_errors", items=len(predictions)) as h:
        position, reason = locate_images(predictions, image_sets)
        write_parquet(store.path(UNMATCHED_FILE), unmatched_rows(predictions, image_sets))
        matched = predictions.assign(image_position=position)[reason == ""]
        sample = sample_errors(matched, cfg.n_samples, profile.seed, cfg.allocation)
        h.extra["sampled"] = len(sample)
    with recorder.phase("preprocess", model="write_images", items=len(sample)):
        for row in progress_bar(sample.itertuples(), total=len(sample), desc="sample images", leave=False):
            image = image_sets[row.dataset].image(int(row.image_position))
            write_bytes(store.path(f"{IMAGES_DIR}/{row.item_id}.png"), png_bytes(image))
    out = sample.drop(columns=["scores", "image_position"], errors="ignore")
    write_parquet(store.path(SAMPLE_FILE), out)
    strata = sample.groupby(STRATUM).size()
    store.write_meta(items=len(sample), strata={" / ".join(k): int(v) for k, v in strata.items()},
                     unmatched_rows=int((reason != "").sum()))
    return store.dir


def read_unmatched(sample_dir: str | Path) -> pd.DataFrame:
    """The unmatched table written by ``save_sample`` (``UNMATCHED_COLUMNS``)."""
    return pd.read_parquet(Path(sample_dir) / UNMATCHED_FILE)


def read_sample(sample_dir: str | Path) -> pd.DataFrame:
    """The sample table written by ``save_sample``."""
    return pd.read_parquet(Path(sample_dir) / SAMPLE_FILE)


def image_path(sample_dir: str | Path, item_id: str) -> Path:
    return Path(sample_dir) / IMAGES_DIR / f"{item_id}.png"
