"""How inference time grows with the number of images (notebook 06).

- ``scaling_targets(profile)``: which models can be timed here, and why not for the others.
  CNNs always can (random weights time like trained ones); a VLM only when notebook 04's
  loader can load it (weights cached, or random weights allowed by the smoke profile).
- ``measure_profile_scaling(profile)``: each target timed at ``cost.scaling_sizes`` images
  (load from a checkpoint + preprocess + forward), cached per model in the ``cost`` stage
  folder (``emolib.catalog.cost_store``) so that an interrupted run resumes and a rerun
  measures nothing.
- ``fit_scaling`` fits ``wall_s = overhead_s + per_image_s * n`` by least squares and
  reports its quality.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import nn

from emolib import catalog
from emolib.config import Profile
from emolib.cost.counting import build_study_cnn
from emolib.data import make_synthetic_faces
from emolib.labels import get_label_set
from emolib.machine import plan_machine
from emolib.quiet import progress_bar
from emolib.recorder import CostRecorder
from emolib.store import StageStore, write_parquet
from emolib.train.models import in_channels_of
from emolib.vlm.backends import load_backend
from emolib.vlm.types import ModelSpec, ModelUnavailable


def make_image_runner(build: Callable[[str], nn.Module], checkpoint: Path,
                      input_shape: tuple[int, int, int], batch_size: int,
                      forward: Callable[[nn.Module, torch.Tensor], object] | None = None,
                      seed: int = 0, device: str = "cpu") -> Callable[[int], None]:
    """``run(n)``: load the model from ``checkpoint`` (written once, here, if absent; the
    architecture is built by ``build("meta")``, without random init, and takes the
    checkpoint's tensors; ``build("cpu")`` makes the checkpoint),
    turn ``n`` uint8 images of ``input_shape`` into normalised floats and classify them in
    batches on ``device`` (on CUDA the run waits for the GPU to finish, so its time is real).
    Pixel values do not change the time, so the images are random."""
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
        model.to(device).eval()
        with torch.inference_mode():
            for start in range(0, n, batch_size):
                batch = np.repeat(pixels, min(batch_size, n - start), axis=0)
                x = ((torch.from_numpy(batch).float() / 255.0 - 0.5) / 0.5).to(device)
                forward(model, x)
        if device.startswith("cuda"):
            torch.cuda.synchronize(device)

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
    for rep, n in progress_bar([(r, n) for r in range(repeats) for n in used],
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
# ----------------------------------------------------------------------------- targets
def scaling_targets(profile: Profile) -> pd.DataFrame:
    """Rows (target, family, status, reason) for every model the profile could time."""
    wanted = profile.cost.scaling_models
    rows = [{"target": f"cnn:{m}", "family": "cnn", "status": "available",
             "reason": "random weights (timing does not depend on them)"}
            for m in profile.cnn.models]
    rows += _vlm_target_rows(profile)
    frame = pd.DataFrame(rows, columns=["target", "family", "status", "reason"])
    if wanted is not None:
        frame = frame[frame["target"].isin(wanted)].reset_index(drop=True)
    return frame


CPU_GENERATIVE = ("skipped: a generative VLM on the CPU answers in seconds per image in float32; time it on a GPU "
                  "(device: auto or cuda) or name it in cost.scaling_models to time it here anyway")


def _vlm_target_rows(profile: Profile) -> list[dict]:
    """One row per CLIP and generative model; a generative model is not timed on a CPU unless
    ``cost.scaling_models`` names it (a visible ``skipped`` row instead)."""
    device, named = plan_machine(profile).device, profile.cost.scaling_models or ()
    rows = []
    for spec in [ModelSpec("clip", m) for m in profile.vlm.clip_models] + [
            ModelSpec("hf", m) for m in profile.vlm.hf_models]:
        row = {"target": str(spec), "family": spec.backend, "status": "available",
               "reason": spec.note}
        if spec.backend == "hf" and device == "cpu" and str(spec) not in named:
            rows.append(row | {"status": "skipped", "reason": CPU_GENERATIVE})
            continue
        try:
            load_backend(spec, profile.vlm, cache=None, device=device, weights=profile.weights)
        except (ModelUnavailable, ImportError, KeyError) as err:
            row.update(status="unavailable", reason=str(err))
        rows.append(row)
    return rows


def _vlm_runner(profile: Profile, target: str) -> Callable[[int], None]:
    """``run(n)``: load the backend (no response cache) and predict ``n`` synthetic faces."""
    faces = make_synthetic_faces(per_class=max(profile.cost.scaling_sizes) // 7 + 1,
                                 seed=profile.seed, splits=("private_test",))
    fer7 = get_label_set("fer7")

    def run(n: int) -> None:
        backend = load_backend(target, profile.vlm, cache=None, device=plan_machine(profile).device,
                               weights=profile.weights)
        backend.predict(faces.subset(list(range(n))), fer7, None, "default")

    return run


def _runner(profile: Profile, target: str, store: StageStore) -> Callable[[int], None]:
    family, name = target.split(":", 1)
    if family != "cnn":
        return _vlm_runner(profile, target)
    cfg = profile.cnn
    shape = (in_channels_of(cfg.stem), cfg.input_size, cfg.input_size)
    return make_image_runner(lambda device: build_study_cnn(profile, name, device),
                             store.path(f"random_{_safe(name)}.pt"), shape,
                             profile.cost.scaling_batch_size, seed=profile.seed,
                             device=plan_machine(profile).device)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def measure_profile_scaling(profile: Profile, targets: pd.DataFrame | None = None) -> pd.DataFrame:
    """Time every available target at each of ``cost.scaling_sizes`` images (cached per
    model) with ``cost.scaling_threads`` torch threads. Returns rows: model, family, repeat,
    n_images, wall_s, cpu_s, load_1min, requested_sizes, threads. A model projected to
    exceed ``cost.scaling_budget_s`` is timed at proportionally smaller sizes."""
    targets = scaling_targets(profile) if targets is None else targets
    store = catalog.cost_store(profile)
    recorder = CostRecorder(store.dir, "cost", profile.cost.sample_interval_s)
    frames = []
    for target, family in targets.loc[targets["status"] == "available",
                                      ["target", "family"]].itertuples(index=False):
        path = store.path(f"scaling_{_safe(target)}.parquet")
        if not path.is_file():
            run = _runner(profile, target, store)
            threads, timed_threads = torch.get_num_threads(), plan_machine(profile).cost_threads
            torch.set_num_threads(timed_threads)
            try:
                frame = measure_scaling(target, run, profile.cost.scaling_sizes, recorder,
                                        warmup=profile.cost.scaling_batch_size,
                                        repeats=profile.cost.scaling_repeats,
                                        budget_s=profile.cost.scaling_budget_s)
            finally:
                torch.set_num_threads(threads)
            write_parquet(path, frame.assign(family=family, threads=timed_threads))
        frames.append(pd.read_parquet(path))
    store.write_meta(targets=targets.to_dict("records"))
    columns = ["model", "repeat", "n_images", "wall_s", "cpu_s", "load_1min", "requested_sizes",
               "family", "threads"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
