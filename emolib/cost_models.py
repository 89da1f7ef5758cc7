"""What a model costs by construction and by measurement: parameters, FLOPs, scaling.

- ``count_parameters`` / ``count_flops``: parameter count and forward FLOPs of a torch model
  (``torch.utils.flop_counter.FlopCounterMode``: a multiply-add counts as 2 FLOPs; convolution,
  matmul and attention are counted, element-wise ops such as BatchNorm and ReLU are not).
  Models are built on the ``meta`` device, so no weights and no memory are needed: both
  numbers depend on the architecture and the input size only.
- ``build_cnn`` / ``build_clip``: the architectures of notebooks 03 and 04, for counting and
  for timing (random weights time the same as trained ones).
- ``measure_scaling`` times a full inference run (load the model from a checkpoint,
  preprocess, forward) at several data sizes; ``fit_scaling`` fits
  ``wall_s = overhead_s + per_image_s * n`` by least squares and reports its quality.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from tqdm.auto import tqdm

from emolib.cost import CostRecorder

CNN_ARCHS = ("resnet50", "efficientnet_b0", "vgg19_bn", "resnet18", "mobilenet_v3_small")


# ----------------------------------------------------------------------------- counting
def count_parameters(model: nn.Module) -> dict[str, int]:
    """``{"params": all, "trainable_params": requires_grad}`` (shared tensors counted once)."""
    unique = {id(p): p for p in model.parameters()}.values()
    return {"params": int(sum(p.numel() for p in unique)),
            "trainable_params": int(sum(p.numel() for p in unique if p.requires_grad))}


def count_flops(forward: Callable[[], object]) -> int:
    """FLOPs of one call of ``forward()`` (a closure over model and inputs), as counted by
    ``FlopCounterMode`` (2 per multiply-add). Works on meta tensors."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        forward()
    return int(counter.get_total_flops())


def flops_per_image(model: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """Forward FLOPs for one image of ``input_shape`` = (C, H, W), on the model's device."""
    device = next(iter(model.parameters())).device
    x = torch.empty((1, *input_shape), device=device)
    model.eval()
    return count_flops(lambda: model(x))


# ----------------------------------------------------------------------------- architectures
def build_cnn(name: str, num_classes: int = 7, in_channels: int = 1,
              device: str | torch.device = "cpu") -> nn.Module:
    """A torchvision ``name`` with random weights, ``num_classes`` outputs and a first
    convolution taking ``in_channels`` (1 for the gray stem of notebook 03)."""
    import torchvision

    with torch.device(device):
        model = getattr(torchvision.models, name)(weights=None, num_classes=num_classes)
        if in_channels != 3:
            _replace_first_conv(model, in_channels)
    return model


def _replace_first_conv(model: nn.Module, in_channels: int) -> None:
    for parent in model.modules():
        for child_name, child in parent.named_children():
            if isinstance(child, nn.Conv2d) and child.in_channels == 3:
                setattr(parent, child_name, nn.Conv2d(
                    in_channels, child.out_channels, child.kernel_size, child.stride,
                    child.padding, bias=child.bias is not None, device=child.weight.device))
                return
    raise ValueError("no 3-channel Conv2d found to adapt")


def build_clip(spec: str, device: str | torch.device = "cpu") -> tuple[nn.Module, int]:
    """Architecture of a CLIP spec ``"ARCH/pretrained"`` with random weights, and its image
    size. Loading the pretrained weights is notebook 04's business; counting needs none."""
    import open_clip

    arch = spec.split("/")[0]
    model = open_clip.create_model(arch, pretrained=None, device=device)
    size = model.visual.image_size
    return model, int(size[0] if isinstance(size, tuple | list) else size)


def cnn_cost_row(name: str, input_size: int, in_channels: int, num_classes: int = 7) -> dict:
    """Parameters and FLOPs per image of a CNN at the evaluated input size."""
    model = build_cnn(name, num_classes, in_channels, device="meta")
    shape = (in_channels, input_size, input_size)
    return {"model": name, "family": "cnn", "input": "x".join(map(str, shape)),
            **count_parameters(model), "flops_per_image": flops_per_image(model, shape),
            "flops_method": "torch FlopCounterMode"}


def clip_cost_row(spec: str, n_classes: int = 7, context_length: int = 77) -> dict:
    """CLIP: image-encoder parameters and FLOPs per image (the per-image cost of zero-shot),
    and the one-off FLOPs of encoding ``n_classes`` text prompts."""
    model, size = build_clip(spec, device="meta")
    x = torch.empty((1, 3, size, size), device="meta")
    tokens = torch.zeros((n_classes, context_length), dtype=torch.long, device="meta")
    return {"model": spec, "family": "clip", "input": f"3x{size}x{size}",
            **count_parameters(model), "image_params": count_parameters(model.visual)["params"],
            "flops_per_image": count_flops(lambda: model.encode_image(x)),
            "flops_text_once": count_flops(lambda: model.encode_text(tokens)),
            "flops_method": "torch FlopCounterMode"}


# ----------------------------------------------------------------------------- scaling
def make_image_runner(build: Callable[[str], nn.Module], checkpoint: Path,
                      input_shape: tuple[int, int, int], batch_size: int,
                      forward: Callable[[nn.Module, torch.Tensor], object] | None = None,
                      seed: int = 0) -> Callable[[int], None]:
    """``run(n)``: load the model from ``checkpoint`` (written once, here, if absent; the
    architecture is built by ``build("meta")``, without random init, and takes the
    checkpoint's tensors; ``build("cpu")`` makes the checkpoint),
    turn ``n`` uint8 images of ``input_shape`` into normalised floats and classify them in
    batches. Pixel values do not change the time, so the images are random."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        torch.save(build("cpu").state_dict(), checkpoint)
    forward = forward or (lambda m, x: m(x))
    pixels = np.random.default_rng(seed).integers(0, 256, (1, *input_shape), dtype=np.uint8)

    def run(n: int) -> None:
        model = build("meta")  # no random init: the checkpoint's tensors are used as is
        state = torch.load(checkpoint, map_location="cpu", weights_only=True)
        model.load_state_dict(state, assign=True)
        model.eval()
        with torch.inference_mode():
            for start in range(0, n, batch_size):
                batch = np.repeat(pixels, min(batch_size, n - start), axis=0)
                x = (torch.from_numpy(batch).float() / 255.0 - 0.5) / 0.5
                forward(model, x)

    return run


def fit_sizes_to_budget(sizes: tuple[int, ...], repeats: int, s_per_image: float,
                        budget_s: float | None, overhead_s: float = 0.0) -> tuple[int, ...]:
    """``sizes`` scaled down in proportion (at least 2 images, still distinct) so that
    ``repeats`` rounds, each run costing ``overhead_s + s_per_image * n``, are projected to
    take at most ``budget_s``; unchanged when they fit or there is no budget."""
    fixed = overhead_s * len(sizes) * repeats
    projected = fixed + s_per_image * sum(sizes) * repeats
    if budget_s is None or projected <= budget_s:
        return tuple(sizes)
    factor = max(budget_s - fixed, 0.0) / (projected - fixed)
    scaled: list[int] = []
    for n in sorted(sizes):
        scaled.append(max(2, round(n * factor), scaled[-1] + 1 if scaled else 2))
    return tuple(scaled)


def probe_cost(run: Callable[[int], None], small: int = 2, cap: int = 512) -> tuple[float, float]:
    """(s per image, s overhead per run) from a timed run of ``small`` images and one of
    ``n`` images, ``n`` = 8, 32, 128, ... until that run takes 0.5 s longer than the small
    one (a difference above the timing noise) or ``n`` reaches ``cap``. An expensive model
    stops at 8 images; a cheap one spends a few seconds."""
    def timed(n: int) -> float:
        start = time.perf_counter()
        run(n)
        return time.perf_counter() - start

    t_small, n = timed(small), 8
    t_n = timed(n)
    while t_n - t_small < 0.5 and n < cap:
        n = min(4 * n, cap)
        t_n = timed(n)
    slope = (t_n - t_small) / (n - small)
    if slope <= 0:  # noise swamped the difference: charge everything per image
        return t_n / n, 0.0
    return slope, max(t_small - small * slope, 0.0)


def measure_scaling(model: str, run: Callable[[int], None], sizes: tuple[int, ...],
                    recorder: CostRecorder | None = None, warmup: int = 32,
                    repeats: int = 1, budget_s: float | None = None) -> pd.DataFrame:
    """Time ``run(n)`` for each ``n`` in ``sizes``, ``repeats`` rounds over all sizes (so a
    burst of load from other processes does not hit one size only), after one warm-up
    ``run(warmup)`` (a full batch: one-off kernel set-up is not the first size's cost).
    With ``budget_s``, two small timed runs (``probe_cost``) project the total, and the
    sizes are scaled down (``fit_sizes_to_budget``) when it would exceed the budget.

    Returns one row per (repeat, size): model, repeat, n_images, wall_s, cpu_s, load_1min
    (the machine's load average when the run ended), requested_sizes. With a recorder
    every timed run is also a ``scaling`` phase record.
    """
    run(warmup)
    used = tuple(sizes)
    if budget_s is not None:
        per_image, overhead = probe_cost(run, cap=max(8, max(sizes) // 2))
        used = fit_sizes_to_budget(used, repeats, per_image, budget_s, overhead)
    rows = []
    for rep, n in tqdm([(r, n) for r in range(repeats) for n in used],
                       desc=f"scaling {model}", leave=False):
        wall0, cpu0 = time.perf_counter(), time.process_time()
        if recorder is None:
            run(n)
        else:
            with recorder.phase("scaling", model=model, items=n, n_images=n, repeat=rep):
                run(n)
        rows.append({"model": model, "repeat": rep, "n_images": int(n),
                     "wall_s": time.perf_counter() - wall0, "cpu_s": time.process_time() - cpu0,
                     "load_1min": os.getloadavg()[0],
                     "requested_sizes": ",".join(map(str, sizes))})
    return pd.DataFrame(rows)


def best_of_repeats(frame: pd.DataFrame) -> pd.DataFrame:
    """The fastest repeat per (model, n_images): the run least disturbed by other load."""
    keys = [c for c in ("model", "family", "n_images") if c in frame.columns]
    best = frame.loc[frame.groupby(keys, sort=False)["wall_s"].idxmin()]
    return best.reset_index(drop=True)


def fit_scaling(frame: pd.DataFrame, time_col: str = "wall_s") -> pd.DataFrame:
    """Least-squares fit of ``time = overhead_s + per_image_s * n_images`` per model.

    In: rows of (model, n_images, ``time_col``). Out: one row per model with the sizes used,
    per_image_s,
    overhead_s, their standard errors, R^2, the largest relative residual and the number
    of sizes. With fewer than 3 distinct sizes the errors and R^2 are NaN.
    """
    rows = []
    for model, group in frame.groupby("model", sort=False):
        n = group["n_images"].to_numpy(float)
        t = group[time_col].to_numpy(float)
        row = {"model": model, "n_sizes": int(len(np.unique(n))),
               "sizes": ",".join(str(int(v)) for v in np.unique(n))}
        if row["n_sizes"] < 2:
            rows.append(row | {"per_image_s": np.nan, "overhead_s": np.nan})
            continue
        fit = stats.linregress(n, t)
        pred = fit.intercept + fit.slope * n
        enough = row["n_sizes"] >= 3
        rows.append(row | {
            "per_image_s": fit.slope, "overhead_s": fit.intercept,
            "per_image_se": fit.stderr if enough else np.nan,
            "overhead_se": fit.intercept_stderr if enough else np.nan,
            "r2": fit.rvalue**2 if enough else np.nan,
            "max_rel_residual": float(np.max(np.abs(t - pred) / t)),
        })
    return pd.DataFrame(rows)
