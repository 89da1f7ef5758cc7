"""The training loop: in-memory uint8 batches, AdamW/SGD with warm-up + cosine, label
smoothing, optional class weights, early stopping on a validation split, the precision
``emolib.machine`` decided (fp32; bf16 autocast; fp16 autocast with a gradient scaler on a GPU
without bf16), an atomic checkpoint after every epoch and an exact resume.

Every random draw of epoch ``e`` (shuffle, augmentation, dropout) comes from the seed
``seed * 10_007 + e``, so a run resumed from the checkpoint of epoch ``e - 1`` continues
exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emolib.quiet import progress_bar
from emolib.store import write_bytes
from emolib.train.augment import augment_batch, prepare_batch


class CheckpointMismatch(RuntimeError):
    """A checkpoint written for another configuration; the message says which and what to do."""


@dataclass(frozen=True)
class TrainSettings:
    """Everything that decides a training run's result (its hash guards the checkpoint)."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 5e-4
    optimizer: str = "adamw"
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.1
    class_weights: bool = False
    patience: int = 5
    seed: int = 0
    precision: str = "fp32"  # fp32 | bf16 | fp16: as emolib.machine.plan_machine decided
    input_size: int = 48
    epoch_sizes: tuple[int, ...] = ()  # progressive resizing: input size of each epoch
    in_channels: int = 1
    erase_p: float = 0.5
    augment: bool = True  # False: no shift/flip/rotation/erasing (tests, ablations)
    device: str = "cpu"
    config_key: str = ""  # hash of the model/data config this run belongs to


@dataclass
class TrainResult:
    """``history``: one dict per finished epoch (epoch, train_loss, train_acc, val_loss,
    val_acc, lr, wall_s, images_per_s); the best epoch is the one with the highest val_acc."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_val_acc: float = -1.0
    stopped_early: bool = False
    resumed_from: int = 0
    finished: bool = False


LEGACY_HISTORY_NAMES = {"seconds": "wall_s"}  # results written before 2026-12-08 name an epoch's time "seconds"


def saved_result(saved: dict[str, Any]) -> TrainResult:
    """A ``TrainResult`` from its stored dict (a result file or a checkpoint), with the history
    columns named as today."""
    history = [{LEGACY_HISTORY_NAMES.get(k, k): v for k, v in row.items()} for row in saved["history"]]
    return TrainResult(**{**saved, "history": history})


def class_weight_vector(labels: np.ndarray, n_classes: int) -> torch.Tensor:
    """(n_classes,) inverse-frequency weights with mean 1 over present classes."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    weights = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / n_classes, 0.0)
    return torch.tensor(weights / weights[counts > 0].mean(), dtype=torch.float32)


def lr_at(step: int, total_steps: int, warmup_steps: int, base_lr: float) -> float:
    """Linear warm-up to ``base_lr`` over ``warmup_steps``, then cosine decay to 0."""
    if step < warmup_steps:
        return base_lr * (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return base_lr * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def make_optimizer(model: nn.Module, s: TrainSettings) -> torch.optim.Optimizer:
    """AdamW, or SGD with Nesterov momentum 0.9; no weight decay on norms and biases."""
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": s.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    if s.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=s.lr, momentum=0.9, nesterov=True)
    return torch.optim.AdamW(groups, lr=s.lr)


def autocast_for(s: TrainSettings) -> torch.autocast:
    """Autocast to ``s.precision`` on ``s.device`` (disabled for fp32)."""
    device_type = s.device.partition(":")[0]
    if s.precision == "fp32":
        return torch.autocast(device_type, enabled=False)
    return torch.autocast(device_type, dtype=torch.bfloat16 if s.precision == "bf16" else torch.float16)


def size_of_epoch(s: TrainSettings, epoch: int) -> int:
    """The input size epoch ``epoch`` (0-based) trains at: ``s.epoch_sizes[epoch]`` under
    progressive resizing (small images first, as fast.ai and EfficientNetV2 train), else
    ``s.input_size``. Validation and prediction always use ``s.input_size``."""
    return s.epoch_sizes[epoch] if s.epoch_sizes else s.input_size


def _epoch_seed(s: TrainSettings, epoch: int) -> int:
    return s.seed * 10_007 + epoch


def run_epoch(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor,
              s: TrainSettings, epoch: int, loss_weights: torch.Tensor | None,
              progress: bool | None = None) -> dict[str, float]:
    """One pass over (x uint8 (n, H, W), y int64 (n,)); returns train loss and accuracy."""
    gen = torch.Generator().manual_seed(_epoch_seed(s, epoch))
    torch.manual_seed(_epoch_seed(s, epoch))  # dropout and stochastic depth
    order = torch.randperm(len(x), generator=gen)
    steps_per_epoch = math.ceil(len(x) / s.batch_size)
    total, warm = steps_per_epoch * s.epochs, max(1, round(steps_per_epoch * s.warmup_epochs))
    size = size_of_epoch(s, epoch)
    model.train()
    loss_sum, correct, seen = 0.0, 0, 0
    bar = progress_bar(range(steps_per_epoch), progress, desc=f"epoch {epoch + 1}/{s.epochs}",
                       leave=False)
    scaler = torch.amp.GradScaler(s.device.partition(":")[0], enabled=s.precision == "fp16")  # fp16 gradients underflow
    for step in bar:
        idx = order[step * s.batch_size:(step + 1) * s.batch_size]
        inputs = (augment_batch(x[idx], size, s.in_channels, gen, s.erase_p) if s.augment
                  else prepare_batch(x[idx], size, s.in_channels)).to(s.device)
        target = y[idx].to(s.device)
        for group in optimizer.param_groups:
            group["lr"] = lr_at(epoch * steps_per_epoch + step, total, warm, s.lr)
        with autocast_for(s):
            logits = model(inputs)
        loss = F.cross_entropy(logits.float(), target, weight=loss_weights,
                               label_smoothing=s.label_smoothing)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        loss_sum += loss.item() * len(idx)
        correct += (logits.argmax(1) == target).sum().item()
        seen += len(idx)
        bar.set_postfix(loss=f"{loss_sum / seen:.3f}", acc=f"{correct / seen:.3f}")
    return {"train_loss": loss_sum / seen, "train_acc": correct / seen,
            "lr": optimizer.param_groups[0]["lr"]}


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, s: TrainSettings,
                   batch_size: int = 256) -> torch.Tensor:
    """(n, k) float32 logits of uint8 images (n, H, W), resized to the model's input size."""
    model.eval()
    out = []
    for start in range(0, len(images), batch_size):
        batch = prepare_batch(images[start:start + batch_size], s.input_size, s.in_channels)
        with autocast_for(s):
            out.append(model(batch.to(s.device)).float().cpu())
    return torch.cat(out) if out else torch.empty(0, 0)


def predict_proba(model: nn.Module, images: np.ndarray | torch.Tensor, s: TrainSettings,
                  batch_size: int = 256, flip: bool = False) -> np.ndarray:
    """(n, k) float32 softmax probabilities of uint8 gray images (n, H, W); ``flip``: the mean
    of the probabilities of each image and its mirror image (horizontal-flip test-time
    augmentation, as the models were trained with random flips)."""
    images = torch.as_tensor(np.asarray(images))
    proba = torch.softmax(predict_logits(model, images, s, batch_size), dim=1)
    if flip:
        proba = (proba + torch.softmax(predict_logits(model, images.flip(-1), s, batch_size), dim=1)) / 2
    return proba.numpy()


def penultimate_features(model: nn.Module, images: np.ndarray, s: TrainSettings, batch_size: int = 256) -> np.ndarray:
    """(n, d) float32 inputs of the model's last Linear layer (its image features) for uint8
    gray images (n, H, W): what a probe on a trained network's representation reads."""
    head = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    captured: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda _m, args, _out: captured.append(args[0].detach().float().cpu()))
    try:
        predict_logits(model, torch.as_tensor(np.asarray(images)), s, batch_size)
    finally:
        hook.remove()
    return torch.cat(captured).numpy() if captured else np.empty((0, head.in_features), np.float32)


def validate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, s: TrainSettings) -> dict[str, float]:
    logits = predict_logits(model, x, s)
    return {"val_loss": F.cross_entropy(logits, y).item(),
            "val_acc": (logits.argmax(1) == y).float().mean().item()}


# ----------------------------------------------------------------------------- checkpoints
def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    """Write a checkpoint atomically (temporary file, then rename)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return write_bytes(path, buffer.getvalue())


def load_checkpoint(path: Path, config_key: str) -> dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; refuse one written for another config."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("config_key") != config_key:
        raise CheckpointMismatch(
            f"checkpoint {path} was written for config {state.get('config_key')!r}, this run is "
            f"{config_key!r}. Delete the file (or use the stage folder of that config) to train anew."
        )
    return state


def _copy_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def train_classifier(model: nn.Module, train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray,
                     val_y: np.ndarray, s: TrainSettings, checkpoint: Path | None = None,
                     stop_after_epoch: int | None = None, progress: bool | None = None,
                     on_epoch: Callable[[dict[str, float]], None] | None = None) -> TrainResult:
    """Train ``model`` in place and leave it with its best (highest val_acc) weights.

    train_x/val_x: uint8 (n, H, W); train_y/val_y: int64 (n,). With ``checkpoint``, resume
    from it when it exists and save it after every epoch. ``stop_after_epoch`` ends the run
    after that many epochs as an interruption would (the checkpoint is kept). ``on_epoch(row)``
    is called after each epoch trained in this call (the cost recorder counts images with it).
    """
    model.to(s.device).to(memory_format=torch.channels_last)
    x, y = torch.as_tensor(train_x), torch.as_tensor(train_y, dtype=torch.int64)
    vx, vy = torch.as_tensor(val_x), torch.as_tensor(val_y, dtype=torch.int64)
    n_classes = model_output_size(model)
    weights = class_weight_vector(train_y, n_classes).to(s.device) if s.class_weights else None
    optimizer = make_optimizer(model, s)
    result, best_state, bad_epochs, start = TrainResult(), _copy_state(model), 0, 0
    if checkpoint is not None and Path(checkpoint).is_file():
        state = load_checkpoint(checkpoint, s.config_key)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        best_state, bad_epochs, start = state["best_state"], state["bad_epochs"], state["epoch"]
        result = replace(saved_result(state["result"]), resumed_from=state["epoch"])
    for epoch in range(start, s.epochs):
        if result.finished or (stop_after_epoch is not None and epoch >= stop_after_epoch):
            break
        t0 = time.perf_counter()
        row = {"epoch": epoch + 1, **run_epoch(model, optimizer, x, y, s, epoch, weights, progress)}
        row.update(validate(model, vx, vy, s))
        row["wall_s"] = time.perf_counter() - t0
        row["images_per_s"] = len(x) / row["wall_s"]
        result.history.append(row)
        if on_epoch is not None:
            on_epoch(row)
        if row["val_acc"] > result.best_val_acc:
            result.best_val_acc, result.best_epoch = row["val_acc"], epoch + 1
            best_state, bad_epochs = _copy_state(model), 0
        else:
            bad_epochs += 1
        result.stopped_early = bad_epochs >= s.patience
        result.finished = result.stopped_early or epoch + 1 == s.epochs
        if checkpoint is not None:
            save_checkpoint(checkpoint, {
                "config_key": s.config_key, "epoch": epoch + 1, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "best_state": best_state,
                "bad_epochs": bad_epochs, "result": asdict(result), "settings": asdict(s)})
    model.load_state_dict(best_state)
    return result


def checkpoint_epoch(checkpoint: Path) -> int:
    """The epochs a checkpoint has finished (0 when there is none): where a resume starts."""
    if not Path(checkpoint).is_file():
        return 0
    return int(torch.load(checkpoint, map_location="cpu", weights_only=True)["epoch"])


def model_output_size(model: nn.Module) -> int:
    """Number of classes: out_features of the last Linear layer."""
    return [m for m in model.modules() if isinstance(m, nn.Linear)][-1].out_features
