"""What a model costs by construction: parameters and FLOPs per image.

``count_parameters`` / ``count_flops`` use ``torch.utils.flop_counter.FlopCounterMode`` (a
multiply-add counts as 2 FLOPs; convolution, matmul and attention are counted, element-wise
ops such as BatchNorm and ReLU are not). Models are built on the ``meta`` device, so no
weights and no memory are needed: both numbers depend on the architecture and the input
size only. ``model_cost_rows(profile)`` counts every CNN of notebook 03 (its own model zoo,
``emolib.train.models``, at ``cnn.input_size`` and ``cnn.stem``) and every CLIP model (image
encoder at its own input size; text prompts once). Generative and API models are not
counted: their rows say so, and their cost is tokens and latency from notebook 04. A model of
``vlm.recorded_files`` (answers recorded elsewhere) is an ``api`` row, not counted, like ``vlm.recorded``.
``model_cost_table(profile)`` is the same table kept in the cost stage folder: counting the
CLIP encoders takes seconds, and a rerun of notebook 06 reads it instead.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from emolib import catalog
from emolib.config import Profile
from emolib.quiet import quiet_logging
from emolib.train.models import build_model, in_channels_of

NOT_COUNTED = "not counted"


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


def build_study_cnn(profile: Profile, name: str, device: str = "cpu") -> nn.Module:
    """Notebook 03's architecture ``name`` with random weights (7 classes)."""
    cfg = profile.cnn
    with torch.device(device):
        return build_model(name, 7, in_channels_of(cfg.stem), width=cfg.width_of(name),
                           stem_stride=cfg.model(name).stem_stride)


def build_clip(spec: str, device: str | torch.device = "cpu") -> tuple[nn.Module, int]:
    """Architecture of a CLIP spec ``"ARCH/pretrained"`` with random weights, and its image
    size. Loading the pretrained weights is notebook 04's business; counting needs none."""
    import open_clip

    arch = spec.split("/")[0]
    with quiet_logging():  # open_clip warns that no weights were loaded: none are wanted
        model = open_clip.create_model(arch, pretrained=None, device=device)
    size = model.visual.image_size
    return model, int(size[0] if isinstance(size, tuple | list) else size)


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


def _cnn_row(profile: Profile, name: str) -> dict:
    cfg = profile.cnn
    shape = (in_channels_of(cfg.stem), cfg.input_size, cfg.input_size)
    model = build_study_cnn(profile, name, device="meta")
    return {"model": name, "family": "cnn", "input": "x".join(map(str, shape)),
            **count_parameters(model), "flops_per_image": flops_per_image(model, shape), "note": ""}


def model_cost_rows(profile: Profile) -> pd.DataFrame:
    """One row per model of the profile: model, family, input, params, flops_per_image,
    flops_text_once (CLIP), note. Counted on the meta device: no weights needed."""
    import open_clip

    known = set(open_clip.list_models())
    rows = [_cnn_row(profile, name) for name in profile.cnn.models]
    for spec in profile.vlm.clip_models:
        arch = spec.split("/")[0]
        rows.append(clip_cost_row(spec) | {"note": ""} if arch in known else
                    {"model": spec, "family": "clip", "note": f"{NOT_COUNTED}: open_clip has no architecture {arch!r}"})
    for name in profile.vlm.hf_models:
        rows.append({"model": name, "family": "hf", "note": f"{NOT_COUNTED}: generative VLM, "
                     "FLOPs depend on the answer; tokens and latency instead"})
    for name in (*profile.vlm.openai_models, *profile.vlm.recorded):
        rows.append({"model": name, "family": "api", "note": f"{NOT_COUNTED}: API/recorded "
                     "model, architecture unknown; tokens and latency instead"})
    listed = {*profile.vlm.openai_models, *profile.vlm.recorded}
    recorded_sets: dict[str, list[str]] = {}
    for entry in profile.vlm.recorded_files:  # one row per model, however many files it answered
        recorded_sets.setdefault(entry.model, []).append(entry.set)
    for name, sets in recorded_sets.items():
        if name not in listed:
            rows.append({"model": name, "family": "api", "note": f"{NOT_COUNTED}: recorded answers "
                         f"(vlm.recorded_files: {', '.join(sets)}), architecture unknown; nothing to time"})
    return pd.DataFrame(rows)


def model_cost_table(profile: Profile) -> pd.DataFrame:
    """``model_cost_rows(profile)``, counted once per CNN/VLM configuration (cost stage folder)."""
    return catalog.cost_store(profile).load_or_compute_frame("model_sizes.parquet",
                                                             lambda: model_cost_rows(profile))
