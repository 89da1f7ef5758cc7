"""The VLM stage of a profile (notebook 04): every model on every evaluation set, cached.

``run_zero_shot(profile, restored)`` scores each available model of ``profile.vlm`` on the
evaluation subset of FER-2013 PrivateTest (``catalog.fer_eval_name``: original faces and
each restored variant notebook 02 made, the same ids) and on Emotion6's evaluation subset,
adds the CLIP linear probe and the recorded answers (GPT-4V: FER+ PrivateTest, ArtPhoto,
Abstract), and writes to ``catalog.vlm_store(profile)``: ``predictions.parquet`` (the
predictions table), ``status.csv`` (one row per model: available/unavailable and why),
``sentiment.parquet`` (recorded evoked sets scored on sentiment), ``notes.json`` and the
subsets the recorded answers cover. A complete stage is read back, not recomputed;
responses are cached per image in SQLite (``cache.cache_path``), so an interrupted run
resumes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd

from emolib import catalog
from emolib.config import Profile
from emolib.data import ImageSet, load_evoked, load_faces, stratified_indices
from emolib.devices import free_memory, resolve_device
from emolib.predictions import read_predictions, write_predictions
from emolib.recorder import CostRecorder
from emolib.store import StageStore, write_json, write_parquet, write_text
from emolib.vlm import recorded as rec
from emolib.vlm.base import AVAILABLE, DEFAULT_PROMPT, model_specs, model_status
from emolib.vlm.cache import ResponseCache, cache_path
from emolib.vlm.parse import lazy_embedder
from emolib.vlm.probe import fit_linear_probe

STAGE = "vlm"


@dataclass
class ZeroShotResult:
    """What ``run_zero_shot`` produced (also on disk in ``store.dir``)."""

    store: StageStore
    predictions: pd.DataFrame
    status: pd.DataFrame
    sentiment: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def eval_sets(profile: Profile, restored: dict[str, ImageSet]) -> tuple[list[ImageSet], ImageSet]:
    """What every model scores: the evaluation subset of FER-2013 PrivateTest (original faces
    and each restored variant of it, ``restored``: backend -> ImageSet from
    ``emolib.restore.load_evaluation_sets``) and Emotion6's evaluation subset; and the
    ``vlm.probe_train_size`` training faces (stratified) of the CLIP linear probe."""
    faces = load_faces(profile)
    fer_eval = catalog.select_subset(faces, profile, catalog.fer_eval_name(profile))
    for backend, images in restored.items():
        if list(images.ids) != list(fer_eval.ids):
            raise ValueError(f"restored {backend} faces ({images.subset_name}) are not the ids of "
                             f"{fer_eval.subset_name}: run notebook 02 for this profile again")
    evoked = catalog.select_subset(load_evoked(profile), profile, catalog.emotion6_eval_name(profile))
    train = faces.split("train")
    size = profile.vlm.probe_train_size
    if size is not None and size < len(train):
        train = train.subset(stratified_indices(train.labels, size, profile.seed))
    return [fer_eval, *restored.values(), evoked], train


def _score_model(backend, profile: Profile, sets: list[ImageSet], train: ImageSet,
                 cache: ResponseCache, recorder: CostRecorder) -> list[pd.DataFrame]:
    spec, backend.cache, frames = backend.spec, cache, []
    for image_set in sets:
        with recorder.phase("infer", model=str(spec), items=len(image_set), dataset=image_set.name,
                            restoration=image_set.variant, subset=image_set.subset_name) as handle:
            frames.append(backend.predict(image_set, image_set.label_set, None, DEFAULT_PROMPT))
            handle.extra["cache_hits"] = cache.hits
    if spec.backend == "clip":
        with recorder.phase("train", model=f"{spec} probe", items=len(train)):
            frames.append(fit_linear_probe(backend, train, sets[0], profile.vlm.probe_c, profile.seed))
    return frames


def _recorded_frames(model: str, profile: Profile, store: StageStore, recorder: CostRecorder,
                     notes: list[str]) -> tuple[list[pd.DataFrame], list[pd.DataFrame]]:
    """The recorded answers of ``model`` (one loader for notebooks 04, 05 and 07): parsed
    predictions, the sentiment view of the evoked sets, and the subsets they cover."""
    frames, sentiment = [], []
    embedder, threshold = lazy_embedder(), profile.vlm.embedding_threshold
    with recorder.phase("evaluate", model=f"recorded:{model}") as handle:
        sets = [rec.load_recorded_ferplus(model, ferplus_dir=profile.data.ferplus)]
        sets += [rec.load_recorded_evoked(d, model) for d in ("artphoto", "abstract")
                 if (rec.recorded_dir(model) / f"{d}_predictions.csv").is_file()]
        for rs in sets:
            pred = rec.recorded_predictions(rs, model, embedder=embedder, threshold=threshold)
            catalog.write_stage_subset(store, pred["subset"].iloc[0], pred["dataset"].iloc[0], pred["image_id"])
            frames.append(pred)
            notes.append(f"recorded {model} {rs.dataset}: {len(pred)} answers scored, "
                         f"{rs.unmatched} not joinable to a labelled image")
            if "sentiment_gt" in rs.frame:
                sentiment.append(rec.sentiment_frame(rs, pred).assign(dataset=rs.dataset, model=model,
                                                                      subset=pred["subset"].iloc[0]))
        handle.items = sum(len(f) for f in frames)
    return frames, sentiment


def run_zero_shot(profile: Profile, restored: dict[str, ImageSet], force: bool = False) -> ZeroShotResult:
    """Run (or read back) the VLM stage of ``profile``; see the module docstring. One model
    is loaded at a time and freed before the next. A run with failed calls (error rows) is
    stored as ``partial``: the next run retries them (answers already cached are reused)."""
    store = catalog.vlm_store(profile)
    if store.is_complete() and not force:
        return ZeroShotResult(store, read_predictions(store.path(catalog.PREDICTIONS_FILE)),
                              pd.read_csv(store.path("status.csv"), keep_default_na=False),
                              pd.read_parquet(store.path("sentiment.parquet")),
                              json.loads(store.path("notes.json").read_text()))
    if profile.vlm.torch_threads:
        import torch

        torch.set_num_threads(profile.vlm.torch_threads)  # a shared CPU: more threads thrash
    recorder = CostRecorder(store.dir, STAGE, profile.cost.sample_interval_s)
    notes: list[str] = []
    cache = ResponseCache(cache_path(profile.name))
    device = resolve_device(profile.device)
    frames, sentiment, rows, sets, train = [], [], [], [], None
    for spec in model_specs(profile.vlm):  # one model in memory at a time
        loaded: dict = {}
        with recorder.phase("preprocess", model=str(spec), step="load model") as handle:
            row = model_status(spec, profile.vlm, device, loaded, weights=profile.weights)
            handle.extra["status"] = row["status"]
        rows.append(row)
        if row["status"] != AVAILABLE:
            continue
        if spec.backend == "recorded":
            got, sent = _recorded_frames(spec.model, profile, store, recorder, notes)
            frames += got
            sentiment += sent
            continue
        if not sets:  # images are loaded only if some model needs them
            with recorder.phase("preprocess", step="load evaluation sets") as handle:
                sets, train = eval_sets(profile, restored)
                handle.items = sum(len(s) for s in sets)
        frames += _score_model(loaded.pop(str(spec)), profile, sets, train, cache, recorder)
        free_memory()
    cache.close()
    status = pd.DataFrame(rows, columns=["backend", "model", "status", "reason", "note"])
    predictions = pd.concat(frames, ignore_index=True) if frames else read_predictions([])
    sentiment_frame = pd.concat(sentiment, ignore_index=True) if sentiment else pd.DataFrame(
        columns=["image_id", "y_true", "y_pred", "dataset", "model", "subset"])
    n_errors = int((predictions["parse_status"] == "error").sum())
    if n_errors:
        notes.append(f"{n_errors} call(s) failed (error rows, counted as wrong): the stage stays partial "
                     "and the next run retries them")
    write_predictions(store.path(catalog.PREDICTIONS_FILE), predictions)
    write_text(store.path("status.csv"), status.to_csv(index=False))
    write_parquet(store.path("sentiment.parquet"), sentiment_frame)
    write_json(store.path("notes.json"), notes)
    store.write_meta(status="partial" if n_errors else "complete", n_predictions=len(predictions),
                     n_models=len(status), n_errors=n_errors)
    return ZeroShotResult(store, read_predictions(store.path(catalog.PREDICTIONS_FILE)), status,
                          sentiment_frame, notes)
