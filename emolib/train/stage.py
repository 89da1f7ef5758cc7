"""The CNN stage of a profile: train every model and seed (cached, resumable), predict
PrivateTest on original and restored faces, write the predictions table.

Outputs live in ``results/<profile>/cnn/<hash of cnn + data config>/``: per model and seed a
checkpoint (every epoch), the best weights, the training result (history, weights status),
and ``predictions_<restoration hash>.parquet``. ``cnn_predictions_path(profile)`` names the
file for the current config; ``load_cnn_predictions(profile)`` reads it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from emolib.config import Profile, config_hash, to_dict
from emolib.cost import CostRecorder
from emolib.data import ImageSet, stratified_indices
from emolib.predictions import read_predictions, read_stage_predictions, write_predictions
from emolib.store import StageStore, write_json
from emolib.train.augment import to_gray_uint8
from emolib.train.evaluate import cnn_prediction_rows, variant_name, with_leakage_free_rows
from emolib.train.loop import TrainResult, TrainSettings, predict_proba, save_checkpoint, train_classifier
from emolib.train.models import WeightsStatus, build_model, count_parameters, in_channels_of, load_imagenet_weights

STAGE = "cnn"


@dataclass
class TrainedModel:
    """A trained network with its settings, training result and where its weights came from."""

    name: str
    seed: int
    model: nn.Module
    settings: TrainSettings
    result: TrainResult
    weights: WeightsStatus
    n_params: int


def cnn_store(profile: Profile) -> StageStore:
    return StageStore(profile, STAGE, profile.cnn, profile.data, profile.seed)


def select_device(profile: Profile) -> str:
    if profile.device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return profile.device


# training settings a model may override in ``cnn.per_model`` (type each value is cast to)
PER_MODEL_KEYS = {"epochs": int, "batch_size": int, "lr": float, "weight_decay": float,
                  "optimizer": str, "warmup_epochs": float, "label_smoothing": float,
                  "class_weights": bool, "erase_p": float, "augment": bool, "patience": int}


def per_model_overrides(profile: Profile, name: str) -> dict[str, Any]:
    """``cnn.per_model[name]`` checked against ``PER_MODEL_KEYS`` and cast to their types."""
    own = profile.cnn.per_model.get(name, {})
    unknown = sorted(set(own) - set(PER_MODEL_KEYS))
    if unknown:
        raise ValueError(f"cnn.per_model.{name}: unknown key(s) {unknown}; allowed: {sorted(PER_MODEL_KEYS)}")
    return {k: PER_MODEL_KEYS[k](v) for k, v in own.items()}


def settings_for(profile: Profile, name: str, seed: int) -> TrainSettings:
    """The TrainSettings of ``name`` and ``seed`` under ``profile.cnn`` (shared settings,
    then the model's own ``cnn.per_model`` overrides)."""
    cfg = profile.cnn
    shared = {"epochs": cfg.epochs, "batch_size": cfg.batch_size, "lr": cfg.lr,
              "weight_decay": cfg.weight_decay, "optimizer": cfg.optimizer,
              "warmup_epochs": cfg.warmup_epochs, "label_smoothing": cfg.label_smoothing,
              "class_weights": cfg.class_weights, "erase_p": cfg.erase_p, "patience": cfg.patience}
    return TrainSettings(
        **{**shared, **per_model_overrides(profile, name)}, seed=seed,
        bf16=name in cfg.bf16_models, input_size=cfg.input_size, in_channels=in_channels_of(cfg.stem),
        device=select_device(profile), config_key=config_hash(model_key(profile, name)))


def model_key(profile: Profile, name: str) -> dict:
    """What decides one model's training (its own settings, not the other models'), so that
    changing one model's width, precision or overrides does not retrain the others."""
    cfg = profile.cnn
    shared = {k: v for k, v in to_dict(cfg).items()
              if k not in ("models", "widths", "stem_strides", "bf16_models", "seeds",
                           "hard_threshold", "hard_folds", "per_model")}
    return {"model": name, "width": cfg.widths.get(name, 1.0), "stem_stride": cfg.stem_strides.get(name),
            "bf16": name in cfg.bf16_models, **shared, **per_model_overrides(profile, name),
            "data": to_dict(profile.data)}


def model_store(profile: Profile, name: str, seed: int) -> StageStore:
    """The folder of one model and seed: checkpoint, best weights, training result."""
    return StageStore(profile, "cnn_models", model_key(profile, name), seed)


def training_arrays(faces: ImageSet, profile: Profile, seed: int) -> dict[str, np.ndarray]:
    """uint8 (n, 48, 48) images and int64 labels of the training subset (``cnn.train_subset``)
    and the model-selection subset of PublicTest (``cnn.val_subset``), stratified."""
    out = {}
    for key, split, size in (("train", "train", profile.cnn.train_subset),
                             ("val", "public_test", profile.cnn.val_subset)):
        part = faces.split(split)
        if size is not None and size < len(part):
            part = part.subset(np.sort(stratified_indices(part.labels, size, seed)))
        out[f"{key}_x"] = to_gray_uint8(np.asarray(part.pixels))
        out[f"{key}_y"] = part.labels.astype(np.int64)
    return out


def build_for(profile: Profile, name: str, n_classes: int) -> tuple[nn.Module, WeightsStatus]:
    """A model of ``name`` for this profile, ImageNet-initialised when asked and possible."""
    cfg = profile.cnn
    model = build_model(name, n_classes, in_channels_of(cfg.stem), cfg.widths.get(name, 1.0),
                        cfg.stem_strides.get(name))
    if cfg.weights == "imagenet":
        return model, load_imagenet_weights(model, name)
    return model, WeightsStatus(name, "none", "scratch", "weights: none in the profile")


def _file(store: StageStore, kind: str, name: str, seed: int, ext: str) -> Path:
    return store.path(f"{kind}_{name}_s{seed}.{ext}")


def train_cnn(profile: Profile, faces: ImageSet, name: str, seed: int,
              arrays: dict[str, np.ndarray] | None = None, progress: bool = True) -> TrainedModel:
    """Train (or reload) one model and seed; resumes from the epoch checkpoint if present."""
    store, s = model_store(profile, name, seed), settings_for(profile, name, seed)
    torch.set_num_threads(profile.cnn.threads)
    torch.manual_seed(seed)
    model, weights = build_for(profile, name, len(faces.label_set))
    best, info = _file(store, "best", name, seed, "pt"), _file(store, "result", name, seed, "json")
    if best.is_file() and info.is_file():
        model.load_state_dict(torch.load(best, map_location="cpu", weights_only=True))
        saved = json.loads(info.read_text())
        return TrainedModel(name, seed, model.to(memory_format=torch.channels_last), s,
                            TrainResult(**saved["result"]), WeightsStatus(**saved["weights"]),
                            count_parameters(model))
    arrays = arrays or training_arrays(faces, profile, seed)
    recorder = CostRecorder(store.dir, STAGE)
    with recorder.phase("train", model=name, items=len(arrays["train_x"]) * s.epochs,
                        device=s.device, seed=seed, bf16=s.bf16) as handle:
        result = train_classifier(model, arrays["train_x"], arrays["train_y"], arrays["val_x"],
                                  arrays["val_y"], s, _file(store, "ckpt", name, seed, "pt"),
                                  progress=progress)
        handle.items = int(sum(len(arrays["train_x"]) for _ in result.history))
    save_checkpoint(best, model.state_dict())
    write_json(info, {"result": asdict(result), "weights": asdict(weights), "settings": asdict(s)})
    return TrainedModel(name, seed, model, s, result, weights, count_parameters(model))


def train_all(profile: Profile, faces: ImageSet, progress: bool = True) -> list[TrainedModel]:
    """Every model x seed of ``profile.cnn``, in config order."""
    trained = []
    for seed in profile.cnn.seeds:
        arrays = training_arrays(faces, profile, seed)
        trained += [train_cnn(profile, faces, name, seed, arrays, progress) for name in profile.cnn.models]
    return trained


def weights_status_table(trained: list[TrainedModel]) -> pd.DataFrame:
    """Per model and seed: weights asked for, weights used, why, parameters, best epoch."""
    return pd.DataFrame([{**asdict(t.weights), "seed": t.seed, "params_m": t.n_params / 1e6,
                          "bf16": t.settings.bf16, "best_epoch": t.result.best_epoch,
                          "epochs_run": len(t.result.history)} for t in trained])


def learning_curves(trained: list[TrainedModel]) -> pd.DataFrame:
    """One row per model, seed and epoch: the training history."""
    return pd.DataFrame([{"model": t.name, "seed": t.seed, **row}
                         for t in trained for row in t.result.history])


def predictions_name(profile: Profile) -> str:
    return f"predictions_{config_hash(profile.restoration)}.parquet"


def cnn_predictions_path(profile: Profile) -> Path:
    """Where the CNN predictions table of this profile's current config is (or will be)."""
    return cnn_store(profile).path(predictions_name(profile))


def load_cnn_predictions(profile: Profile) -> pd.DataFrame:
    """The CNN predictions table; raises FileNotFoundError naming notebook 03 if not run."""
    return read_stage_predictions(cnn_predictions_path(profile), "03_cnn_training.ipynb", profile.name)


def predict_variants(profile: Profile, trained: list[TrainedModel], test_sets: dict[str, ImageSet],
                     keep_ids: set[str] | None) -> pd.DataFrame:
    """Predictions of every trained model on every test set (``{"none": PrivateTest,
    "<backend>": restored PrivateTest}``), with leakage-free rows; written to the store."""
    store, path = cnn_store(profile), cnn_predictions_path(profile)
    # a retrained model (same config, new weights) must not be served stale predictions
    fingerprint = {f"{t.name}_s{t.seed}": [t.result.best_epoch, t.result.best_val_acc] for t in trained}
    if path.is_file() and store.read_meta().get("trained") == fingerprint:
        cached = read_predictions(path)
        done = {v.split(";")[0].removeprefix("restoration=") for v in cached["variant"]}
        if done == set(test_sets):
            return cached
    recorder = CostRecorder(store.dir, STAGE)
    frames = []
    for t in trained:
        for restoration, images in test_sets.items():
            gray = to_gray_uint8(np.asarray(images.pixels))
            with recorder.phase("infer", model=t.name, items=len(images), device=t.settings.device,
                                restoration=restoration, seed=t.seed):
                t0 = time.perf_counter()
                proba = predict_proba(t.model, gray, t.settings)
                seconds = time.perf_counter() - t0
            rows = cnn_prediction_rows(images, proba, t.name,
                                       variant_name(restoration, "standard", t.seed), seconds)
            frames.append(with_leakage_free_rows(rows, keep_ids))
    predictions = pd.concat(frames, ignore_index=True)
    write_predictions(cnn_predictions_path(profile), predictions)
    store.write_meta(models=[t.name for t in trained], trained=fingerprint,
                     variants=sorted(set(predictions["variant"])))
    return predictions


def load_test_sets(profile: Profile, faces: ImageSet) -> tuple[dict[str, ImageSet], pd.DataFrame]:
    """PrivateTest as it is (``"none"``) and restored with ``restoration.selected`` (resized
    back to the model's input size at prediction time). A restoration that cannot be had is
    left out and its reason is in the returned status table (variant, available, reason)."""
    private = faces.split("private_test")
    sets, backend = {"none": private}, profile.restoration.selected
    status = [{"variant": "none", "available": True, "n": len(private), "reason": "original faces"}]
    if backend == "none":
        return sets, pd.DataFrame(status)
    try:
        from emolib import restore

        subset = restore.restoration_subset(private, profile) if hasattr(
            restore, "restoration_subset") else private
        sets[backend] = restore.restore_imageset(subset, backend, profile)
        status.append({"variant": backend, "available": True, "n": len(sets[backend]),
                       "reason": f"emolib.restore.restore_imageset({backend!r})"})
    except Exception as err:  # missing module, missing weights, failed backend: reported
        status.append({"variant": backend, "available": False, "n": 0,
                       "reason": f"{type(err).__name__}: {str(err)[:200]}"})
    return sets, pd.DataFrame(status)


def leakage_free_ids(profile: Profile, faces: ImageSet) -> set[str]:
    """Ids of PrivateTest images with no pixel-identical (or, with ``data.near_duplicates``,
    pHash-near) copy in Training, from the data audit."""
    from emolib.data.audit import leakage_free_mask

    threshold = profile.data.phash_threshold if profile.data.near_duplicates else None
    keep = leakage_free_mask(faces, threshold) & (faces.splits == "private_test")
    return set(faces.ids[keep].tolist())


def cost_frame(profile: Profile) -> pd.DataFrame:
    """The stage's cost records (one row per timed phase) as a table."""
    from emolib.cost import read_cost_records

    paths = [cnn_store(profile).path("cost.jsonl")] + [
        model_store(profile, name, seed).path("cost.jsonl")
        for seed in profile.cnn.seeds for name in profile.cnn.models]
    return pd.DataFrame([r for p in paths for r in read_cost_records(p)])


def accuracy_per_cpu_minute(summary: pd.DataFrame, costs: pd.DataFrame) -> pd.DataFrame:
    """Per model: PrivateTest accuracy (original, standard split), training wall and CPU
    minutes (last successful train phase) and accuracy points per CPU minute."""
    ours = summary[(summary["restoration"] == "none") & (summary["eval_split"] == "standard")]
    train = costs[(costs["phase"] == "train") & (costs["status"] == "ok")].groupby("model").last()
    rows = []
    for model, acc in ours.groupby("model", sort=False)["accuracy"].mean().items():
        wall = train["wall_s"].get(model, float("nan")) / 60
        cpu = train["cpu_s"].get(model, float("nan")) / 60
        rows.append({"model": model, "accuracy": acc, "train_wall_min": wall, "train_cpu_min": cpu,
                     "train_images_per_s": train["items_per_s"].get(model, float("nan")),
                     "acc_points_per_cpu_min": 100 * acc / cpu if cpu else float("nan")})
    return pd.DataFrame(rows)
