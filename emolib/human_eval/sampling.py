"""Errors drawn for human evaluation, stratified by backend, model and error category, seeded.

A sample is a table with one row per item (a wrong answer of one model on one image):
``item_id`` (stable hash of the model configuration and the image), the prediction row, its
``error_category`` (EC I-III), ``true_name``/``pred_name``, ``stratum_size`` and ``weight``
(errors in the stratum per sampled item, to weight shares back to all errors), and the
blinding: ``model_is_a`` says whether answer A is the model's (else the data set's label),
drawn per item so the annotator cannot tell which is which. ``save_sample`` writes it, with
one PNG per item, to a stage folder named after the sampling settings and the predictions.
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


def find_image_set(image_sets: dict[str, ImageSet], dataset: str) -> ImageSet:
    """The image set a predictions table's ``dataset`` names."""
    if dataset in image_sets:
        return image_sets[dataset]
    raise KeyError(f"no image set named {dataset!r}; loaded: {sorted(image_sets)}")


def save_sample(
    profile: Profile, predictions: pd.DataFrame, image_sets: dict[str, ImageSet]
) -> Path:
    """Draw (or reuse) the sample of this profile's predictions; write ``sample.parquet``
    and ``images/<item_id>.png`` to its stage folder and return the folder."""
    store = catalog.human_eval_store(profile, predictions)
    if store.is_complete():
        return store.dir
    cfg = profile.human_eval
    recorder = CostRecorder(store.dir, STAGE)
    with recorder.phase("preprocess", model="sample_errors", items=len(predictions)) as h:
        sample = sample_errors(predictions, cfg.n_samples, profile.seed, cfg.allocation)
        h.extra["sampled"] = len(sample)
    with recorder.phase("preprocess", model="write_images", items=len(sample)):
        positions = {
            name: image_positions(find_image_set(image_sets, name))
            for name in sample["dataset"].unique()
        }
        for row in progress_bar(sample.itertuples(), total=len(sample), desc="sample images", leave=False):
            position = positions[row.dataset][f"{row.split}/{row.image_id}"]
            image = image_sets[row.dataset].image(int(position))
            write_bytes(store.path(f"{IMAGES_DIR}/{row.item_id}.png"), png_bytes(image))
    out = sample.drop(columns=["scores"], errors="ignore")
    write_parquet(store.path(SAMPLE_FILE), out)
    strata = sample.groupby(STRATUM).size()
    store.write_meta(items=len(sample), strata={" / ".join(k): int(v) for k, v in strata.items()})
    return store.dir


def read_sample(sample_dir: str | Path) -> pd.DataFrame:
    """The sample table written by ``save_sample``."""
    return pd.read_parquet(Path(sample_dir) / SAMPLE_FILE)


def image_path(sample_dir: str | Path, item_id: str) -> Path:
    return Path(sample_dir) / IMAGES_DIR / f"{item_id}.png"
