"""The VLM stage of a profile (notebook 04): every model on every evaluation set, cached.

``run_zero_shot(profile)`` scores each available model of ``profile.vlm`` on FER-2013
PrivateTest (original and, if ``emolib.restore`` can provide them, restored faces) and on
Emotion6, adds the CLIP linear probe and the recorded answers (GPT-4V: FER+ PrivateTest,
ArtPhoto, Abstract), and writes under ``results/<profile>/vlm/<hash>/``:
``predictions.parquet`` (the predictions table), ``status.csv`` (one row per model:
available/unavailable and why), ``sentiment.parquet`` (recorded evoked sets scored on
sentiment) and ``notes.json``. A complete stage is read back, not recomputed; responses are
cached per image in SQLite (``cache.cache_path``), so an interrupted run resumes.
``vlm_predictions_path(profile)`` / ``load_vlm_predictions(profile)`` serve notebooks 05/07.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from emolib.config import Profile
from emolib.cost import CostRecorder
from emolib.data import ImageSet, load_evoked, load_faces, stratified_indices, stratified_subsample
from emolib.predictions import make_predictions, read_predictions, read_stage_predictions, write_predictions
from emolib.store import StageStore, write_json, write_parquet, write_text
from emolib.vlm import recorded as rec
from emolib.vlm.base import AVAILABLE, model_specs, model_status
from emolib.vlm.cache import ResponseCache, cache_path
from emolib.vlm.parse import lazy_embedder

STAGE = "vlm"


@dataclass
class ZeroShotResult:
    """What ``run_zero_shot`` produced (also on disk in ``store.dir``)."""

    store: StageStore
    predictions: pd.DataFrame
    status: pd.DataFrame
    sentiment: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def restore_available() -> bool:
    try:
        from emolib.restore import restore_imageset  # noqa: F401
    except ImportError:
        return False
    return True


def vlm_store(profile: Profile) -> StageStore:
    """The stage folder of this profile's current VLM, data and restoration settings."""
    restoration = profile.restoration
    return StageStore(profile, STAGE, profile.vlm, profile.data, restoration.selected,
                      restoration.eval_backends,
                      {"seed": profile.seed, "restore_module": restore_available()})


def vlm_predictions_path(profile: Profile) -> Path:
    """Where the VLM predictions table of this profile's current config is (or will be)."""
    return vlm_store(profile).path("predictions.parquet")


def load_vlm_predictions(profile: Profile) -> pd.DataFrame:
    """The VLM predictions table; FileNotFoundError naming notebook 04 if it was not run."""
    return read_stage_predictions(vlm_predictions_path(profile), "04_vlm_zero_shot.ipynb", profile.name)


def _subsample(image_set: ImageSet, size: int | None, seed: int) -> ImageSet:
    if size is None or size >= len(image_set):
        return image_set
    return image_set.subset(np.sort(stratified_indices(image_set.labels, size, seed)))


def eval_sets(profile: Profile, notes: list[str]) -> tuple[dict[str, ImageSet], ImageSet]:
    """``({restoration variant or "evoked": ImageSet}, probe training faces)``: PrivateTest
    faces (original, restored) and the evoked set, cut to ``fer_eval_size`` /
    ``emotion6_eval_size``, and ``probe_train_size`` training faces (all stratified)."""
    faces = load_faces(profile)
    # The same stratified draw as emolib.restore.restoration_subset, so restored faces that
    # notebook 02 cached are reused when vlm.fer_eval_size == restoration.eval_size.
    test = stratified_subsample(faces.split("private_test"), {"private_test": profile.vlm.fer_eval_size},
                                seed=profile.seed)
    sets = {"none": test}
    restoration = profile.restoration
    backends = dict.fromkeys((restoration.selected, *restoration.eval_backends))
    for backend in [b for b in backends if b != "none"] if profile.vlm.restored else []:
        try:
            from emolib.restore import restore_imageset

            sets[backend] = restore_imageset(test, backend, profile)
        except ImportError:
            notes.append("emolib.restore not found: restored faces not scored")
            break
        except Exception as err:  # a restorer without weights: say so, go on
            notes.append(f"restoration {backend} unavailable: {type(err).__name__}: {err}")
    sets["evoked"] = _subsample(load_evoked(profile), profile.vlm.emotion6_eval_size, profile.seed)
    return sets, _subsample(faces.split("train"), profile.vlm.probe_train_size, profile.seed)


def _variant(key: str) -> str:
    return "prompt=default" if key == "evoked" else f"prompt=default;restoration={key}"


def fit_linear_probe(backend, train: ImageSet, test: ImageSet, c: float, seed: int) -> pd.DataFrame:
    """Logistic regression on frozen CLIP image features (train split) -> test predictions."""
    from sklearn.linear_model import LogisticRegression

    x_train, x_test = backend.image_features(train.images()), backend.image_features(test.images())
    clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x_train, train.labels)
    proba = np.zeros((len(test), len(test.label_set)))
    proba[:, clf.classes_] = clf.predict_proba(x_test)
    n = len(test)
    return make_predictions(
        image_id=test.ids, split=test.splits, dataset=[test.name] * n, label_set=[test.label_set_name] * n,
        y_true=test.labels, y_pred=proba.argmax(axis=1), scores=list(proba), model=[backend.spec.model] * n,
        backend=["clip_probe"] * n, variant=[f"probe;n_train={len(train)}"] * n)


def _score_model(backend, profile: Profile, sets: dict[str, ImageSet], train: ImageSet,
                 cache: ResponseCache, recorder: CostRecorder) -> list[pd.DataFrame]:
    spec, backend.cache, frames = backend.spec, cache, []
    for key, image_set in sets.items():
        with recorder.phase("infer", model=str(spec), items=len(image_set), dataset=image_set.name,
                            variant=_variant(key)) as handle:
            frames.append(backend.predict(image_set, image_set.label_set, None, _variant(key)))
            handle.extra["cache_hits"] = cache.hits
    if spec.backend == "clip":
        with recorder.phase("train", model=f"{spec} probe", items=len(train)):
            frames.append(fit_linear_probe(backend, train, sets["none"], profile.vlm.probe_c, profile.seed))
    return frames


def _device(profile: Profile) -> str:
    import torch

    if profile.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return profile.device


def _recorded_frames(model: str, profile: Profile, recorder: CostRecorder,
                     notes: list[str]) -> tuple[list[pd.DataFrame], list[pd.DataFrame]]:
    frames, sentiment = [], []
    embedder, threshold = lazy_embedder(), profile.vlm.embedding_threshold
    with recorder.phase("evaluate", model=f"recorded:{model}") as handle:
        sets = [rec.load_recorded_ferplus(model, ferplus_dir=profile.data.ferplus)]
        sets += [rec.load_recorded_evoked(d, model) for d in ("artphoto", "abstract")
                 if (rec.recorded_dir(model) / f"{d}_predictions.csv").is_file()]
        for rs in sets:
            pred = rec.recorded_predictions(rs, model, embedder=embedder, threshold=threshold)
            frames.append(pred)
            notes.append(f"recorded {model} {rs.dataset}: {len(pred)} answers scored, "
                         f"{rs.unmatched} not joinable to a labelled image")
            if "sentiment_gt" in rs.frame:
                sentiment.append(rec.sentiment_frame(rs, pred).assign(dataset=rs.dataset, model=model))
        handle.items = sum(len(f) for f in frames)
    return frames, sentiment


def run_zero_shot(profile: Profile, force: bool = False) -> ZeroShotResult:
    """Run (or read back) the VLM stage of ``profile``; see the module docstring."""
    store = vlm_store(profile)
    if store.is_complete() and not force:
        return ZeroShotResult(store, read_predictions(store.path("predictions.parquet")),
                              pd.read_csv(store.path("status.csv"), keep_default_na=False),
                              pd.read_parquet(store.path("sentiment.parquet")),
                              json.loads(store.path("notes.json").read_text()))
    if profile.vlm.torch_threads:
        import torch

        torch.set_num_threads(profile.vlm.torch_threads)  # a shared CPU: more threads thrash
    recorder = CostRecorder(store.dir, STAGE, profile.cost.sample_interval_s)
    notes: list[str] = []
    cache = ResponseCache(cache_path(profile.name))
    frames, sentiment, rows, sets, train = [], [], [], {}, None
    for spec in model_specs(profile.vlm):  # one model in memory at a time
        loaded: dict = {}
        with recorder.phase("preprocess", model=str(spec), step="load model") as handle:
            row = model_status(spec, profile.vlm, _device(profile), loaded)
            handle.extra["status"] = row["status"]
        rows.append(row)
        if row["status"] != AVAILABLE:
            continue
        if spec.backend == "recorded":
            got, sent = _recorded_frames(spec.model, profile, recorder, notes)
            frames += got
            sentiment += sent
            continue
        if not sets:  # images are loaded (and restored) only if some model needs them
            with recorder.phase("preprocess", step="load evaluation sets") as handle:
                sets, train = eval_sets(profile, notes)
                handle.items = sum(len(s) for s in sets.values())
        frames += _score_model(loaded.pop(str(spec)), profile, sets, train, cache, recorder)
    cache.close()
    status = pd.DataFrame(rows, columns=["backend", "model", "status", "reason", "note"])
    predictions = pd.concat(frames, ignore_index=True) if frames else read_predictions([])
    sentiment_frame = pd.concat(sentiment, ignore_index=True) if sentiment else pd.DataFrame(
        columns=["image_id", "y_true", "y_pred", "dataset", "model"])
    write_predictions(store.path("predictions.parquet"), predictions)
    write_text(store.path("status.csv"), status.to_csv(index=False))
    write_parquet(store.path("sentiment.parquet"), sentiment_frame)
    write_json(store.path("notes.json"), notes)
    store.write_meta(n_predictions=len(predictions), n_models=len(status))
    return ZeroShotResult(store, read_predictions(store.path("predictions.parquet")), status,
                          sentiment_frame, notes)
