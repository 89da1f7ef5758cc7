"""Typed, frozen configuration: one dataclass per stage, one YAML file per profile.

``load_profile("quick")`` reads ``configs/quick.yaml``; ``load_profile("quick", **{"cnn.epochs": 2})``
or ``load_profile("quick", cnn={"epochs": 2})`` overrides single values. Every key is checked
against the dataclasses: an unknown key, a wrong type or a missing profile file raises
``ConfigError`` naming the file and the key. ``config_hash`` gives a stable short hash of any
config section, used to name stage output folders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from emolib.labels import get_label_set, register_profile_label_sets
from emolib.machine import AUTO, PRECISIONS, check_device, resolve_device
from emolib.paths import project_root
from emolib.registry import CNN_MODELS, DATA_LOADERS, PROMPT_FAMILIES, RESTORATION_BACKENDS
from emolib.schema import (
    ConfigError,
    at_least,
    build_config,
    check_bounds,
    check_names,
    config_hash,
    deep_merge,
    expand_dotted,
    to_dict,
    within,
)


@dataclass(frozen=True)
class SubsampleConfig:
    """Images per split after stratified subsampling; ``null`` keeps the whole split."""

    train: int | None = field(default=None, metadata=at_least(1))
    public_test: int | None = field(default=None, metadata=at_least(1))
    private_test: int | None = field(default=None, metadata=at_least(1))


DATA_ROLES = ("faces", "evoked")
# loaders of one particular data set: its label set and role are fixed
FIXED_LOADERS = {"fer2013": ("fer7", "faces"), "emotion6": ("emotion6", "evoked")}
MANIFEST_COLUMNS = ("path", "label", "split", "image_id")  # columns a manifest's ``columns`` may rename
IMAGE_ID_FORMS = ("path", "stem", "file")  # class_folders ids: <class>/<stem>, <stem>, <stem>.<suffix>


@dataclass(frozen=True)
class DataSetConfig:
    """One named data set of ``data.sets``.

    ``loader``: ``fer2013`` | ``emotion6`` | ``class_folders`` (``path/<class>/*.jpg`` or
    ``path/<split>/<class>/*.jpg``) | ``manifest`` (a CSV listing ``path``, ``label``, optional
    ``split`` and ``image_id``; ``columns`` renames them, e.g. ``{label: emotion}``).
    ``path`` is relative to the data root (``EMOLIB_DATA_DIR``) unless absolute. ``label_set``
    names an ``emolib.labels`` label set and ``role`` says what the study does with the set
    (``evoked``: every VLM scores it; ``faces``: listed in notebook 01); both are fixed for the
    fer2013 and emotion6 loaders. ``image_id`` (class_folders): ids as ``path``
    (``<class>/<stem>``), ``stem`` or ``file`` (``<stem>.<suffix>``, the form recorded answers
    may use). ``subsample``: images kept (stratified, profile seed); ``eval_size``: the VLM
    stage's stratified draw ``<name>_eval_<n>``; null = all.
    """

    name: str
    loader: str
    path: str
    label_set: str | None = None
    role: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    image_id: str = "path"
    subsample: int | None = field(default=None, metadata=at_least(1))
    eval_size: int | None = field(default=None, metadata=at_least(1))


@dataclass(frozen=True)
class DataConfig:
    """Where the data sets are and how they are cut down. Paths are relative to the data root.

    ``fer2013`` and ``emotion6`` are the study's default sets (named ``fer2013`` and
    ``emotion6``); ``sets`` adds more (``DataSetConfig``), or replaces a default by naming it.
    ``all_sets()`` lists every set of the profile, defaults first. ``source: synthetic``
    replaces FER-2013 and Emotion6 with stand-ins; other sets are read from their paths.
    """

    source: Literal["real", "synthetic"] = "real"
    fer2013: str = "fer2013/fer2013.zip"
    ferplus: str = "fer2013/ferplus"
    emotion6: str = "emotion6/Emotion6.zip"
    synthetic_per_class: int = field(default=40, metadata=at_least(1))  # per class and split, smoke profile only
    subsample: SubsampleConfig = field(default_factory=SubsampleConfig)
    # images of Emotion6 kept (stratified); null = all
    emotion6_subsample: int | None = field(default=None, metadata=at_least(1))
    # The evaluation draws every stage shares (emolib.catalog): `eval_size` PrivateTest faces
    # (stratified, profile seed; null = all) that restoration, CNN and VLM stages all score,
    # and `emotion6_eval_size` Emotion6 images for the VLM stage (null = all).
    eval_size: int | None = field(default=None, metadata=at_least(1))
    emotion6_eval_size: int | None = field(default=None, metadata=at_least(1))
    # Hamming distance (of 64 bits) that counts as a near duplicate
    phash_threshold: int = field(default=4, metadata=within(0, 64))
    near_duplicates: bool = True
    skip_unreadable: bool = False  # True: unreadable images are listed in the audit, not fatal
    # more named data sets (ArtPhoto, Abstract, EmoSet, FI, your own); left out of the config
    # hash while empty, so profiles without it keep their stage folders
    sets: tuple[DataSetConfig, ...] = field(default=(), metadata={"omit_default": True})

    def __post_init__(self) -> None:
        names = [s.name for s in self.sets]
        for i, entry in enumerate(self.sets):
            check_data_set(entry, f"data.sets[{i}] ({entry.name!r})")
            if entry.name in names[:i]:
                raise ConfigError(f"data.sets[{i}] ({entry.name!r}): the name {entry.name!r} is already used by "
                                  f"data.sets[{names.index(entry.name)}]; give every set its own name")
        self.all_sets()  # a named emotion6 that contradicts data.emotion6_* fails here

    def all_sets(self) -> tuple[DataSetConfig, ...]:
        """Every data set of the profile: ``fer2013`` and ``emotion6`` (from ``data.fer2013``,
        ``data.emotion6`` and ``data.emotion6_*``, or the ``sets`` entry of that name), then
        the other ``sets`` in profile order; label sets and roles of fixed loaders filled in."""
        named = {s.name: s for s in self.sets}
        defaults = (DataSetConfig("fer2013", "fer2013", self.fer2013),
                    DataSetConfig("emotion6", "emotion6", self.emotion6, subsample=self.emotion6_subsample,
                                  eval_size=self.emotion6_eval_size))
        out = [_merge_default(named.pop(d.name), d) if d.name in named else d for d in defaults]
        out += named.values()
        return tuple(_with_fixed(s) for s in out)

    def get_set(self, name: str) -> DataSetConfig:
        """The set called ``name`` (``all_sets``); KeyError naming the known ones."""
        for entry in self.all_sets():
            if entry.name == name:
                return entry
        raise KeyError(f"no data set {name!r} in this profile; its sets: {[s.name for s in self.all_sets()]}")


def check_data_set(entry: DataSetConfig, where: str) -> None:
    """ConfigError naming ``where`` and the fix when ``entry`` cannot be loaded as written."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_]*", entry.name) or entry.name == "fer":
        raise ConfigError(f"{where}: name it with lower-case letters, digits and '_' (it names the subsets "
                          "<name>_all and <name>_eval_<n>; 'fer' is taken by FER-2013's subsets)")
    if entry.loader not in DATA_LOADERS:
        raise ConfigError(f"{where}: unknown loader {entry.loader!r}; use one of {list(DATA_LOADERS)}")
    if entry.name in FIXED_LOADERS and entry.loader != entry.name:
        raise ConfigError(f"{where}: the set named {entry.name!r} is the study's own and needs loader "
                          f"{entry.name!r}; give your set another name")
    if not entry.path:
        raise ConfigError(f"{where}: path is empty; give the file or folder (relative to EMOLIB_DATA_DIR)")
    if entry.loader in FIXED_LOADERS:
        label_set, role = FIXED_LOADERS[entry.loader]
        if entry.label_set not in (None, label_set) or entry.role not in (None, role):
            raise ConfigError(f"{where}: loader {entry.loader!r} always gives label set {label_set!r} and role "
                              f"{role!r}; drop label_set and role or use loader class_folders/manifest")
    for key, value in (("label_set", entry.label_set), ("role", entry.role)):
        if value is None and entry.loader not in FIXED_LOADERS:
            raise ConfigError(f"{where}: loader {entry.loader!r} needs {key}: say which "
                              + ("label set its classes belong to" if key == "label_set" else
                                 f"role it plays, one of {list(DATA_ROLES)}"))
    if entry.role is not None and entry.role not in DATA_ROLES:
        raise ConfigError(f"{where}: unknown role {entry.role!r}; use one of {list(DATA_ROLES)}")
    if entry.label_set is not None:
        try:
            get_label_set(entry.label_set)
        except KeyError as err:
            raise ConfigError(f"{where}: {err.args[0]}") from None  # the message names the known sets and the fix
    if entry.columns and entry.loader != "manifest":
        raise ConfigError(f"{where}: columns is an option of loader 'manifest' only; remove it")
    unknown = sorted(set(entry.columns) - set(MANIFEST_COLUMNS))
    if unknown:
        raise ConfigError(f"{where}: columns renames {list(MANIFEST_COLUMNS)}, not {unknown}; write e.g. "
                          "{label: emotion} for a CSV whose label column is 'emotion'")
    if entry.image_id not in IMAGE_ID_FORMS or (entry.image_id != "path" and entry.loader != "class_folders"):
        raise ConfigError(f"{where}: image_id {entry.image_id!r}: class_folders sets take one of "
                          f"{list(IMAGE_ID_FORMS)}; other loaders name their ids themselves (manifest: its "
                          "image_id column)")
    if entry.loader == "fer2013" and (entry.subsample is not None or entry.eval_size is not None):
        raise ConfigError(f"{where}: FER-2013 is cut by data.subsample and data.eval_size; remove subsample "
                          "and eval_size here")
    for key in ("subsample", "eval_size"):
        if getattr(entry, key) is not None and getattr(entry, key) < 1:
            raise ConfigError(f"{where}: {key} must be at least 1, or null for all images")


def _merge_default(entry: DataSetConfig, default: DataSetConfig) -> DataSetConfig:
    """A ``sets`` entry named like a default set, with the sizes of the ``data.*`` keys; the
    two may not disagree."""
    sizes = {}
    for key in ("subsample", "eval_size"):
        own, legacy = getattr(entry, key), getattr(default, key)
        if own is not None and legacy is not None and own != legacy:
            raise ConfigError(f"data.sets ({entry.name!r}): {key} {own} contradicts data.{entry.name}_{key} "
                              f"{legacy}; set it in one place")
        sizes[key] = own if own is not None else legacy
    return replace(entry, **sizes)


def _with_fixed(entry: DataSetConfig) -> DataSetConfig:
    if entry.loader not in FIXED_LOADERS:
        return entry
    label_set, role = FIXED_LOADERS[entry.loader]
    return replace(entry, label_set=label_set, role=role)


@dataclass(frozen=True)
class RestorationConfig:
    """Face restoration (notebook 02); see ``emolib.restore`` for the backend names.

    ``backends`` are compared in notebook 02 on a small preview (``preview_per_class`` faces
    per class). ``selected`` (and any ``eval_backends``) restore the evaluation subset
    (``emolib.catalog.fer_eval_name``: ``data.eval_size`` PrivateTest faces) that notebooks
    03/04 score beside ``none`` (the original 48 px faces) on the same ids.
    """

    backends: tuple[str, ...] = ("none", "bicubic")
    output_size: int = field(default=96, metadata=at_least(8))
    selected: str = "bicubic"
    eval_backends: tuple[str, ...] = ()  # restored on the evaluation subset besides `selected`
    # faces per class every backend restores for notebook 02
    preview_per_class: int = field(default=4, metadata=at_least(1))
    batch_size: int = field(default=32, metadata=at_least(1))
    gfpgan_weights_dir: str | None = None  # holds GFPGANv1.x.pth; null = torch hub checkpoints
    realesrgan_gpuid: int = field(default=-1, metadata=at_least(-1))  # -1: CPU; >= 0: Vulkan device
    realesrgan_threads: int | Literal["auto"] = 1  # ncnn instances side by side (auto: emolib.machine decides)
    unsharp_radius: float = field(default=1.5, metadata=at_least(0))  # lanczos-unsharp: Pillow UnsharpMask settings
    unsharp_percent: int = field(default=120, metadata=at_least(0))
    unsharp_threshold: int = field(default=2, metadata=within(0, 255))

    def __post_init__(self) -> None:
        check_threads(self.realesrgan_threads, "restoration.realesrgan_threads")
        for key in ("backends", "selected", "eval_backends"):
            check_names(getattr(self, key), RESTORATION_BACKENDS, f"restoration.{key}")


# training settings a CNN may override in ``cnn.per_model`` (the type each value is cast to)
PER_MODEL_KEYS = {"epochs": int, "batch_size": int, "lr": float, "weight_decay": float,
                  "optimizer": str, "warmup_epochs": float, "label_smoothing": float,
                  "class_weights": bool, "erase_p": float, "augment": bool, "patience": int,
                  "epoch_sizes": lambda sizes: tuple(int(v) for v in sizes), "precision": str}
CHOICES = {"precision": PRECISIONS, "optimizer": ("adamw", "sgd")}  # per-model keys with a fixed set of values
# keys a profile may still carry from an earlier release, and what replaced them
RENAMED_KEYS = {("cnn", "bf16_models"): "cnn.precision (auto | fp32 | bf16; auto: bf16 only where the CPU computes "
                                        "it natively) and cnn.per_model.<model>.precision"}


def check_threads(value: int | str, where: str) -> None:
    """ConfigError unless ``value`` is ``auto`` or a count of at least 1."""
    if value != AUTO and value < 1:
        raise ConfigError(f"{where}: {value!r} must be at least 1, or auto (sized from this machine's cores)")


@dataclass(frozen=True)
class CNNConfig:
    """CNN training and evaluation (notebook 03). Per-model ``widths`` (channel multiplier of
    VGG/EfficientNet; 1.0 = published) and ``stem_strides`` (downsampling of the stem; missing =
    torchvision's own) are how the quick profile buys accuracy per CPU minute."""

    models: tuple[str, ...] = ("resnet50", "efficientnet_b0", "vgg19_bn")
    weights: Literal["imagenet", "none"] = "none"
    input_size: int = field(default=48, metadata=at_least(8))
    stem: Literal["gray", "rgb"] = "gray"  # gray: 1-channel stem; rgb: gray replicated x3
    widths: dict[str, float] = field(default_factory=dict, metadata=within(0, 4, low_open=True))
    stem_strides: dict[str, int] = field(default_factory=dict, metadata=within(1, 4))
    # stratified Training images used; null = all 28,709
    train_subset: int | None = field(default=None, metadata=at_least(1))
    # stratified PublicTest images for model selection; null = all
    val_subset: int | None = field(default=None, metadata=at_least(1))
    epochs: int = field(default=10, metadata=at_least(1))
    batch_size: int = field(default=128, metadata=at_least(1))
    lr: float = field(default=1e-3, metadata=within(0, 10, low_open=True))
    weight_decay: float = field(default=5e-4, metadata=at_least(0))
    optimizer: Literal["adamw", "sgd"] = "adamw"
    # linear warm-up length, in epochs (fractions allowed)
    warmup_epochs: float = field(default=1.0, metadata=at_least(0))
    label_smoothing: float = field(default=0.1, metadata=within(0, 1, high_open=True))
    class_weights: bool = False
    erase_p: float = field(default=0.5, metadata=within(0, 1))  # random-erasing probability per image
    patience: int = field(default=5, metadata=at_least(1))
    seeds: tuple[int, ...] = field(default=(0,), metadata=at_least(0))
    # auto: bf16 autocast on a CPU that computes bf16 natively (AMX, AVX512-BF16), fp32 on other
    # CPUs, mixed precision on CUDA (emolib.machine); per model: cnn.per_model.<model>.precision
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    # per-model overrides of the training settings above, e.g. {"resnet50": {"epochs": 2}};
    # allowed keys: PER_MODEL_KEYS
    per_model: dict[str, dict[str, Any]] = field(default_factory=dict)
    threads: int | Literal["auto"] = "auto"  # torch CPU threads; auto: the cores this process may use
    # CPU only: models trained at once, each in a process with threads // parallel threads; auto:
    # one per job up to one per thread (emolib.machine); on a GPU one process trains
    parallel: int | Literal["auto"] = 1
    # with parallel > 1: the last share of a model's epochs (rounded; e.g. 0.6 of 10 = 6) train
    # after every worker has finished, in the main process with all `threads` (the core a finished
    # worker frees is not left idle). Which epochs run on how many threads follows from the config
    # alone, never from timing, so the same seed gives the same numbers.
    alone_share: dict[str, float] = field(default_factory=dict)
    test_time_flip: bool = False  # predict each face and its mirror image, average the probabilities
    # head dropout and EfficientNet stochastic depth per model; missing = the builder's own
    # (VGG 0.3, EfficientNet 0.2 and 0.2)
    dropout: dict[str, float] = field(default_factory=dict)
    stochastic_depth: dict[str, float] = field(default_factory=dict)
    # FER-2013-Hard: the probe (out of fold) is wrong, or right with p(true) below hard_threshold;
    # on quick the CNN probe is right on 60% of the test pool, so 0.3 adds 1 point to its 40% errors
    hard_threshold: float = field(default=0.3, metadata=within(0, 1))
    hard_folds: int = field(default=5, metadata=at_least(2))
    hard_probe: Literal["cnn", "hog"] = "cnn"  # faces: features of the best trained CNN, or HOG
    # Emotion6-Hard: fewer than this share of its voters chose its label
    hard_vote_share: float = field(default=0.3, metadata=within(0, 1))

    def __post_init__(self) -> None:
        check_names(self.models, CNN_MODELS, "cnn.models")
        for key in ("widths", "stem_strides"):  # may name models left out of cnn.models (a profile's override)
            for name in getattr(self, key):
                check_names(name, CNN_MODELS, f"cnn.{key}.{name}")
        for name in self.per_model:
            self._check_per_model(name)
        check_threads(self.threads, "cnn.threads")
        check_threads(self.parallel, "cnn.parallel")
        for name, share in self.alone_share.items():
            if name not in self.models or not 0.0 < share <= 1.0:
                raise ConfigError(f"cnn.alone_share.{name}: {share!r} must be a share of the epochs (0 to 1] "
                                  f"of a model in cnn.models {list(self.models)}")
        for key, allowed in (("dropout", self.models), ("stochastic_depth", ("efficientnet_b0",))):
            for name, p in getattr(self, key).items():
                if name not in allowed or not 0.0 <= p < 1.0 or (key == "dropout" and name == "resnet50"):
                    raise ConfigError(f"cnn.{key}.{name}: {p!r} is not allowed; give a probability in [0, 1) "
                                      f"for a model of {list(allowed)} that has one (ResNet-50 has no dropout)")

    def _check_per_model(self, name: str) -> None:
        """ConfigError naming ``cnn.per_model.<name>.<key>`` for an unknown model or key, a value
        of the wrong type or outside the range of the setting it overrides."""
        if name not in self.models:
            raise ConfigError(f"cnn.per_model.{name}: {name!r} is not in cnn.models {list(self.models)}")
        unknown = sorted(set(self.per_model[name]) - set(PER_MODEL_KEYS))
        if unknown:
            raise ConfigError(f"cnn.per_model.{name}: unknown key(s) {unknown}; allowed: {sorted(PER_MODEL_KEYS)}")
        for key, value in self.per_model[name].items():
            where = f"cnn.per_model.{name}.{key}"
            try:
                cast = PER_MODEL_KEYS[key](value)
            except (TypeError, ValueError):
                raise ConfigError(f"{where}: {value!r} is not a valid {key}") from None
            if key in CHOICES and cast not in CHOICES[key]:
                raise ConfigError(f"{where}: {cast!r} is not one of {list(CHOICES[key])}")
            bounds = {f.name: f.metadata.get("bounds") for f in fields(self)}.get(key)
            if bounds:
                check_bounds(cast, bounds, where)
        self._check_epoch_sizes(name)

    def _check_epoch_sizes(self, name: str) -> None:
        sizes, epochs = self.overrides_for(name).get("epoch_sizes", ()), self.epochs_of(name)
        if sizes and (len(sizes) != epochs or sizes[-1] != self.input_size or min(sizes) < 8):
            raise ConfigError(
                f"cnn.per_model.{name}.epoch_sizes {list(sizes)}: give one input size (>= 8 px) per "
                f"epoch ({epochs}), the last equal to cnn.input_size ({self.input_size}), which "
                "validation and prediction use")

    def epochs_of(self, name: str) -> int:
        """``name``'s epochs: its ``per_model`` override, else ``epochs``."""
        return self.overrides_for(name).get("epochs", self.epochs)

    def precision_of(self, name: str) -> str:
        """``name``'s precision as asked (auto | fp32 | bf16): its ``per_model`` override, else
        ``precision``; ``emolib.machine.plan_machine`` decides what auto becomes here."""
        return self.overrides_for(name).get("precision", self.precision)

    def alone_epochs(self, name: str) -> int:
        """How many of ``name``'s last epochs train after the workers (``alone_share``)."""
        return round(self.alone_share.get(name, 0.0) * self.epochs_of(name))

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
    image_max_side: int | None = field(default=None, metadata=at_least(1))
    image_format: Literal["png", "jpeg"] = "png"
    concurrency: int = field(default=4, metadata=at_least(1))
    guided: Literal["none", "choice", "json_schema"] = "none"

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"endpoint {self.model!r}: base_url {self.base_url!r} must start with http(s)://")
        if self.concurrency < 1 or (self.image_max_side is not None and self.image_max_side < 1):
            raise ConfigError(f"endpoint {self.model!r}: concurrency and image_max_side must be >= 1")


# what a recorded-answers file may hold (emolib.vlm.recorded_files), and how its answer is read
RECORDED_FILE_COLUMNS = ("image_id", "raw_answer", "ranked", "y_true")
RECORDED_ANSWER_MODES = ("raw", "first_ranked")


@dataclass(frozen=True)
class RecordedFileConfig:
    """One file of answers recorded elsewhere (``vlm.recorded_files``; format and join rules:
    ``emolib.vlm.recorded_files``). ``path`` is relative to the data root; ``answer``: ``raw``
    parses ``raw_answer``, ``first_ranked`` the first label of ``ranked``; ``columns`` maps a
    format column to the file's own name for it (``{image_id: name, y_true: gt}``)."""

    model: str
    set: str
    path: str
    label_set: str
    answer: Literal["raw", "first_ranked"] = "raw"
    columns: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        entry = f"vlm.recorded_files entry {{model: {self.model}, set: {self.set}, path: {self.path}}}"
        for key in ("model", "set"):  # both name the subset <set>_<model> and its file
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", getattr(self, key)):
                raise ConfigError(f"{entry}: {key} {getattr(self, key)!r} must be letters, digits, '.', '_' or '-'")
        if not self.path.strip():
            raise ConfigError(f"{entry}: path is empty; give the file (relative to EMOLIB_DATA_DIR)")
        try:
            get_label_set(self.label_set)
        except KeyError as err:
            raise ConfigError(f"{entry}: {err.args[0]}; name one of them or add the label set") from None
        unknown = sorted(set(self.columns) - set(RECORDED_FILE_COLUMNS))
        if unknown:
            raise ConfigError(f"{entry}: columns maps unknown format column(s) {unknown}; "
                              f"format columns: {list(RECORDED_FILE_COLUMNS)}")


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
    recorded: tuple[str, ...] = ("gpt4v",)  # shipped folders recorded/<model>/ (FER+, ArtPhoto, Abstract)
    # answers of any model on any set, one file each; out of the config hash while empty
    recorded_files: tuple[RecordedFileConfig, ...] = field(default=(), metadata={"omit_default": True})
    batch_size: int = field(default=32, metadata=at_least(1))
    max_new_tokens: int = field(default=64, metadata=at_least(1))
    temperature: float = field(default=0.0, metadata=within(0, 2))
    concurrency: int = field(default=4, metadata=at_least(1))
    # SBERT cosine needed to map a free answer to a label
    embedding_threshold: float = field(default=0.6, metadata=within(0, 1, low_open=True))
    # training images of the CLIP linear probe; null = all
    probe_train_size: int | None = field(default=2000, metadata=at_least(1))
    # inverse L2 strength of the probe's logistic regression
    probe_c: float = field(default=1.0, metadata=within(0, None, low_open=True))
    restored: bool = True  # also score the restored faces (restoration.selected) if available
    hf_trust_remote_code: bool = False  # run a cached model's own code (Phi-3.5-Vision needs it)
    request_timeout_s: float = field(default=60.0, metadata=within(0, None, low_open=True))
    max_retries: int = field(default=4, metadata=at_least(0))  # retries after the first attempt on 429/5xx/timeouts
    # backoff: base * 2**attempt (or the server's Retry-After)
    retry_base_s: float = field(default=1.0, metadata=at_least(0))
    json_mode: bool = True  # ask OpenAI-compatible servers for response_format json_object
    # torch's CPU threads for the VLM stages; auto: the cores this process may use; null = leave as is
    torch_threads: int | Literal["auto"] | None = None
    random_weights_ok: bool = False  # smoke only: random-weight stand-ins, flagged in every table
    random_image_size: int = field(default=64, metadata=at_least(16))  # input size of random-weight CLIP stand-ins
    random_context_length: int = field(default=32, metadata=at_least(8))  # text context of random-weight CLIP stand-ins
    # CLIP class words and templates per label set, by name from emolib/vlm/templates.yaml
    # `clip_prompts` (e.g. {fer7: clip_benchmark}); a set not named here uses its default there
    clip_prompts: dict[str, str] = field(default_factory=dict)
    # generative prompt per label set: a role (evoked | faces) or a prompt name of
    # emolib/vlm/templates.yaml `generative` (e.g. {myset: evoked}); a set not named here uses its
    # default there, and a label set of your own the role of its data sets (filled in by Profile);
    # out of the config hash while empty
    generative_prompts: dict[str, str] = field(default_factory=dict, metadata={"omit_default": True})

    def __post_init__(self) -> None:
        if self.torch_threads is not None:
            check_threads(self.torch_threads, "vlm.torch_threads")
        pairs = [(f.model, f.set) for f in self.recorded_files]
        twice = sorted({p for p in pairs if pairs.count(p) > 1})
        if twice:
            raise ConfigError(f"vlm.recorded_files: (model, set) {twice} named by more than one entry")
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
    ``order_labels`` labels asked on ``order_sample_size`` images). ``constrained_choice`` and
    ``constrained_json`` (not in the default list: only vLLM/SGLang endpoints can answer them) ask
    the base prompt again with the answer constrained to the label words."""

    variants: tuple[str, ...] = (
        "base", "positive_first", "negative_first", "permuted", "order4", "persona_positive",
        "persona_negative", "persona_neutral", "explain", "context_reasoning", "caption_then_predict",
        "no_labels")
    n_permutations: int = field(default=5, metadata=at_least(1))
    sample_size: int | None = field(default=200, metadata=at_least(1))  # stratified images of each data set; null = all
    order_labels: int = field(default=4, metadata=within(2, 6))  # labels of the all-orders design (4 -> 24 orders)
    # images (truth among those labels) asked in every order
    order_sample_size: int | None = field(default=48, metadata=at_least(1))
    # what the sweep asks: `evoked` (every evoked set of the profile), `faces` (FER-2013) and/or
    # set names of the profile (data.sets, emotion6, fer2013); resolved by Profile.prompt_sets
    datasets: tuple[str, ...] = ("evoked",)
    alpha: float = field(default=0.05, metadata=within(0, 1, low_open=True, high_open=True))

    def __post_init__(self) -> None:
        check_names(self.variants, PROMPT_FAMILIES, "prompts.variants")


@dataclass(frozen=True)
class CostConfig:
    """Cost measurement (notebook 06)."""

    # images per timed inference run
    scaling_sizes: tuple[int, ...] = field(default=(100, 300, 1000), metadata=at_least(1))
    scaling_models: tuple[str, ...] | None = None  # "cnn:resnet50", "clip:ViT-B-32/openai"; null = all
    scaling_batch_size: int = field(default=32, metadata=at_least(1))
    # rounds over all sizes; the fastest round per size is fitted
    scaling_repeats: int = field(default=2, metadata=at_least(1))
    scaling_threads: int | Literal["auto"] = 1  # torch threads while timing; 1 is robust on a shared, busy CPU
    # per model; sizes shrink in proportion beyond it; null: no limit
    scaling_budget_s: float | None = field(default=120.0, metadata=within(0, None, low_open=True))
    # RSS sampling period inside a timed phase
    sample_interval_s: float = field(default=0.05, metadata=within(0, None, low_open=True))
    infer_phases: tuple[str, ...] = ("infer",)  # phase names that count as inference
    train_phases: tuple[str, ...] = ("train",)  # phase names that count as training

    def __post_init__(self) -> None:
        check_threads(self.scaling_threads, "cost.scaling_threads")


@dataclass(frozen=True)
class HumanEvalConfig:
    """Error sampling and annotation (notebook 07)."""

    n_samples: int = field(default=500, metadata=at_least(1))  # errors drawn for annotation (the seed study used 500)
    allocation: Literal["equal", "proportional"] = "equal"  # per (model, category) stratum
    models: tuple[str, ...] = ()  # models whose errors are sampled; empty = every model found
    annotator: str = "annotator_1"  # names the annotation file of the live annotator
    annotations_dir: str | None = None  # null = <sample folder>/annotations
    # display width of an image in the annotator and sheet, pixels
    image_width: int = field(default=240, metadata=at_least(16))
    plausibility_thresholds: tuple[float, ...] = field(default=(0.1, 0.3), metadata=within(0, 1))


@dataclass(frozen=True)
class Profile:
    """One run of the study: its name, seed, device and every stage's settings."""

    name: str
    seed: int = field(default=0, metadata=at_least(0))
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps (emolib.machine)
    # auto: a model's missing weights are downloaded on first use when online; offline: never
    # (fetch them ahead with `emolib fetch <profile>`); either way a model without them is "unavailable"
    weights: Literal["auto", "offline"] = "auto"
    bootstrap_samples: int = field(default=1000, metadata=at_least(1))
    data: DataConfig = field(default_factory=DataConfig)
    restoration: RestorationConfig = field(default_factory=RestorationConfig)
    cnn: CNNConfig = field(default_factory=CNNConfig)
    vlm: VLMConfig = field(default_factory=VLMConfig)
    prompts: PromptStudyConfig = field(default_factory=PromptStudyConfig)
    cost: CostConfig = field(default_factory=CostConfig)
    human_eval: HumanEvalConfig = field(default_factory=HumanEvalConfig)
    # label sets of your own: YAML files (relative to this profile's folder) and/or inline
    # mappings {name: {description, labels}}; registered by load_profile (README "Your own label sets")
    label_sets: tuple[str | dict[str, Any], ...] = ()

    def __post_init__(self) -> None:
        self.prompt_sets()  # an unknown or unsweepable prompts.datasets entry fails at load
        # imported here: emolib.vlm imports this module
        from emolib.vlm.templates import check_generative_prompts, role_generative_prompts

        check_generative_prompts(self.vlm.generative_prompts)
        chosen = role_generative_prompts(self.vlm.generative_prompts,
                                         [(s.name, s.label_set, s.role) for s in self.data.all_sets()])
        if chosen != self.vlm.generative_prompts:  # frozen: set once, so backends, hashes and the sweep agree
            object.__setattr__(self, "vlm", replace(self.vlm, generative_prompts=chosen))

    def prompt_sets(self) -> tuple[DataSetConfig, ...]:
        """The data sets the prompt sweep asks (``prompts.datasets``), each once, in order:
        ``evoked`` is every set of role evoked (``data.all_sets``), ``faces`` FER-2013, a name
        that set. ConfigError naming the key and the known sets for an unknown name or a faces
        set other than FER-2013 (notebook 01 stores evaluation subsets for FER-2013 and the
        evoked sets only, and the sweep draws from them)."""
        sets, out = self.data.all_sets(), {}
        by_name = {s.name: s for s in sets}
        for entry in self.prompts.datasets:
            if entry in PROMPT_SET_GROUPS:
                chosen = [s for s in sets if s.role == "evoked"] if entry == "evoked" else [by_name["fer2013"]]
            elif entry in by_name:
                chosen = [by_name[entry]]
            else:
                raise ConfigError(f"prompts.datasets: unknown data set {entry!r}; use {list(PROMPT_SET_GROUPS)} "
                                  f"or a set of this profile {sorted(by_name)}")
            for spec in chosen:
                if spec.role != "evoked" and spec.name != "fer2013":
                    raise ConfigError(f"prompts.datasets: {spec.name!r} has role {spec.role!r}; the sweep asks "
                                      "FER-2013 (faces) and the evoked sets, whose evaluation subsets notebook 01 "
                                      "stores")
                out.setdefault(spec.name, spec)
        return tuple(out.values())


PROMPT_SET_GROUPS = ("evoked", "faces")  # prompts.datasets words that name several sets


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
    for (section, key), now in RENAMED_KEYS.items():
        if key in (merged.get(section) or {}):
            raise ConfigError(f"{path}: {section}.{key} is no longer a setting; use {now}")
    # before the settings are built: data sets and recorded answers may name these label sets
    register_profile_label_sets(merged.get("label_sets", []), path.parent, str(path))
    try:
        profile = build_config(Profile, merged, where=str(path))
    except ConfigError as err:  # a section's own check names the key; the file is added here
        raise (err if str(err).startswith(str(path)) else ConfigError(f"{path}: {err}")) from None
    check_device(profile.device, f"{path}: device")
    if check_machine:
        resolve_device(profile.device, f"{path}: device")
    return profile


__all__ = ["CNNConfig", "ConfigError", "CostConfig", "DATA_LOADERS", "DATA_ROLES", "DataConfig", "DataSetConfig",
           "EndpointConfig", "HumanEvalConfig", "PER_MODEL_KEYS", "Profile", "PromptStudyConfig",
           "RecordedFileConfig", "RestorationConfig", "SubsampleConfig", "VLMConfig",
           "build_config", "config_hash", "configs_dir", "load_profile", "profile_path", "to_dict"]
