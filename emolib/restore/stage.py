"""The restoration stage: backends by name, their status, the evaluation subset, and
``restore_imageset`` (batched, cached per image, resumable, timed).

Backend names: ``none`` (the input, untouched: FER faces stay 48 px; resizing for a model
is the consumer's job), ``bicubic``, ``lanczos``, ``lanczos-unsharp``, the Real-ESRGAN
models of ``emolib.restore.realesrgan.MODELS`` and ``gfpgan-v1.3`` / ``gfpgan-v1.4``.
A restored set is an ``ImageSet`` whose ``variant`` is ``<backend>-<output_size>``
(``realesrgan-x4-96``); ``none`` keeps the set as it is with variant ``none``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from emolib import catalog
from emolib.config import Profile, config_hash
from emolib.data import ImageSet, image_hash
from emolib.machine import plan_machine
from emolib.quiet import progress_bar
from emolib.recorder import COST_FILE, CostRecorder, read_cost_records
from emolib.registry import CLASSICAL_BACKENDS
from emolib.restore.base import Restorer, RestorerUnavailable
from emolib.restore.cache import ImageCache
from emolib.restore.classical import ClassicalRestorer
from emolib.restore.gfpgan import WEIGHT_FILES, GFPGANRestorer, gfpgan_status
from emolib.restore.realesrgan import MODELS, RealESRGANRestorer, realesrgan_status

STAGE = "restoration"
CLASSICAL = CLASSICAL_BACKENDS


def backend_family(backend: str) -> str:
    """``none``, ``classical``, ``realesrgan`` or ``gfpgan``; ValueError for unknown names."""
    if backend == "none":
        return "none"
    families = (("classical", CLASSICAL), ("realesrgan", MODELS), ("gfpgan", WEIGHT_FILES))
    for family, names in families:
        if backend in names:
            return family
    known = ["none", *CLASSICAL, *MODELS, *WEIGHT_FILES]
    raise ValueError(f"unknown restoration backend {backend!r}; known: {known}")


def _make_classical(backend: str, profile: Profile) -> Restorer:
    cfg = profile.restoration
    return ClassicalRestorer(backend, cfg.output_size, cfg.unsharp_radius, cfg.unsharp_percent,
                             cfg.unsharp_threshold)


def _make_realesrgan(backend: str, profile: Profile) -> Restorer:
    cfg = profile.restoration
    return RealESRGANRestorer(backend, cfg.output_size, gpuid=cfg.realesrgan_gpuid,
                              threads=plan_machine(profile).restoration_threads)


def _make_gfpgan(backend: str, profile: Profile) -> Restorer:
    cfg = profile.restoration
    return GFPGANRestorer(backend, cfg.output_size, cfg.gfpgan_weights_dir,
                          device=plan_machine(profile).device, mode=profile.weights)


FACTORIES: dict[str, Callable[[str, Profile], Restorer]] = {
    "classical": _make_classical, "realesrgan": _make_realesrgan, "gfpgan": _make_gfpgan,
}


def backend_available(backend: str, profile: Profile) -> tuple[bool, str]:
    """(available, reason) for one backend on this machine."""
    family = backend_family(backend)
    if family == "none":
        return True, "original images, unchanged"
    if family == "classical":
        return True, "Pillow resampling"
    if family == "realesrgan":
        return realesrgan_status(backend)
    return gfpgan_status(backend, profile.restoration.gfpgan_weights_dir, profile.weights)


def profile_backends(profile: Profile) -> list[str]:
    """Every backend a profile names (``backends``, ``selected``, ``eval_backends``), once."""
    cfg = profile.restoration
    return list(dict.fromkeys([*cfg.backends, cfg.selected, *cfg.eval_backends]))


def evaluation_backends(profile: Profile) -> list[str]:
    """Backends restored on the whole evaluation subset: none, selected, eval_backends."""
    cfg = profile.restoration
    return list(dict.fromkeys(["none", cfg.selected, *cfg.eval_backends]))


def backend_status(profile: Profile, backends: list[str] | None = None) -> pd.DataFrame:
    """One row per backend: backend, family, available (bool), reason."""
    rows = []
    for backend in backends or profile_backends(profile):
        ok, reason = backend_available(backend, profile)
        rows.append({"backend": backend, "family": backend_family(backend), "available": ok,
                     "reason": reason})
    return pd.DataFrame(rows, columns=["backend", "family", "available", "reason"])


def make_restorer(backend: str, profile: Profile) -> Restorer:
    """The restorer of ``backend`` with the profile's settings; RestorerUnavailable if it
    cannot run here (the message says why and what to install or where to put weights)."""
    family = backend_family(backend)
    if family == "none":
        raise ValueError("`none` has no restorer: restore_imageset returns the set unchanged")
    ok, reason = backend_available(backend, profile)
    if not ok:
        raise RestorerUnavailable(f"{backend} is unavailable: {reason}")
    return FACTORIES[family](backend, profile)


# ----------------------------------------------------------------------------- subsets
def restoration_subset(image_set: ImageSet, profile: Profile) -> ImageSet:
    """The evaluation subset (``catalog.fer_eval_name``, stored by notebook 01): the faces
    the restoration, CNN and VLM stages all score."""
    return catalog.select_subset(image_set, profile, catalog.fer_eval_name(profile))


def preview_subset(image_set: ImageSet, profile: Profile) -> ImageSet:
    """``restoration.preview_per_class`` images per class of ``restoration_subset`` (seeded):
    the faces every backend restores for notebook 02's grids, timings and statistics."""
    subset = restoration_subset(image_set, profile)
    rng = np.random.default_rng(profile.seed)
    k = profile.restoration.preview_per_class
    picked = [rng.permutation(np.flatnonzero(subset.labels == c))[:k]
              for c in np.unique(subset.labels)]
    return subset.subset(np.sort(np.concatenate(picked)) if picked else np.array([], dtype=int))


# ----------------------------------------------------------------------------- stage
def cost_path(profile: Profile) -> Path:
    """The cost records of every restoration run, beside the per-image cache they paid for
    (a config change that reuses cached images still finds their cost)."""
    return catalog.restoration_cache_dir(profile) / COST_FILE


def cache_for(restorer: Restorer, profile: Profile) -> ImageCache:
    """The per-image cache of one backend+settings (shared by every config of the profile)."""
    key = f"{restorer.backend}-{config_hash(restorer.backend, restorer.settings())}"
    return ImageCache(catalog.restoration_cache_dir(profile) / key)


def variant_name(backend: str, output_size: int) -> str:
    return "none" if backend == "none" else f"{backend}-{output_size}"


def restore_imageset(image_set: ImageSet, backend: str, profile: Profile,
                     restorer: Restorer | None = None, progress: bool | None = None) -> ImageSet:
    """``image_set`` restored by ``backend``: pixels (n, S, S) uint8 for gray input ((n, S, S, 3)
    for RGB), S = ``restoration.output_size``, variant ``<backend>-<S>``; ``none`` returns the
    set unchanged (variant ``none``). Each image is looked up in the per-image cache first
    (intact entries only); the rest are restored in batches of ``restoration.batch_size`` and
    cached as they finish, so an interrupted run resumes. Records a ``preprocess`` phase
    (items = images restored, extra: cache hits, corrupt entries recomputed)."""
    if backend == "none":
        return replace(image_set, variant="none")
    restorer = restorer or make_restorer(backend, profile)
    size, cache = restorer.output_size, cache_for(restorer, profile)
    inputs = image_set.images()
    keys = [image_hash(img) for img in inputs]
    out: list[np.ndarray | None] = [cache.get(k, (size, size, *img.shape[2:]))
                                    for k, img in zip(keys, inputs, strict=True)]
    todo = [i for i, img in enumerate(out) if img is None]
    recorder = CostRecorder(catalog.restoration_cache_dir(profile), STAGE, profile.cost.sample_interval_s)
    with recorder.phase("preprocess", model=backend, items=0, n_images=len(inputs),
                        cache_hits=len(inputs) - len(todo), corrupt_recomputed=cache.corrupt,
                        output_size=size, variant=variant_name(backend, size)) as handle:
        step = max(1, profile.restoration.batch_size)
        batches = [todo[i:i + step] for i in range(0, len(todo), step)]
        bar = progress_bar(total=len(todo), progress=progress if todo else False, desc=f"restore {backend}")
        with bar:
            for batch in batches:
                restored = restorer.restore_images([inputs[i] for i in batch])
                for i, img in zip(batch, restored, strict=True):
                    cache.put(keys[i], img)
                    out[i] = img
                bar.update(len(batch))
                handle.items += len(batch)  # a killed run counts only the images it cached
    pixels = np.stack(out) if out else np.zeros((0, size, size), np.uint8)
    return image_set.with_pixels(pixels, variant_name(backend, size))


def record_evaluation_variants(profile: Profile, variants: pd.DataFrame) -> None:
    """Notebook 02's record of which backends restored the evaluation subset (backend,
    available, variant, images, reason): what notebooks 03 and 04 then load."""
    catalog.restoration_store(profile).write_meta(evaluation_variants=variants.to_dict("records"))


def load_evaluation_sets(profile: Profile, faces: ImageSet) -> tuple[dict[str, ImageSet], pd.DataFrame]:
    """The restored variants of the evaluation subset that notebook 02 made (``{backend:
    ImageSet}``, read from the per-image cache), and their status table (backend, available,
    variant, images, reason). MissingUpstream naming notebook 02 when it has not run."""
    store = catalog.restoration_store(profile)
    if not store.is_complete():
        raise catalog.missing("the restored evaluation subset", "restoration", profile, store.meta_path)
    status = pd.DataFrame(store.read_meta()["evaluation_variants"])
    subset = restoration_subset(faces, profile)
    restored = {row.backend: restore_imageset(subset, row.backend, profile, progress=False)
                for row in status.itertuples() if row.available and row.backend != "none"}
    return restored, status


def restoration_timings(profile: Profile) -> pd.DataFrame:
    """Per backend, from the cost records of runs that restored images: images, wall_s,
    s/image, images/s, peak RSS (MB). Warm (all-cached) runs are left out."""
    records = pd.DataFrame(read_cost_records(cost_path(profile)))
    cols = ["backend", "images", "wall_s", "s_per_image", "images_per_s", "peak_rss_mb"]
    if records.empty:
        return pd.DataFrame(columns=cols)
    done = records[(records["phase"] == "preprocess") & (records["status"] == "ok")
                   & (records["items"].fillna(0) > 0)]
    table = done.groupby("model").agg(images=("items", "sum"), wall_s=("wall_s", "sum"),
                                      peak_rss_mb=("peak_rss_mb", "max")).reset_index()
    table = table.rename(columns={"model": "backend"})
    table["s_per_image"] = table["wall_s"] / table["images"]
    table["images_per_s"] = table["images"] / table["wall_s"]
    return table[cols]
