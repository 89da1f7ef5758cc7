"""Typed, frozen configuration: one dataclass per stage, one YAML file per profile.

``load_profile("quick")`` reads ``configs/quick.yaml``; ``load_profile("quick", **{"cnn.epochs": 2})``
or ``load_profile("quick", cnn={"epochs": 2})`` overrides single values. Every key is checked
against the dataclasses: an unknown key, a wrong type or a missing profile file raises
``ConfigError`` naming the file and the key. ``config_hash`` gives a stable short hash of any
config section, used to name stage output folders.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from emolib.paths import project_root


class ConfigError(ValueError):
    """A profile that cannot be used as written; the message names the file, key and fix."""


@dataclass(frozen=True)
class SubsampleConfig:
    """Images per split after stratified subsampling; ``null`` keeps the whole split."""

    train: int | None = None
    public_test: int | None = None
    private_test: int | None = None


@dataclass(frozen=True)
class DataConfig:
    """Where the data sets are and how they are cut down. Paths are relative to the data root."""

    source: Literal["real", "synthetic"] = "real"
    fer2013: str = "fer2013/fer2013.zip"
    ferplus: str = "fer2013/ferplus"
    emotion6: str = "emotion6/Emotion6.zip"
    synthetic_per_class: int = 40  # per class and split, smoke profile only
    subsample: SubsampleConfig = field(default_factory=SubsampleConfig)
    emotion6_subsample: int | None = None  # images of Emotion6 kept (stratified); null = all
    phash_threshold: int = 4  # Hamming distance (of 64 bits) that counts as a near duplicate
    near_duplicates: bool = True
    skip_unreadable: bool = False  # True: unreadable images are listed in the audit, not fatal


@dataclass(frozen=True)
class RestorationConfig:
    """Face restoration (notebook 02); see ``emolib.restore`` for the backend names.

    ``backends`` are compared in notebook 02 on a small preview (``preview_per_class`` faces
    per class). ``selected`` (and any ``eval_backends``) restore the whole evaluation subset
    (``splits``, each cut to ``eval_size`` stratified faces) that notebooks 03/04 evaluate
    against ``none`` (the original 48 px faces; resizing is the consumer's job).
    """

    backends: tuple[str, ...] = ("none", "bicubic")
    output_size: int = 96
    selected: str = "bicubic"
    eval_backends: tuple[str, ...] = ()  # restored on the evaluation subset besides `selected`
    splits: tuple[str, ...] = ("private_test",)
    eval_size: int | None = None  # faces per split, stratified with the profile seed; null = all
    preview_per_class: int = 4  # faces per class every backend restores for notebook 02
    batch_size: int = 32
    gfpgan_weights_dir: str | None = None  # holds GFPGANv1.x.pth; null = torch hub checkpoints
    realesrgan_gpuid: int = -1  # -1: CPU; >= 0: Vulkan device
    realesrgan_threads: int = 1  # ncnn instances run side by side
    unsharp_radius: float = 1.5  # lanczos-unsharp: Pillow UnsharpMask settings
    unsharp_percent: int = 120
    unsharp_threshold: int = 2


@dataclass(frozen=True)
class CNNConfig:
    """CNN training and evaluation (notebook 03). Per-model ``widths`` (channel multiplier of
    VGG/EfficientNet; 1.0 = published) and ``stem_strides`` (downsampling of the stem; missing =
    torchvision's own) are how the quick profile buys accuracy per CPU minute."""

    models: tuple[str, ...] = ("resnet50", "efficientnet_b0", "vgg19_bn")
    weights: Literal["imagenet", "none"] = "none"
    input_size: int = 48
    stem: Literal["gray", "rgb"] = "gray"  # gray: 1-channel stem; rgb: gray replicated x3
    widths: dict[str, float] = field(default_factory=dict)
    stem_strides: dict[str, int] = field(default_factory=dict)
    train_subset: int | None = None  # stratified Training images used; null = all 28,709
    val_subset: int | None = None  # stratified PublicTest images for model selection; null = all
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 5e-4
    optimizer: Literal["adamw", "sgd"] = "adamw"
    warmup_epochs: float = 1.0  # linear warm-up length, in epochs (fractions allowed)
    label_smoothing: float = 0.1
    class_weights: bool = False
    erase_p: float = 0.5  # random-erasing probability per image
    patience: int = 5
    seeds: tuple[int, ...] = (0,)
    bf16_models: tuple[str, ...] = ()  # models trained under CPU bf16 autocast (measure first)
    # per-model overrides of the training settings above, e.g. {"resnet50": {"epochs": 2}};
    # allowed keys: emolib.train.stage.PER_MODEL_KEYS
    per_model: dict[str, dict[str, Any]] = field(default_factory=dict)
    threads: int = 2  # torch CPU threads
    hard_threshold: float = 0.8  # hard = wrong or p(true) below this, out of fold
    hard_folds: int = 5


@dataclass(frozen=True)
class VLMConfig:
    """Zero-shot vision-language models (notebook 04)."""

    clip_models: tuple[str, ...] = ("ViT-B-32/openai",)
    hf_models: tuple[str, ...] = ()
    openai_models: tuple[str, ...] = ()
    openai_base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    recorded: tuple[str, ...] = ("gpt4v",)
    batch_size: int = 32
    max_new_tokens: int = 64
    temperature: float = 0.0
    concurrency: int = 4
    embedding_threshold: float = 0.6  # SBERT cosine needed to map a free answer to a label
    fer_eval_size: int | None = None  # PrivateTest images scored per model; null = all
    emotion6_eval_size: int | None = None
    probe_train_size: int | None = 2000  # training images of the CLIP linear probe; null = all
    probe_c: float = 1.0  # inverse L2 strength of the probe's logistic regression
    restored: bool = True  # also score the restored faces (restoration.selected) if available
    hf_trust_remote_code: bool = False  # run a cached model's own code (Phi-3.5-Vision needs it)
    request_timeout_s: float = 60.0
    max_retries: int = 4  # retries after the first attempt on 429/5xx/timeouts
    retry_base_s: float = 1.0  # backoff: base * 2**attempt (or the server's Retry-After)
    json_mode: bool = True  # ask OpenAI-compatible servers for response_format json_object
    torch_threads: int | None = None  # set torch's CPU threads for the stage; null = leave as is
    random_weights_ok: bool = False  # smoke only: random-weight stand-ins, flagged in every table
    random_image_size: int = 64  # input size of random-weight CLIP stand-ins
    random_context_length: int = 32  # text context of random-weight CLIP stand-ins


@dataclass(frozen=True)
class PromptStudyConfig:
    """Prompt-sensitivity sweep (notebook 05); variant kinds are those of ``emolib.prompts``
    (``permuted`` expands to ``n_permutations`` seeded orders, ``order4`` to every order of
    ``order_labels`` labels asked on ``order_sample_size`` images)."""

    variants: tuple[str, ...] = (
        "base", "positive_first", "negative_first", "permuted", "order4", "persona_positive",
        "persona_negative", "persona_neutral", "explain", "context_reasoning", "caption_then_predict",
        "no_labels")
    n_permutations: int = 5
    sample_size: int | None = 200  # stratified images of each data set; null = all
    order_labels: int = 4  # labels of the all-orders design (4 -> 24 orders)
    order_sample_size: int | None = 48  # images (truth among those labels) asked in every order
    datasets: tuple[str, ...] = ("evoked",)  # evoked | faces
    open_vocab_threshold: float = 0.0  # no_labels: cosine needed to map a free answer to a label
    alpha: float = 0.05


@dataclass(frozen=True)
class CostConfig:
    """Cost measurement (notebook 06)."""

    scaling_sizes: tuple[int, ...] = (100, 300, 1000)  # images per timed inference run
    scaling_models: tuple[str, ...] | None = None  # "cnn:resnet50", "clip:ViT-B-32/openai"; null = all
    scaling_batch_size: int = 32
    scaling_repeats: int = 2  # rounds over all sizes; the fastest round per size is fitted
    scaling_threads: int = 1  # torch threads while timing; 1 is robust on a shared, busy CPU
    scaling_budget_s: float | None = None  # per model; sizes shrink in proportion beyond it
    sample_interval_s: float = 0.05  # RSS sampling period inside a timed phase
    infer_phases: tuple[str, ...] = ("infer",)  # phase names that count as inference
    train_phases: tuple[str, ...] = ("train",)  # phase names that count as training


@dataclass(frozen=True)
class HumanEvalConfig:
    """Error sampling and annotation (notebook 07)."""

    n_samples: int = 500  # errors drawn for annotation (the seed study used 500)
    allocation: Literal["equal", "proportional"] = "equal"  # per (model, category) stratum
    models: tuple[str, ...] = ()  # models whose errors are sampled; empty = every model found
    recorded_gpt4v: bool = True  # real data: add the recorded GPT-4V answers on FER+
    annotator: str = "annotator_1"  # names the annotation file of the live annotator
    annotations_dir: str | None = None  # null = <sample folder>/annotations
    image_width: int = 240  # display width of an image in the annotator and sheet, pixels
    plausibility_thresholds: tuple[float, ...] = (0.1, 0.3)


@dataclass(frozen=True)
class Profile:
    """One run of the study: its name, seed, device and every stage's settings."""

    name: str
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    bootstrap_samples: int = 1000
    data: DataConfig = field(default_factory=DataConfig)
    restoration: RestorationConfig = field(default_factory=RestorationConfig)
    cnn: CNNConfig = field(default_factory=CNNConfig)
    vlm: VLMConfig = field(default_factory=VLMConfig)
    prompts: PromptStudyConfig = field(default_factory=PromptStudyConfig)
    cost: CostConfig = field(default_factory=CostConfig)
    human_eval: HumanEvalConfig = field(default_factory=HumanEvalConfig)


def configs_dir() -> Path:
    return project_root() / "configs"


def profile_path(name_or_path: str | Path) -> Path:
    """``"quick"`` -> ``configs/quick.yaml``; an existing path is used as it is."""
    candidate = Path(name_or_path)
    if candidate.suffix in {".yaml", ".yml"}:
        return candidate
    return configs_dir() / f"{name_or_path}.yaml"


def load_profile(name_or_path: str | Path, **overrides: Any) -> Profile:
    """Read a profile YAML, apply overrides (dotted or nested keys), validate, return it."""
    path = profile_path(name_or_path)
    if not path.is_file():
        known = sorted(p.stem for p in configs_dir().glob("*.yaml"))
        raise ConfigError(f"profile file {path} does not exist; known profiles: {known}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise ConfigError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise ConfigError(f"{path} must hold a mapping of settings, not {type(raw).__name__}")
    raw.setdefault("name", path.stem)
    merged = _deep_merge(raw, _expand_dotted(overrides))
    return build_config(Profile, merged, where=str(path))


def _expand_dotted(overrides: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def _deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def build_config(cls: type, raw: Any, where: str = "config") -> Any:
    """Turn a mapping into the dataclass ``cls``, checking every key and type."""
    if dataclasses.is_dataclass(raw) and isinstance(raw, cls):
        return raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {unknown} for {cls.__name__}; allowed: {sorted(names)}"
        )
    values = {key: _coerce(hints[key], value, f"{where}: {key}") for key, value in raw.items()}
    try:
        return cls(**values)
    except TypeError as err:
        raise ConfigError(f"{where}: {err}") from err


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{where}: {value!r} fits none of {hint}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        return tuple(_coerce(inner, item, f"{where}[{i}]") for i, item in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {k: _coerce(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return build_config(hint, value, where)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{where}: expected {hint.__name__}, got the boolean {value!r}")
    if isinstance(hint, type) and not isinstance(value, hint):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {type(value).__name__} {value!r}")
    return value


def to_dict(config: Any) -> Any:
    """A config (or part of one) as plain JSON-able data; tuples become lists."""
    if dataclasses.is_dataclass(config):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)}
    if isinstance(config, tuple | list):
        return [to_dict(v) for v in config]
    if isinstance(config, dict):
        return {str(k): to_dict(v) for k, v in sorted(config.items())}
    if isinstance(config, Path):
        return str(config)
    return config


def config_hash(*parts: Any, length: int = 12) -> str:
    """Stable hash of config sections and extra values (order matters, dict order does not)."""
    canonical = json.dumps([to_dict(p) for p in parts], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:length]
