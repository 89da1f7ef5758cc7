"""Typed, frozen configuration: one dataclass per stage, one YAML file per profile.

``load_profile("quick")`` reads ``configs/quick.yaml``; ``load_profile("quick", **{"cnn.epochs": 2})``
or ``load_profile("quick", cnn={"epochs": 2})`` overrides single values. Every key is checked
against the dataclasses: an unknown key, a wrong type or a missing profile file raises
``ConfigError`` naming the file and the key. ``config_hash`` gives a stable short hash of any
config section, used to name stage output folders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from emolib.devices import check_device, resolve_device
from emolib.paths import project_root
from emolib.schema import ConfigError, build_config, config_hash, deep_merge, expand_dotted, to_dict


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
    # The evaluation draws every stage shares (emolib.catalog): `eval_size` PrivateTest faces
    # (stratified, profile seed; null = all) that restoration, CNN and VLM stages all score,
    # and `emotion6_eval_size` Emotion6 images for the VLM stage (null = all).
    eval_size: int | None = None
    emotion6_eval_size: int | None = None
    phash_threshold: int = 4  # Hamming distance (of 64 bits) that counts as a near duplicate
    near_duplicates: bool = True
    skip_unreadable: bool = False  # True: unreadable images are listed in the audit, not fatal


@dataclass(frozen=True)
class RestorationConfig:
    """Face restoration (notebook 02); see ``emolib.restore`` for the backend names.

    ``backends`` are compared in notebook 02 on a small preview (``preview_per_class`` faces
    per class). ``selected`` (and any ``eval_backends``) restore the evaluation subset
    (``emolib.catalog.fer_eval_name``: ``data.eval_size`` PrivateTest faces) that notebooks
    03/04 score beside ``none`` (the original 48 px faces) on the same ids.
    """

    backends: tuple[str, ...] = ("none", "bicubic")
    output_size: int = 96
    selected: str = "bicubic"
    eval_backends: tuple[str, ...] = ()  # restored on the evaluation subset besides `selected`
    preview_per_class: int = 4  # faces per class every backend restores for notebook 02
    batch_size: int = 32
    gfpgan_weights_dir: str | None = None  # holds GFPGANv1.x.pth; null = torch hub checkpoints
    realesrgan_gpuid: int = -1  # -1: CPU; >= 0: Vulkan device
    realesrgan_threads: int = 1  # ncnn instances run side by side
    unsharp_radius: float = 1.5  # lanczos-unsharp: Pillow UnsharpMask settings
    unsharp_percent: int = 120
    unsharp_threshold: int = 2


# training settings a CNN may override in ``cnn.per_model`` (the type each value is cast to)
PER_MODEL_KEYS = {"epochs": int, "batch_size": int, "lr": float, "weight_decay": float,
                  "optimizer": str, "warmup_epochs": float, "label_smoothing": float,
                  "class_weights": bool, "erase_p": float, "augment": bool, "patience": int}


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
    # allowed keys: PER_MODEL_KEYS
    per_model: dict[str, dict[str, Any]] = field(default_factory=dict)
    threads: int = 2  # torch CPU threads
    # FER-2013-Hard: the probe (out of fold) is wrong, or right with p(true) below hard_threshold;
    # on quick the CNN probe is right on 60% of the test pool, so 0.3 adds 1 point to its 40% errors
    hard_threshold: float = 0.3
    hard_folds: int = 5
    hard_probe: Literal["cnn", "hog"] = "cnn"  # faces: features of the best trained CNN, or HOG
    hard_vote_share: float = 0.3  # Emotion6-Hard: fewer than this share of its voters chose its label

    def __post_init__(self) -> None:
        for name, own in self.per_model.items():
            if name not in self.models:
                raise ConfigError(f"cnn.per_model.{name}: {name!r} is not in cnn.models {list(self.models)}")
            unknown = sorted(set(own) - set(PER_MODEL_KEYS))
            if unknown:
                raise ConfigError(f"cnn.per_model.{name}: unknown key(s) {unknown}; allowed: {sorted(PER_MODEL_KEYS)}")

    def overrides_for(self, name: str) -> dict[str, Any]:
        """``per_model[name]`` cast to the types of ``PER_MODEL_KEYS``."""
        return {k: PER_MODEL_KEYS[k](v) for k, v in self.per_model.get(name, {}).items()}


@dataclass(frozen=True)
class EndpointConfig:
    """One OpenAI-compatible server (OpenAI, vLLM, SGLang, Ollama) and the model it serves.

    ``api_key_env`` names the environment variable that holds the key (never the key);
    ``image_max_side``: longer images are shrunk to it, aspect kept (null: sent as they are);
    ``concurrency``: requests in flight at once; ``guided``: constrained decoding (``choice``:
    vLLM's ``structured_outputs.choice``/``guided_choice`` over the label words;
    ``json_schema``: ``response_format`` json_schema whose one key takes a label word).
    """

    model: str
    base_url: str  # e.g. "http://127.0.0.1:8000/v1" (vLLM, SGLang) or "https://api.openai.com/v1"
    api_key_env: str = "OPENAI_API_KEY"
    image_max_side: int | None = None
    image_format: Literal["png", "jpeg"] = "png"
    concurrency: int = 4
    guided: Literal["none", "choice", "json_schema"] = "none"

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"endpoint {self.model!r}: base_url {self.base_url!r} must start with http(s)://")
        if self.concurrency < 1 or (self.image_max_side is not None and self.image_max_side < 1):
            raise ConfigError(f"endpoint {self.model!r}: concurrency and image_max_side must be >= 1")


@dataclass(frozen=True)
class VLMConfig:
    """Zero-shot vision-language models (notebook 04).

    OpenAI-compatible models: each of ``endpoints`` names its model and server (the models
    join ``openai_models``, the list of such models a profile asks for); a model of
    ``openai_models`` without an endpoint goes to ``openai_base_url`` (null: OpenAI) with
    ``api_key_env`` and ``concurrency``, as before endpoints existed.
    """

    clip_models: tuple[str, ...] = ("ViT-B-32/openai",)
    hf_models: tuple[str, ...] = ()
    openai_models: tuple[str, ...] = ()
    openai_base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    endpoints: tuple[EndpointConfig, ...] = ()  # one per OpenAI-compatible model (EndpointConfig)
    recorded: tuple[str, ...] = ("gpt4v",)
    batch_size: int = 32
    max_new_tokens: int = 64
    temperature: float = 0.0
    concurrency: int = 4
    embedding_threshold: float = 0.6  # SBERT cosine needed to map a free answer to a label
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

    def __post_init__(self) -> None:
        served = [e.model for e in self.endpoints]
        twice = sorted({m for m in served if served.count(m) > 1})
        if twice:
            raise ConfigError(f"vlm.endpoints: model(s) {twice} have more than one endpoint")
        # frozen: set once here, so model lists, hashes and tables all see the endpoint models
        missing = tuple(m for m in served if m not in self.openai_models)
        object.__setattr__(self, "openai_models", tuple(self.openai_models) + missing)

    def endpoint(self, model: str) -> EndpointConfig:
        """The server of OpenAI-compatible ``model``: its endpoint, else the legacy settings."""
        for endpoint in self.endpoints:
            if endpoint.model == model:
                return endpoint
        return EndpointConfig(model=model, base_url=self.openai_base_url or "https://api.openai.com/v1",
                              api_key_env=self.api_key_env, concurrency=max(1, self.concurrency))


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
    scaling_budget_s: float | None = 120.0  # per model; sizes shrink in proportion beyond it; null: no limit
    sample_interval_s: float = 0.05  # RSS sampling period inside a timed phase
    infer_phases: tuple[str, ...] = ("infer",)  # phase names that count as inference
    train_phases: tuple[str, ...] = ("train",)  # phase names that count as training


@dataclass(frozen=True)
class HumanEvalConfig:
    """Error sampling and annotation (notebook 07)."""

    n_samples: int = 500  # errors drawn for annotation (the seed study used 500)
    allocation: Literal["equal", "proportional"] = "equal"  # per (model, category) stratum
    models: tuple[str, ...] = ()  # models whose errors are sampled; empty = every model found
    annotator: str = "annotator_1"  # names the annotation file of the live annotator
    annotations_dir: str | None = None  # null = <sample folder>/annotations
    image_width: int = 240  # display width of an image in the annotator and sheet, pixels
    plausibility_thresholds: tuple[float, ...] = (0.1, 0.3)


@dataclass(frozen=True)
class Profile:
    """One run of the study: its name, seed, device and every stage's settings."""

    name: str
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps (emolib.devices)
    # auto: a model's missing weights are downloaded on first use when online; offline: never
    # (fetch them ahead with `emolib fetch <profile>`); either way a model without them is "unavailable"
    weights: Literal["auto", "offline"] = "auto"
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


def load_profile(name_or_path: str | Path, check_machine: bool = True, overrides: dict[str, Any] | None = None,
                 **more: Any) -> Profile:
    """Read a profile YAML, apply overrides (dotted or nested keys, from ``overrides`` and/or
    keyword arguments), validate, return it. ``check_machine``: also fail (DeviceError) when
    this machine lacks the profile's device, before any work; False only to inspect a profile
    meant for another machine. A notebook passes its ``overrides`` parameter as it is: anything
    but a mapping is a ConfigError that says what to write."""
    if not isinstance(name_or_path, str | Path):
        raise ConfigError(f"profile must be a profile name or a YAML path, got {type(name_or_path).__name__} "
                          f"{name_or_path!r}")
    if overrides is not None and not isinstance(overrides, dict):
        raise ConfigError(f"overrides must be a mapping of dotted keys, e.g. {{'cnn.epochs': 2}}; got "
                          f"{type(overrides).__name__} {overrides!r}")
    overrides = {**(overrides or {}), **more}
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
    merged = deep_merge(raw, expand_dotted(overrides))
    profile = build_config(Profile, merged, where=str(path))
    check_device(profile.device, f"{path}: device")
    if check_machine:
        resolve_device(profile.device, f"{path}: device")
    return profile


__all__ = ["CNNConfig", "ConfigError", "CostConfig", "DataConfig", "EndpointConfig", "HumanEvalConfig",
           "PER_MODEL_KEYS", "Profile", "PromptStudyConfig", "RestorationConfig", "SubsampleConfig", "VLMConfig",
           "build_config", "config_hash", "configs_dir", "load_profile", "profile_path", "to_dict"]
