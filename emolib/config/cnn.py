"""Settings of CNN training and evaluation (notebook 03)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

from emolib.config.checks import check_threads
from emolib.machine import PRECISIONS
from emolib.registry import CNN_MODELS
from emolib.schema import ConfigError, at_least, check_bounds, check_names, within

# training settings a CNN may override in ``cnn.per_model`` (the type each value is cast to)
PER_MODEL_KEYS = {"epochs": int, "batch_size": int, "lr": float, "weight_decay": float,
                  "optimizer": str, "warmup_epochs": float, "label_smoothing": float,
                  "class_weights": bool, "erase_p": float, "augment": bool, "patience": int,
                  "epoch_sizes": lambda sizes: tuple(int(v) for v in sizes), "precision": str}
CHOICES = {"precision": PRECISIONS, "optimizer": ("adamw", "sgd")}  # per-model keys with a fixed set of values


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
        bounds = {f.name: f.metadata["bounds"] for f in fields(self) if "bounds" in f.metadata}
        for key, value in self.per_model[name].items():
            where = f"cnn.per_model.{name}.{key}"
            try:
                cast = PER_MODEL_KEYS[key](value)
            except (TypeError, ValueError):
                raise ConfigError(f"{where}: {value!r} is not a valid {key}") from None
            if key in CHOICES and cast not in CHOICES[key]:
                raise ConfigError(f"{where}: {cast!r} is not one of {list(CHOICES[key])}")
            if key in bounds:
                check_bounds(cast, bounds[key], where)
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
