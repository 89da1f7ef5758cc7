"""The CNN stage of a profile (notebook 03): train every model and seed (cached, resumable),
predict the evaluation subsets, write the predictions table.

Where things go is ``emolib.catalog``'s: per model and seed ``cnn_model_store`` holds the
epoch checkpoint, the best weights, the training result and the training cost records;
``cnn_store`` holds the predictions table (``catalog.predictions_path(profile, "cnn")``).
Every model predicts ``fer_private`` (all of PrivateTest, original faces) and each restored
variant of ``fer_eval_<n>`` that notebook 02 made, so restored and original faces are scored
on the same ids. Leakage-free and hard scores select ids from these rows (``catalog.on_subset``).

Training cost survives a resume: every attempt records its own ``train`` phase (tagged with
the epoch it started from) with the images it trained, and a killed attempt is counted up
to its last heartbeat (``emolib.recorder``).
"""

from __future__ import annotations

import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from emolib import catalog
from emolib.config import Profile, config_hash
from emolib.data import ImageSet, load_faces, stratified_indices
from emolib.machine import Machine, MachinePlan, plan_machine
from emolib.predictions import NO_PROMPT, image_columns, make_predictions, read_predictions, write_predictions
from emolib.recorder import CostRecorder
from emolib.store import StageStore, write_json
from emolib.train import ensemble
from emolib.train.augment import to_gray_uint8
from emolib.train.loop import (
    TrainResult,
    TrainSettings,
    checkpoint_epoch,
    predict_proba,
    save_checkpoint,
    saved_result,
    train_classifier,
)
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


def settings_for(profile: Profile, name: str, seed: int, machine: Machine | None = None) -> TrainSettings:
    """The TrainSettings of ``name`` and ``seed`` under ``profile.cnn`` (shared settings,
    then the model's own ``cnn.per_model`` overrides) with the device and precision decided
    for ``machine`` (default: this one; ``emolib.machine.plan_machine``)."""
    cfg, plan = profile.cnn, plan_machine(profile, machine)
    shared = {"epochs": cfg.epochs, "batch_size": cfg.batch_size, "lr": cfg.lr,
              "weight_decay": cfg.weight_decay, "optimizer": cfg.optimizer,
              "warmup_epochs": cfg.warmup_epochs, "label_smoothing": cfg.label_smoothing,
              "class_weights": cfg.class_weights, "erase_p": cfg.erase_p, "patience": cfg.patience}
    return TrainSettings(
        **{**shared, **cfg.model(name).training_overrides()}, seed=seed, precision=plan.precision[name],
        input_size=cfg.input_size, in_channels=in_channels_of(cfg.stem), device=plan.device,
        config_key=config_hash(catalog.cnn_model_key(profile, name, machine)))


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


def build_network(profile: Profile, name: str, n_classes: int) -> nn.Module:
    """The network ``name`` as this profile shapes it (width, stem, dropout), random weights."""
    cfg, own = profile.cnn, profile.cnn.model(name)
    return build_model(name, n_classes, in_channels_of(cfg.stem), cfg.width_of(name), own.stem_stride,
                       own.dropout, own.stochastic_depth)


def build_for(profile: Profile, name: str, n_classes: int) -> tuple[nn.Module, WeightsStatus]:
    """A model of ``name`` for this profile, ImageNet-initialised when asked and possible."""
    model = build_network(profile, name, n_classes)
    if profile.cnn.weights == "imagenet":
        return model, load_imagenet_weights(model, name, profile.weights)
    return model, WeightsStatus(name, "none", "scratch", "weights: none in the profile")


def _file(store: StageStore, kind: str, name: str, seed: int, ext: str) -> Path:
    return store.path(f"{kind}_{name}_s{seed}.{ext}")


def train_cnn(profile: Profile, faces: ImageSet, name: str, seed: int,
              arrays: dict[str, np.ndarray] | None = None, progress: bool | None = None,
              stop_after_epoch: int | None = None) -> TrainedModel | None:
    """Train (or reload) one model and seed; resumes from the epoch checkpoint if present.
    Each attempt records a ``train`` phase tagged ``start_epoch`` whose items are the images
    trained in that attempt only (``heartbeat`` after every epoch). ``stop_after_epoch``: leave
    the run checkpointed after that epoch and return None (a later call finishes it)."""
    torch.set_num_threads(plan_machine(profile).cnn_threads)
    torch.manual_seed(seed)
    # built first: ImageNet weights fetched now (weights: auto) name the store as what trains
    model, weights = build_for(profile, name, len(faces.label_set))
    store, s = catalog.cnn_model_store(profile, name, seed), settings_for(profile, name, seed)
    best, info = _file(store, "best", name, seed, "pt"), _file(store, "result", name, seed, "json")
    if best.is_file() and info.is_file():
        model.load_state_dict(torch.load(best, map_location="cpu", weights_only=True))
        saved = json.loads(info.read_text())
        return TrainedModel(name, seed, model.to(memory_format=torch.channels_last), s,
                            saved_result(saved["result"]), WeightsStatus(**saved["weights"]),
                            count_parameters(model))
    checkpoint = _file(store, "ckpt", name, seed, "pt")
    if stop_after_epoch is not None and checkpoint_epoch(checkpoint) >= stop_after_epoch:
        return None  # a resumed run already past that epoch: nothing to train in this call
    arrays = arrays or training_arrays(faces, profile, seed)
    recorder = CostRecorder(store.dir, STAGE, profile.cost.sample_interval_s)
    n_train = len(arrays["train_x"])
    with recorder.phase("train", model=name, items=0, device=s.device, seed=seed, precision=s.precision,
                        start_epoch=checkpoint_epoch(checkpoint)) as handle:

        def count_epoch(row: dict) -> None:
            handle.items += n_train
            handle.beat()

        result = train_classifier(model, arrays["train_x"], arrays["train_y"], arrays["val_x"],
                                  arrays["val_y"], s, checkpoint, stop_after_epoch=stop_after_epoch,
                                  progress=progress, on_epoch=count_epoch)
    if not result.finished:
        return None
    save_checkpoint(best, model.state_dict())
    write_json(info, {"result": asdict(result), "weights": asdict(weights), "settings": asdict(s)})
    return TrainedModel(name, seed, model, s, result, weights, count_parameters(model))


def train_all(profile: Profile, faces: ImageSet, progress: bool | None = None) -> list[TrainedModel]:
    """Every model x seed of ``profile.cnn``, in config order. Where ``emolib.machine`` decided
    on workers (a CPU: ``cnn.parallel``, auto = one per job up to one per thread), the models
    not yet trained train at once in that many worker processes (each with its share of the
    threads, in config order): on 2 cores, two 1-thread runs do more work per second than one
    2-thread run. A model's last ``cnn.alone_share`` of its epochs then finish here with all
    threads. Results equal the serial run's up to float rounding (a different thread count
    sums in a different order). On a GPU one process trains every model in turn."""
    jobs = [(name, seed) for seed in profile.cnn.seeds for name in profile.cnn.models]
    plan = plan_machine(profile)
    if plan.cnn_workers > 1:
        train_in_workers(profile, [job for job in jobs if not is_trained(profile, *job)], plan)
    trained, arrays = [], {}
    for name, seed in jobs:
        if not is_trained(profile, name, seed) and seed not in arrays:
            arrays[seed] = training_arrays(faces, profile, seed)
        trained.append(train_cnn(profile, faces, name, seed, arrays.get(seed), progress))
    return trained


def is_trained(profile: Profile, name: str, seed: int) -> bool:
    """The best weights and the training result of ``name`` and ``seed`` are stored."""
    store = catalog.cnn_model_store(profile, name, seed)
    return _file(store, "best", name, seed, "pt").is_file() and _file(store, "result", name, seed, "json").is_file()


def train_in_workers(profile: Profile, jobs: list[tuple[str, int]], plan: MachinePlan) -> None:
    """Train ``jobs`` ((model, seed) pairs) in ``plan.cnn_workers`` spawned processes with
    ``plan.worker_threads`` threads each; a failure in any of them is raised here (the
    others' finished epochs stay checkpointed)."""
    if not jobs:
        return
    workers = min(plan.cnn_workers, len(jobs))
    per_worker = replace(profile, cnn=replace(profile.cnn, threads=plan.worker_threads, parallel=1))
    context = multiprocessing.get_context("spawn")  # fork is unsafe once torch has started threads
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = [pool.submit(_train_job, per_worker, name, seed) for name, seed in jobs]
        for future in futures:
            future.result()


def _train_job(profile: Profile, name: str, seed: int) -> None:
    """One worker's job: load the faces (decoded-array cache) and train ``name`` at ``seed``,
    all but its last ``cnn.alone_share`` of epochs (``train_all`` trains those with every thread)."""
    alone = profile.cnn.alone_epochs(name)
    stop = profile.cnn.epochs_of(name) - alone if alone else None
    train_cnn(profile, load_faces(profile), name, seed, progress=False, stop_after_epoch=stop)


DISPLAY_NAMES = {"vgg19": "VGG19", "vgg19_bn": "VGG19-BN", "resnet50": "ResNet-50",
                 "efficientnet_b0": "EfficientNet-B0"}
WIDTH_WORDS = {0.25: "quarter width", 0.5: "half width", 0.75: "three-quarter width"}


def describe_model(profile: Profile, name: str, machine: Machine | None = None) -> str:
    """The network as this profile trains it on ``machine`` (default: this one), in words, e.g.
    "ResNet-50, half width, 48 px gray, 5 epochs, fp32 on this CPU": what a reader must see
    beside its score when it is not the published network trained the published way."""
    cfg, s = profile.cnn, settings_for(profile, name, profile.cnn.seeds[0], machine)
    width, stride = cfg.width_of(name), cfg.model(name).stem_stride
    parts = [DISPLAY_NAMES[name]]
    if width != 1.0:
        parts.append(WIDTH_WORDS.get(width, f"{width:g}x width"))
    if stride is not None:
        parts.append(f"stem stride {stride}")
    sizes = f"{min(s.epoch_sizes)}-{cfg.input_size} px" if s.epoch_sizes else f"{cfg.input_size} px"
    parts += [f"{sizes} {cfg.stem}", f"{s.epochs} epoch{'' if s.epochs == 1 else 's'}",
              plan_machine(profile, machine).precision_words(name)]
    return ", ".join(parts)


def weights_status_table(trained: list[TrainedModel]) -> pd.DataFrame:
    """Per model and seed: weights asked for, weights used, why, parameters, best epoch."""
    return pd.DataFrame([{**asdict(t.weights), "seed": t.seed, "params_m": t.n_params / 1e6,
                          "precision": t.settings.precision, "device": t.settings.device,
                          "best_epoch": t.result.best_epoch,
                          "epochs_run": len(t.result.history)} for t in trained])


def learning_curves(trained: list[TrainedModel]) -> pd.DataFrame:
    """One row per model, seed and epoch: the training history."""
    return pd.DataFrame([{"model": t.name, "seed": t.seed, **row}
                         for t in trained for row in t.result.history])


def test_sets(profile: Profile, faces: ImageSet, restored: dict[str, ImageSet]) -> list[ImageSet]:
    """What every CNN predicts: ``fer_private`` (original faces) and each restored variant of
    the evaluation subset (``restored``: backend -> ImageSet from ``emolib.restore``)."""
    private = catalog.select_subset(faces, profile, "fer_private")
    eval_name = catalog.fer_eval_name(profile)
    for backend, images in restored.items():
        if images.subset_name != eval_name:
            raise ValueError(f"restored {backend} faces are subset {images.subset_name!r}, not {eval_name!r}: "
                             "compare restored and original faces on the same ids")
    return [private, *restored.values()]


def trained_fingerprint(trained: list[TrainedModel]) -> dict:
    """What identifies the trained weights (a retrained model must not reuse old predictions)."""
    return {f"{t.name}_s{t.seed}": [t.result.best_epoch, t.result.best_val_acc] for t in trained}


def predict_all(profile: Profile, trained: list[TrainedModel], sets: list[ImageSet]) -> pd.DataFrame:
    """Predictions of every trained model on every set of ``test_sets`` (softmax scores,
    latency per image) and of their soft-vote ensemble (``emolib.train.ensemble``), written to
    ``catalog.predictions_path(profile, "cnn")``; read back when the same weights already
    predicted the same sets."""
    store, path = catalog.cnn_store(profile), catalog.predictions_path(profile, "cnn")
    wanted = sorted(f"{s.variant}/{s.subset_name}" for s in sets)
    names = sorted({t.name for t in trained})
    voters = names if len(names) > 1 else []  # ensemble.soft_vote needs two networks
    meta = store.read_meta()
    if (path.is_file() and meta.get("trained") == trained_fingerprint(trained) and meta.get("sets") == wanted
            and meta.get("ensemble") == voters):
        return read_predictions(path)
    recorder = CostRecorder(store.dir, STAGE, profile.cost.sample_interval_s)
    frames = []
    for t in trained:
        for images in sets:
            with recorder.phase("infer", model=t.name, items=len(images), device=t.settings.device,
                                restoration=images.variant, subset=images.subset_name, seed=t.seed):
                t0 = time.perf_counter()
                proba = predict_proba(t.model, to_gray_uint8(np.asarray(images.pixels)), t.settings,
                                      flip=profile.cnn.test_time_flip)
                wall_s = time.perf_counter() - t0
            frames.append(make_predictions(
                **image_columns(images), y_pred=proba.argmax(1).astype(np.int64),
                scores=[row.astype(float).tolist() for row in proba], model=t.name, backend="cnn",
                prompt=NO_PROMPT, seed=t.seed, latency_s=np.full(len(images), wall_s / max(len(images), 1))))
    predictions = pd.concat(frames, ignore_index=True)
    predictions = pd.concat([predictions, ensemble.soft_vote(predictions)], ignore_index=True)
    write_predictions(path, predictions)
    store.write_meta(models=[t.name for t in trained], trained=trained_fingerprint(trained), sets=wanted,
                     ensemble=voters)
    return predictions
