"""The models of a profile, what they cost by construction, and how their inference scales.

- ``model_cost_rows(profile)``: parameters and FLOPs per image of every CNN (notebook 03's
  architectures at ``cnn.input_size`` and ``cnn.stem``) and every CLIP model (image encoder
  at its own input size; text prompts once). Generative and API models are not counted:
  their rows say so, and their cost is tokens and latency from notebook 04.
- ``scaling_targets(profile)``: which models can be timed here, and why not for the others.
  CNNs always can (random weights time like trained ones); a VLM only when notebook 04's
  loader can load it (weights cached, or random weights allowed by the smoke profile).
- ``measure_profile_scaling(profile)``: each target timed at ``cost.scaling_sizes`` images
  (load + preprocess + forward), cached per model in the ``cost`` stage folder so that an
  interrupted run resumes and a rerun measures nothing.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pandas as pd
import torch

from emolib.config import Profile
from emolib.cost import CostRecorder
from emolib.cost_models import (
    build_cnn,
    clip_cost_row,
    count_parameters,
    flops_per_image,
    make_image_runner,
    measure_scaling,
)
from emolib.store import StageStore, write_parquet

NOT_COUNTED = "not counted"


# ----------------------------------------------------------------------------- builders
def build_study_cnn(profile: Profile, name: str, device: str = "cpu") -> torch.nn.Module:
    """Notebook 03's architecture ``name`` (``emolib.train.models``) with random weights;
    torchvision's own model when that module is not there."""
    cfg = profile.cnn
    in_channels = 1 if cfg.stem == "gray" else 3
    try:
        from emolib.train.models import build_model
    except ImportError:
        return build_cnn(name, 7, in_channels, device=device)
    with torch.device(device):
        return build_model(name, 7, in_channels, width=getattr(cfg, "widths", {}).get(name, 1.0),
                           stem_stride=getattr(cfg, "stem_strides", {}).get(name))


def _cnn_row(profile: Profile, name: str) -> dict:
    cfg = profile.cnn
    shape = (1 if cfg.stem == "gray" else 3, cfg.input_size, cfg.input_size)
    model = build_study_cnn(profile, name, device="meta")
    return {"model": name, "family": "cnn", "input": "x".join(map(str, shape)),
            **count_parameters(model), "flops_per_image": flops_per_image(model, shape),
            "note": ""}


def model_cost_rows(profile: Profile) -> pd.DataFrame:
    """One row per model of the profile: model, family, input, params, flops_per_image,
    flops_text_once (CLIP), note. Counted on the meta device: no weights needed."""
    rows = [_cnn_row(profile, name) for name in profile.cnn.models]
    for spec in profile.vlm.clip_models:
        try:
            rows.append(clip_cost_row(spec) | {"note": ""})
        except Exception as err:  # noqa: BLE001 - an architecture open_clip does not know
            rows.append({"model": spec, "family": "clip", "note": f"{NOT_COUNTED}: {err}"})
    for name in profile.vlm.hf_models:
        rows.append({"model": name, "family": "hf", "note": f"{NOT_COUNTED}: generative VLM, "
                     "FLOPs depend on the answer; tokens and latency instead"})
    for name in (*profile.vlm.openai_models, *profile.vlm.recorded):
        rows.append({"model": name, "family": "api", "note": f"{NOT_COUNTED}: API/recorded "
                     "model, architecture unknown; tokens and latency instead"})
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


def _vlm_target_rows(profile: Profile) -> list[dict]:
    try:
        from emolib.vlm.base import ModelSpec, ModelUnavailable, load_backend
    except ImportError as err:
        return [{"target": f"clip:{m}", "family": "clip", "status": "unavailable",
                 "reason": f"emolib.vlm not importable: {err}"} for m in profile.vlm.clip_models]
    rows = []
    for spec in [ModelSpec("clip", m) for m in profile.vlm.clip_models] + [
            ModelSpec("hf", m) for m in profile.vlm.hf_models]:
        row = {"target": str(spec), "family": spec.backend, "status": "available",
               "reason": spec.note}
        try:
            load_backend(spec, profile.vlm, cache=None)
        except (ModelUnavailable, ImportError, KeyError) as err:
            row.update(status="unavailable", reason=str(err))
        rows.append(row)
    return rows


def _vlm_runner(profile: Profile, target: str) -> Callable[[int], None]:
    """``run(n)``: load the backend (no response cache) and predict ``n`` synthetic faces."""
    from emolib.data import make_synthetic_faces
    from emolib.labels import get_label_set
    from emolib.vlm.base import load_backend

    faces = make_synthetic_faces(per_class=max(profile.cost.scaling_sizes) // 7 + 1,
                                 seed=profile.seed, splits=("private_test",))
    fer7 = get_label_set("fer7")

    def run(n: int) -> None:
        backend = load_backend(target, profile.vlm, cache=None)
        backend.predict(faces.subset(list(range(n))), fer7, None, "scaling")

    return run


def _runner(profile: Profile, target: str, store: StageStore) -> Callable[[int], None]:
    family, name = target.split(":", 1)
    if family != "cnn":
        return _vlm_runner(profile, target)
    cfg = profile.cnn
    shape = (1 if cfg.stem == "gray" else 3, cfg.input_size, cfg.input_size)
    return make_image_runner(lambda device: build_study_cnn(profile, name, device),
                             store.path(f"random_{_safe(name)}.pt"), shape,
                             profile.cost.scaling_batch_size, seed=profile.seed)


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text)


def scaling_store(profile: Profile) -> StageStore:
    """The ``cost`` stage folder: its hash covers the cost, cnn and vlm sections."""
    return StageStore(profile, "cost", profile.cost, profile.cnn, profile.vlm)


def measure_profile_scaling(profile: Profile, targets: pd.DataFrame | None = None) -> pd.DataFrame:
    """Time every available target at each of ``cost.scaling_sizes`` images (cached per
    model) with ``cost.scaling_threads`` torch threads. Returns rows: model, family, repeat,
    n_images, wall_s, cpu_s, load_1min, requested_sizes, threads. A model projected to
    exceed ``cost.scaling_budget_s`` is timed at proportionally smaller sizes."""
    targets = scaling_targets(profile) if targets is None else targets
    store = scaling_store(profile)
    recorder = CostRecorder(store.dir, "cost", profile.cost.sample_interval_s)
    frames = []
    for target, family in targets.loc[targets["status"] == "available",
                                      ["target", "family"]].itertuples(index=False):
        path = store.path(f"scaling_{_safe(target)}.parquet")
        if not path.is_file():
            run = _runner(profile, target, store)
            threads = torch.get_num_threads()
            torch.set_num_threads(profile.cost.scaling_threads)
            try:
                frame = measure_scaling(target, run, profile.cost.scaling_sizes, recorder,
                                        warmup=profile.cost.scaling_batch_size,
                                        repeats=profile.cost.scaling_repeats,
                                        budget_s=profile.cost.scaling_budget_s)
            finally:
                torch.set_num_threads(threads)
            write_parquet(path, frame.assign(family=family, threads=profile.cost.scaling_threads))
        frames.append(pd.read_parquet(path))
    store.write_meta(targets=targets.to_dict("records"))
    columns = ["model", "repeat", "n_images", "wall_s", "cpu_s", "load_1min", "requested_sizes",
               "family", "threads"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)
