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

``recorded_material(profile)`` gathers the recorded GPT-4V answers (one prompt only, no
variants) for the analyses they can honestly support.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from emolib.config import Profile
from emolib.cost import CostRecorder
from emolib.data import ImageSet, load_evoked, load_faces, stratified_indices
from emolib.labels import get_label_set
from emolib.predictions import read_predictions, write_predictions
from emolib.prompts import VARIANTS_FILE, PromptVariant, choose_order_labels, make_variants, variants_table
from emolib.sensitivity import variant_orders  # noqa: F401  (re-exported for notebooks)
from emolib.store import StageStore, write_json, write_text
from emolib.vlm.base import ModelSpec, model_status
from emolib.vlm.cache import ResponseCache, cache_path
from emolib.vlm.parse import lazy_embedder, parse_answer
from emolib.vlm.templates import TEMPLATES_FILE

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


def templates_hash() -> str:
    """sha256 (16 hex) of both template files: a changed prompt is a new sweep."""
    blob = TEMPLATES_FILE.read_bytes() + VARIANTS_FILE.read_bytes()
    return hashlib.sha256(blob).hexdigest()[:16]


def prompt_store(profile: Profile) -> StageStore:
    return StageStore(profile, STAGE, profile.prompts, profile.vlm, profile.data,
                      {"seed": profile.seed, "templates": templates_hash()})


def prompt_predictions_path(profile: Profile) -> Path:
    """Where the sweep's predictions table of this profile's current config is (or will be)."""
    return prompt_store(profile).path("predictions.parquet")


def generative_specs(profile: Profile) -> list[ModelSpec]:
    vlm = profile.vlm
    return [ModelSpec("hf", m) for m in vlm.hf_models] + [ModelSpec("openai", m) for m in vlm.openai_models]


def sample_set(image_set: ImageSet, size: int | None, seed: int) -> ImageSet:
    """A stratified sample of ``size`` images (all if ``size`` is None or larger)."""
    if size is None or size >= len(image_set):
        return image_set
    return image_set.subset(np.sort(stratified_indices(image_set.labels, size, seed)))


def order_sample(image_set: ImageSet, labels: tuple[str, ...], size: int | None, seed: int) -> ImageSet:
    """Images whose truth is one of ``labels``, stratified down to ``size``."""
    keep = np.flatnonzero(np.isin(image_set.label_names, labels))
    return sample_set(image_set.subset(keep), size, seed)


def sweep_sets(profile: Profile) -> dict[str, ImageSet]:
    """``{"evoked" | "faces": ImageSet}`` per ``prompts.datasets``, sampled."""
    sets = {}
    cfg = profile.prompts
    unknown = sorted(set(cfg.datasets) - set(SET_LABELS))
    if unknown:
        raise ValueError(f"prompts.datasets: unknown {unknown}; known: {sorted(SET_LABELS)}")
    if "evoked" in cfg.datasets:
        sets["evoked"] = sample_set(load_evoked(profile), cfg.sample_size, profile.seed)
    if "faces" in cfg.datasets:
        sets["faces"] = sample_set(load_faces(profile).split("private_test"), cfg.sample_size, profile.seed)
    return sets


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


def _device(profile: Profile) -> str:
    if profile.device != "auto":
        return profile.device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _sweep_model(backend, profile: Profile, sets: dict[str, ImageSet], recorder: CostRecorder) -> list[pd.DataFrame]:
    """Every variant of one model on every sweep set (through the backend's cache)."""
    frames, cfg = [], profile.prompts
    for image_set in sets.values():
        variants = sweep_variants(profile, image_set)
        ls = image_set.label_set
        order4 = order_sample(image_set, choose_order_labels(ls, cfg.order_labels, profile.seed),
                              cfg.order_sample_size, profile.seed)
        for v in variants:
            target = order4 if v.family == "order4" else image_set
            with recorder.phase("infer", model=str(backend.spec), items=len(target), dataset=target.name,
                                variant=v.name):
                frame = backend.predict(target, ls, v.text, v.name)
            if v.family == "no_labels":
                with recorder.phase("evaluate", model=str(backend.spec), items=len(frame), step="map open answers"):
                    frame = remap_open_answers(frame, ls, getattr(backend, "embedder", None) or lazy_embedder(),
                                               cfg.open_vocab_threshold)
            frames.append(frame)
    return frames


def run_prompt_sweep(profile: Profile, force: bool = False) -> SweepResult:
    """Run (or read back) the prompt sweep of ``profile``; see the module docstring."""
    store = prompt_store(profile)
    if store.is_complete() and not force:
        return SweepResult(store, read_predictions(store.path("predictions.parquet")),
                           pd.read_csv(store.path("variants.csv"), keep_default_na=False),
                           pd.read_csv(store.path("status.csv"), keep_default_na=False),
                           json.loads(store.path("notes.json").read_text()))
    if profile.vlm.torch_threads:
        import torch

        torch.set_num_threads(profile.vlm.torch_threads)
    recorder = CostRecorder(store.dir, STAGE, profile.cost.sample_interval_s)
    rows, backends, notes, frames = [], {}, [], []
    for spec in generative_specs(profile):
        loaded: dict = {}
        with recorder.phase("preprocess", model=str(spec), step="load model"):
            rows.append(model_status(spec, profile.vlm, _device(profile), loaded))
        backends.update(loaded)
    if backends:
        with recorder.phase("preprocess", step="load sweep sets") as handle:
            sets = sweep_sets(profile)
            handle.items = sum(len(s) for s in sets.values())
        cache = ResponseCache(cache_path(profile.name))
        for backend in backends.values():
            backend.cache = cache
            frames += _sweep_model(backend, profile, sets, recorder)
        cache.close()
        label_sets = {s.name: s.label_set for s in sets.values()}
    else:
        notes.append("no generative VLM is available on this machine: the sweep has no predictions")
        label_sets = {name: get_label_set(ls) for name, ls in SET_LABELS.items() if name in profile.prompts.datasets}
    status = pd.DataFrame(rows, columns=["backend", "model", "status", "reason", "note"])
    cfg = profile.prompts
    variants = pd.concat([variants_table(make_variants(ls, cfg.variants, cfg.n_permutations, profile.seed,
                                                       cfg.order_labels)).assign(dataset=name, label_set=ls.name)
                          for name, ls in label_sets.items()], ignore_index=True)
    predictions = pd.concat(frames, ignore_index=True) if frames else read_predictions([])
    write_predictions(store.path("predictions.parquet"), predictions)
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
    return SweepResult(store, read_predictions(store.path("predictions.parquet")), variants, status, notes, backends)


def recorded_material(profile: Profile, model: str = "gpt4v") -> dict[str, object]:
    """Recorded answers for notebook 05: ``{"evoked": [RecordedSet (artphoto, abstract)],
    "ferplus": RecordedSet | None, "notes": [str]}``; missing files are noted, not fatal."""
    from emolib.vlm import recorded as rec

    out: dict[str, object] = {"evoked": [], "ferplus": None, "notes": []}
    if profile.data.source == "synthetic":
        out["notes"].append("synthetic data profile: recorded GPT-4V answers are not used")
        return out
    try:
        folder = rec.recorded_dir(model)
    except (FileNotFoundError, OSError) as err:
        out["notes"].append(f"recorded {model}: {err}")
        return out
    for name in ("artphoto", "abstract"):
        if (folder / f"{name}_predictions.csv").is_file():
            out["evoked"].append(rec.load_recorded_evoked(name, model))
        else:
            out["notes"].append(f"recorded {model}: no {name}_predictions.csv in {folder}")
    if (folder / "ferplus_predictions.csv").is_file():
        try:
            out["ferplus"] = rec.load_recorded_ferplus(model, ferplus_dir=profile.data.ferplus)
        except FileNotFoundError as err:
            out["notes"].append(f"recorded {model} ferplus: {err}")
    return out
