"""The prompt sweep of a profile (notebook 05): every generative VLM x data set x variant.

``run_prompt_sweep(profile)`` asks each available generative model of ``profile.vlm``
(``hf_models``, ``openai_models``; CLIP scores each label on its own, so label order, persona
and answer format cannot change its answer and it is not swept) every variant of
``emolib.prompts`` on a stratified sample of the evoked set (``prompts.sample_size``) and,
for the 24 orders of 4 labels, on ``prompts.order_sample_size`` images whose truth is one of
the 4. All calls go through the ``emolib.vlm`` backends and their SQLite response cache
(``emolib.vlm.cache.cache_path``): an interrupted sweep resumes, a rerun makes no calls.
Output under ``results/<profile>/prompts/<hash>/``: ``predictions.parquet``,
``variants.csv`` (name, family, label order, text), ``status.csv``, ``notes.json``. Failed
calls (``parse_status == "error"``) are kept as wrong answers but leave the stage ``partial``,
so the next run asks only them again (everything else comes from the cache).

The sweep's images are named subsets (``emolib.catalog``) drawn from the evaluation subsets
every stage shares: ``<set>_sweep_<n>`` and ``<set>_sweep_order4_<n>``, stored in the stage
folder. One model is loaded at a time and freed before the next. The recorded GPT-4V answers
(one prompt only, no variants) are read from the VLM stage (``recorded_predictions``), so
notebooks 04, 05 and 07 agree on them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from emolib import catalog
from emolib.config import Profile
from emolib.data import ImageSet, load_evoked, load_faces, stratified_indices
from emolib.devices import free_memory, resolve_device
from emolib.labels import get_label_set
from emolib.predictions import read_predictions, write_predictions
from emolib.prompts.analysis import variant_orders  # noqa: F401  (re-exported for notebooks)
from emolib.prompts.variants import PromptVariant, choose_order_labels, make_variants, variants_table
from emolib.recorder import CostRecorder
from emolib.store import StageStore, write_json, write_text
from emolib.vlm.base import ModelSpec, model_status
from emolib.vlm.cache import ResponseCache, cache_path
from emolib.vlm.parse import parse_answer

STAGE = "prompts"
SET_LABELS = {"evoked": "emotion6", "faces": "fer7"}  # label set of each sweep set


@dataclass
class SweepResult:
    """What ``run_prompt_sweep`` produced (also on disk in ``store.dir``); ``backends`` holds
    the loaded backends of this call (empty when read back) so callers can count calls."""

    store: StageStore
    predictions: pd.DataFrame
    variants: pd.DataFrame
    status: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    backends: dict = field(default_factory=dict)


def generative_specs(profile: Profile) -> list[ModelSpec]:
    vlm = profile.vlm
    return [ModelSpec("hf", m) for m in vlm.hf_models] + [ModelSpec("openai", m) for m in vlm.openai_models]


def sample_set(image_set: ImageSet, size: int | None, seed: int, name: str) -> ImageSet:
    """A stratified sample of ``size`` images (all if ``size`` is None or larger), named."""
    if size is not None and size < len(image_set):
        image_set = image_set.subset(stratified_indices(image_set.labels, size, seed))
    return image_set.select_ids(image_set.ids, name)


def order_sample(image_set: ImageSet, labels: tuple[str, ...], size: int | None, seed: int, name: str) -> ImageSet:
    """Images whose truth is one of ``labels``, stratified down to ``size``, named."""
    keep = np.flatnonzero(np.isin(image_set.label_names, labels))
    return sample_set(image_set.subset(keep), size, seed, name)


SET_PREFIX = {"evoked": "emotion6", "faces": "fer"}


def sweep_sets(profile: Profile) -> dict[str, ImageSet]:
    """``{"evoked" | "faces": ImageSet}`` per ``prompts.datasets``: a stratified sample of
    ``prompts.sample_size`` images of the set's evaluation subset, named ``<set>_sweep_<n>``."""
    sets = {}
    cfg = profile.prompts
    unknown = sorted(set(cfg.datasets) - set(SET_LABELS))
    if unknown:
        raise ValueError(f"prompts.datasets: unknown {unknown}; known: {sorted(SET_LABELS)}")
    sources = {
        "evoked": lambda: catalog.select_subset(load_evoked(profile), profile, catalog.emotion6_eval_name(profile)),
        "faces": lambda: catalog.select_subset(load_faces(profile), profile, catalog.fer_eval_name(profile))}
    for key in cfg.datasets:
        name = f"{SET_PREFIX[key]}_sweep_{cfg.sample_size or 'all'}"
        sets[key] = sample_set(sources[key](), cfg.sample_size, profile.seed, name)
    return sets


def order_set(profile: Profile, key: str, image_set: ImageSet) -> ImageSet:
    """The images of the all-orders design: truth among the ``prompts.order_labels`` chosen
    labels, ``prompts.order_sample_size`` of them, named ``<set>_sweep_order4_<n>``."""
    cfg = profile.prompts
    labels = choose_order_labels(image_set.label_set, cfg.order_labels, profile.seed)
    name = f"{SET_PREFIX[key]}_sweep_order{cfg.order_labels}_{cfg.order_sample_size or 'all'}"
    return order_sample(image_set, labels, cfg.order_sample_size, profile.seed, name)


def sweep_variants(profile: Profile, image_set: ImageSet) -> list[PromptVariant]:
    cfg = profile.prompts
    return make_variants(image_set.label_set, cfg.variants, cfg.n_permutations, profile.seed, cfg.order_labels)


def remap_open_answers(frame: pd.DataFrame, label_set, embedder, threshold: float) -> pd.DataFrame:
    """Re-parse free answers with the open-vocabulary threshold: a word that is no label
    goes to the nearest label by sentence embedding when the cosine reaches ``threshold``."""
    frame = frame.copy()
    answered = frame["parse_status"] != "error"
    parsed = [parse_answer(t, label_set, embedder, threshold) for t in frame.loc[answered, "raw_response"]]
    frame.loc[answered, "y_pred"] = [p.label for p in parsed]
    frame.loc[answered, "parse_status"] = [p.status for p in parsed]
    return frame


def _sweep_model(backend, profile: Profile, sets: dict[str, ImageSet], recorder: CostRecorder) -> list[pd.DataFrame]:
    """Every variant of one model on every sweep set (through the backend's cache)."""
    frames, cfg = [], profile.prompts
    for key, image_set in sets.items():
        ls = image_set.label_set
        order4 = order_set(profile, key, image_set)
        for v in sweep_variants(profile, image_set):
            target = order4 if v.family == "order4" else image_set
            with recorder.phase("infer", model=str(backend.spec), items=len(target), dataset=target.name,
                                prompt=v.name):
                frame = backend.predict(target, ls, v.text, v.name)
            if v.family == "no_labels":
                with recorder.phase("evaluate", model=str(backend.spec), items=len(frame), step="map open answers"):
                    frame = remap_open_answers(frame, ls, backend.embedder, cfg.open_vocab_threshold)
            frames.append(frame)
    return frames


def run_prompt_sweep(profile: Profile, force: bool = False, keep_backends: bool = False) -> SweepResult:
    """Run (or read back) the prompt sweep of ``profile``; see the module docstring.
    ``keep_backends``: keep each loaded backend in ``SweepResult.backends`` (tests count
    their calls); otherwise each model is freed after its sweep."""
    store = catalog.prompts_store(profile)
    if store.is_complete() and not force:
        return SweepResult(store, read_predictions(store.path(catalog.PREDICTIONS_FILE)),
                           pd.read_csv(store.path("variants.csv"), keep_default_na=False),
                           pd.read_csv(store.path("status.csv"), keep_default_na=False),
                           json.loads(store.path("notes.json").read_text()))
    if profile.vlm.torch_threads:
        import torch

        torch.set_num_threads(profile.vlm.torch_threads)
    recorder = CostRecorder(store.dir, STAGE, profile.cost.sample_interval_s)
    rows, backends, notes, frames, sets = [], {}, [], [], {}
    cache = ResponseCache(cache_path(profile.name))
    for spec in generative_specs(profile):  # one model in memory at a time
        loaded: dict = {}
        with recorder.phase("preprocess", model=str(spec), step="load model"):
            rows.append(model_status(spec, profile.vlm, resolve_device(profile.device), loaded,
                                     weights=profile.weights))
        if not loaded:
            continue
        if not sets:
            with recorder.phase("preprocess", step="load sweep sets") as handle:
                sets = sweep_sets(profile)
                handle.items = sum(len(s) for s in sets.values())
        backend = loaded.pop(str(spec))
        backend.cache = cache
        frames += _sweep_model(backend, profile, sets, recorder)
        backends[str(spec)] = backend.spec if not keep_backends else backend
        del backend
        free_memory()
    cache.close()
    if sets:
        label_sets = {s.name: s.label_set for s in sets.values()}
        for key, image_set in sets.items():
            for named in (image_set, order_set(profile, key, image_set)):
                catalog.write_stage_subset(store, named.subset_name, named.name, named.ids)
    else:
        notes.append("no generative VLM is available on this machine: the sweep has no predictions")
        label_sets = {name: get_label_set(ls) for name, ls in SET_LABELS.items() if name in profile.prompts.datasets}
    status = pd.DataFrame(rows, columns=["backend", "model", "status", "reason", "note"])
    cfg = profile.prompts
    variants = pd.concat([variants_table(make_variants(ls, cfg.variants, cfg.n_permutations, profile.seed,
                                                       cfg.order_labels)).assign(dataset=name, label_set=ls.name)
                          for name, ls in label_sets.items()], ignore_index=True)
    predictions = pd.concat(frames, ignore_index=True) if frames else read_predictions([])
    write_predictions(store.path(catalog.PREDICTIONS_FILE), predictions)
    write_text(store.path("variants.csv"), variants.to_csv(index=False))
    write_text(store.path("status.csv"), status.to_csv(index=False))
    write_json(store.path("notes.json"), notes)
    n_errors = int((predictions["parse_status"] == "error").sum())
    if n_errors:  # failed calls are not cached: leave the stage open so the next run retries them
        notes.append(f"{n_errors} calls failed (parse_status 'error', counted as wrong); "
                     "the stage stays incomplete and the next run retries them")
        write_json(store.path("notes.json"), notes)
    store.write_meta(status="partial" if n_errors else "complete", n_predictions=len(predictions),
                     n_models=len(status), n_errors=n_errors)
    return SweepResult(store, read_predictions(store.path(catalog.PREDICTIONS_FILE)), variants, status, notes, backends)


def recorded_predictions(profile: Profile) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The recorded answers as the VLM stage (notebook 04) parsed them: their predictions
    rows (backend ``recorded``) and the sentiment table of the evoked sets. MissingUpstream
    naming notebook 04 when it has not run."""
    predictions = catalog.read_stage_predictions(profile, "vlm")
    sentiment = pd.read_parquet(catalog.vlm_store(profile).path("sentiment.parquet"))
    return predictions[predictions["backend"] == "recorded"].reset_index(drop=True), sentiment
