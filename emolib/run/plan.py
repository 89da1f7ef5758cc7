"""What a profile will run, stage by stage, before anything runs: ``emolib plan PROFILE``.

One row per step in notebook order: the stage, what it loads (one model resident at a time),
on which device, how (precision, threads, workers: ``emolib.machine``'s decisions), on which
named subset, and on a GPU an estimate of the GPU memory the step needs. Nothing is loaded or
computed here: the plan is read from the profile and the machine's decisions alone, so a GPU
profile can be planned on a laptop (``machine.assume_gpu``).
"""

from __future__ import annotations

import pandas as pd

from emolib import catalog
from emolib.config import Profile
from emolib.machine import MachinePlan
from emolib.prompts.sets import order_name, sample_name
from emolib.vlm.backends import model_specs
from emolib.vlm.recorded_files import recorded_file_subset
from emolib.vlm.weights import hf_weight, in_process_problem

COLUMNS = ["step", "notebook", "stage", "what", "device", "how", "on"]
# GPU memory of CNN training at 224 px, batch 128, mixed precision (GB, low-high): weights,
# optimizer state and activations, from the parameter counts; activations scale with batch x pixels
CNN_GPU_GB_224 = {"resnet50": (7, 10), "efficientnet_b0": (6, 9), "vgg19_bn": (12, 18), "vgg19": (10, 16)}
GFPGAN_GPU_GB = (2, 4)  # 512 px faces
# in-process generative VLMs: weights in bf16 plus activations and KV cache at the profile's batch
VLM_GPU_GB = {"microsoft/Phi-3.5-vision-instruct": (9, 12), "llava-hf/llava-1.5-7b-hf": (15, 18),
              "llava-hf/llava-v1.6-mistral-7b-hf": (16, 22), "Qwen/Qwen2-VL-7B-Instruct": (17, 22),
              "Qwen/Qwen2-VL-2B-Instruct": (5, 7)}
CLIP_GPU_GB = {"ViT-B-32": (1, 2), "ViT-B-16": (1, 2), "ViT-L-14": (3, 5)}


def profile_plan(profile: Profile, plan: MachinePlan) -> pd.DataFrame:
    """The steps of ``profile`` under ``plan`` (``machine.plan_machine``); a ``gpu_memory``
    column (an estimate) when the plan's device is a GPU. Every data set of the profile
    (``data.all_sets``) is named: the evoked ones in the subsets the VLMs score and the prompt
    sweep draws, each ``vlm.recorded_files`` entry in a row."""
    device, eval_name = plan.device, catalog.fer_eval_name(profile)
    sets = profile.data.all_sets()
    evoked = [catalog.evoked_eval_name(profile, s.name) for s in sets if s.role == "evoked"]
    gpu = device.startswith("cuda")
    rows = [("data", "load, audit and define the named subsets", "cpu", "", ", ".join(s.name for s in sets), "")]
    for backend in dict.fromkeys([profile.restoration.selected, *profile.restoration.eval_backends]):
        if backend == "none":
            continue
        on_gpu = backend.startswith("gfpgan") and gpu
        how = f"{plan.restoration_threads} ncnn instance(s)" if backend.startswith("realesrgan") else ""
        rows.append(("restoration", f"restore with {backend}", device if backend.startswith("gfpgan") else "cpu",
                     how, eval_name, _range(GFPGAN_GPU_GB) if on_gpu else ""))
    workers = (f"{plan.cnn_workers} at once x {plan.worker_threads} thread(s)" if plan.cnn_workers > 1
               else f"{plan.cnn_threads} thread(s)")
    for seed in profile.cnn.seeds:
        for name in profile.cnn.models:
            epochs = profile.cnn.epochs_of(name)
            rows.append(("cnn", f"train {name} (seed {seed}, {epochs} epochs), then predict", device,
                         f"{plan.precision[name]}, {workers}", f"Training; fer_private and {eval_name}",
                         _cnn_memory(profile, name) if gpu else ""))
    rows.append(("hard", "probe for the hard subsets", "cpu", "", "fer_hard, emotion6_hard", ""))
    for spec in model_specs(profile.vlm):
        if spec.backend == "recorded":
            rows.append(("vlm", f"replay {spec}'s recorded answers", "none", "", "the images its recording covers", ""))
            continue
        if not_in_process(profile, spec):
            rows.append(("vlm", f"{spec}: not run in this process (why and the route: `plan_notes`)", "none", "", "",
                         ""))
            continue
        where = "api" if spec.backend == "openai" else device
        on = [eval_name, *([catalog.FER_KAGGLE_TEST] if spec.backend == "clip"
                           and spec.model in profile.vlm.clip_benchmark_models else []), *evoked]
        rows.append(("vlm", f"load {spec}, predict, free", where, _vlm_how(plan, where), ", ".join(on),
                     _vlm_memory(spec) if where.startswith("cuda") else ""))
    rows += [("vlm", f"score recorded:{f.model}'s answers on {f.set} ({f.path})", "none", "",
              recorded_file_subset(f.set, f.model), "") for f in profile.vlm.recorded_files]
    swept = [n for s in profile.prompt_sets() for n in (sample_name(profile, s.name), order_name(profile, s.name))]
    for spec in model_specs(profile.vlm):
        if spec.backend in ("hf", "openai") and not not_in_process(profile, spec):
            where = "api" if spec.backend == "openai" else device
            rows.append(("prompts", f"load {spec}, every prompt variant, free", where, _vlm_how(plan, where),
                         ", ".join(swept), _vlm_memory(spec) if where.startswith("cuda") else ""))
    rows += [("cost", "time inference against images, model by model", device, f"{plan.cost_threads} thread(s)",
              "synthetic images", ""),
             ("human_eval", "sample errors, annotate, consistency check", "cpu", "", "every model's predictions", "")]
    names = ["stage", "what", "device", "how", "on", "gpu_memory"]
    table = pd.DataFrame([{"step": i + 1, "notebook": catalog.NOTEBOOKS[row[0]], **dict(zip(names, row, strict=True))}
                          for i, row in enumerate(rows)])
    return table[COLUMNS + (["gpu_memory"] if gpu else [])]


def plan_notes(profile: Profile) -> list[str]:
    """One line per model of the profile this process cannot run, with the reason and route."""
    return [f"{spec} is not run in this process: {why}" for spec in model_specs(profile.vlm)
            if (why := not_in_process(profile, spec))]


def not_in_process(profile: Profile, spec) -> str:
    """Why ``spec`` (a generative hub model) cannot run in this process, with its route; ''."""
    if spec.backend != "hf" or spec.is_random:
        return ""
    return in_process_problem(hf_weight(spec.model), profile.vlm.hf_trust_remote_code)


def _vlm_how(plan: MachinePlan, where: str) -> str:
    if where == "api":
        return "requests"
    if where.startswith("cuda"):
        return "bf16"
    return f"{plan.vlm_threads} thread(s)" if plan.vlm_threads else ""


def _range(gb: tuple[float, float]) -> str:
    low, high = gb
    return f"~{low:.2g}-{high:.2g} GB" if high >= 1 else "< 1 GB"


def _cnn_memory(profile: Profile, name: str) -> str:
    """CNN training on a GPU: the 224-px figure scaled by the batch and the pixels."""
    low, high = CNN_GPU_GB_224.get(name, (6, 18))
    batch = profile.cnn.batch_size_of(name)
    scale = (batch / 128) * (profile.cnn.input_size / 224) ** 2
    return _range((max(0.5, low * scale), max(0.5, high * scale)) if scale < 1 else (low * scale, high * scale))


def _vlm_memory(spec) -> str:
    if spec.backend == "clip":
        arch = spec.model.split("/")[0].removeprefix("transformers:")
        return _range(CLIP_GPU_GB.get(arch, (1, 5)))
    return _range(VLM_GPU_GB[spec.model]) if spec.model in VLM_GPU_GB else "unknown"
