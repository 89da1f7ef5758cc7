"""How fast this machine trains the profile's CNNs, and what that makes of the CNN stage.

``training_rate`` times a few real training steps (augmentation, forward, backward, AdamW
step: what ``emolib.train.loop`` does per batch) of one network at one input size, thread
count and precision. ``estimate_training`` probes every (model, input size, thread count)
the stage will train at, adds up the epochs each job trains in the workers and after them
(``cnn.alone_share``), and packs the jobs onto the workers as ``train_all`` does: a rough
time, labelled as an estimate wherever it is shown (``emolib plan``).
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from emolib.config import Profile
from emolib.machine import MachinePlan
from emolib.train.augment import augment_batch
from emolib.train.loop import TrainSettings, autocast_for, make_optimizer, size_of_epoch
from emolib.train.stage import build_network, settings_for

FER_TRAIN_IMAGES = 28_709  # FER-2013 Training: what cnn.train_subset null trains on


def training_images(profile: Profile) -> int:
    """How many faces one epoch trains on: ``cnn.train_subset``, else ``data.subsample.train``,
    else all of Training (synthetic faces: ``data.synthetic_per_class`` per class)."""
    if profile.data.source == "synthetic":
        full = profile.data.synthetic_per_class * 7
    else:
        full = profile.data.subsample.train or FER_TRAIN_IMAGES
    return min(full, profile.cnn.train_subset or full)


def training_rate(model: torch.nn.Module, settings: TrainSettings, steps: int = 3, warmup: int = 1) -> float:
    """Training images/s of ``model`` under ``settings`` (its batch size, input size, precision,
    device) over ``steps`` batches of random uint8 faces after ``warmup`` batches."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (settings.batch_size, 48, 48), dtype=torch.uint8, generator=gen)
    y = torch.randint(0, 7, (settings.batch_size,), generator=gen)
    model.to(settings.device).to(memory_format=torch.channels_last).train()
    optimizer = make_optimizer(model, settings)
    t0 = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            t0 = time.perf_counter()
        inputs = augment_batch(x, settings.input_size, settings.in_channels, gen, settings.erase_p)
        with autocast_for(settings):
            loss = F.cross_entropy(model(inputs.to(settings.device)).float(), y.to(settings.device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    if settings.device.startswith("cuda"):
        torch.cuda.synchronize()
    return steps * settings.batch_size / (time.perf_counter() - t0)


def epoch_plan(profile: Profile, plan: MachinePlan, name: str) -> list[tuple[int, int, str]]:
    """(input size, torch threads, ``worker`` or ``alone``) of each epoch of ``name``: its
    worker epochs at the workers' threads, its ``alone_share`` epochs at ``cnn_threads`` after
    the workers; without workers every epoch trains in the notebook's process, in turn."""
    settings = settings_for(profile, name, profile.cnn.seeds[0], plan.machine)
    if plan.cnn_workers == 1:
        return [(size_of_epoch(settings, e), plan.cnn_threads, "worker") for e in range(settings.epochs)]
    alone = profile.cnn.alone_epochs(name)
    return [(size_of_epoch(settings, e), plan.worker_threads, "worker") if e < settings.epochs - alone
            else (size_of_epoch(settings, e), plan.cnn_threads, "alone") for e in range(settings.epochs)]


def estimate_training(profile: Profile, plan: MachinePlan, steps: int = 3) -> pd.DataFrame:
    """Per model and seed: images trained, the measured rate at each (size, threads) it trains
    at, seconds in the workers and after them, and ``wall_s``: when the stage's training ends
    (jobs packed onto the workers in config order, then the epochs after the workers in turn).
    Every model is probed on this machine; a GPU plan for a GPU it lacks is not estimated."""
    if plan.machine.assumed:
        raise ValueError(f"no estimate: {plan.machine.assumed}")
    images = training_images(profile)
    rates: dict[tuple[str, int, int], float] = {}
    rows = []
    threads_before = torch.get_num_threads()
    try:
        for seed in profile.cnn.seeds:
            for name in profile.cnn.models:
                row = {"model": name, "seed": seed, "images": 0, "worker_s": 0.0, "alone_s": 0.0, "rates": ""}
                epochs = epoch_plan(profile, plan, name)
                for size, threads, phase in epochs:
                    key = (name, size, threads)
                    if key not in rates:
                        torch.set_num_threads(threads)
                        settings = replace(settings_for(profile, name, seed, plan.machine), input_size=size)
                        rates[key] = training_rate(build_network(profile, name, 7), settings, steps)
                    row[f"{phase}_s"] += images / rates[key]
                    row["images"] += images
                row["rates"] = ", ".join(f"{s} px x{t}: {rates[(name, s, t)]:.0f} img/s"
                                         for s, t, _ in dict.fromkeys(epochs))
                rows.append(row)
    finally:
        torch.set_num_threads(threads_before)
    table = pd.DataFrame(rows)
    table["wall_s"] = packed_wall(table["worker_s"].to_numpy(), table["alone_s"].to_numpy(), plan.cnn_workers)
    return table


def packed_wall(worker_s: np.ndarray, alone_s: np.ndarray, workers: int) -> float:
    """When training ends: jobs go in order to the first free of ``workers`` workers (as a
    process pool hands them out), then the epochs after the workers run one job at a time."""
    free = np.zeros(max(1, workers))
    for seconds in worker_s:
        free[free.argmin()] += seconds
    return float(free.max() + alone_s.sum())
