"""Settings of CNN training and evaluation (notebook 03): the settings every model shares, and
each model's own (``cnn.per_model.<model>``, a typed ``ModelSettings``)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal

from emolib.config.checks import check_threads
from emolib.registry import CNN_MODELS
from emolib.schema import ConfigError, at_least, check_names, within


@dataclass(frozen=True)
class ModelSettings:
    """One CNN's own settings (``cnn.per_model.<model>``); None = the shared setting of
    ``CNNConfig`` (training keys) or the network builder's own (shape keys).

    Shape of the network: ``width`` (channel multiplier of VGG/ResNet/EfficientNet; 1.0 =
    published), ``stem_stride`` (downsampling of the stem; None = torchvision's), ``dropout``
    (head dropout; VGG 0.3, EfficientNet 0.2 by default; ResNet-50 has none) and
    ``stochastic_depth`` (EfficientNet only). Scheduling: ``alone_share``, the last share of its
    epochs trained after every worker has finished, with all threads. The rest overrides the
    training setting of the same name; ``epoch_sizes`` gives one input size per epoch
    (progressive resizing, the last equal to ``cnn.input_size``)."""

    width: float | None = field(default=None, metadata=within(0, 4, low_open=True))
    stem_stride: int | None = field(default=None, metadata=within(1, 4))
    dropout: float | None = field(default=None, metadata=within(0, 1, high_open=True))
    stochastic_depth: float | None = field(default=None, metadata=within(0, 1, high_open=True))
    alone_share: float | None = field(default=None, metadata=within(0, 1, low_open=True))
    precision: Literal["auto", "fp32", "bf16"] | None = None
    epochs: int | None = field(default=None, metadata=at_least(1))
    batch_size: int | None = field(default=None, metadata=at_least(1))
    lr: float | None = field(default=None, metadata=within(0, 10, low_open=True))
    weight_decay: float | None = field(default=None, metadata=at_least(0))
    optimizer: Literal["adamw", "sgd"] | None = None
    warmup_epochs: float | None = field(default=None, metadata=at_least(0))
    label_smoothing: float | None = field(default=None, metadata=within(0, 1, high_open=True))
    class_weights: bool | None = None
    erase_p: float | None = field(default=None, metadata=within(0, 1))
    augment: bool | None = None
    patience: int | None = field(default=None, metadata=at_least(1))
    epoch_sizes: tuple[int, ...] | None = field(default=None, metadata=at_least(8))

    def given(self) -> dict[str, Any]:
        """The settings this model sets itself (the keys that are not None), by name."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    def training_overrides(self) -> dict[str, Any]:
        """The training settings this model sets itself (``TrainSettings`` fields), by name."""
        return {key: value for key, value in self.given().items() if key not in NETWORK_KEYS}


# ModelSettings keys that shape the network, schedule the workers or pick the precision
# (decided per machine), not TrainSettings fields
NETWORK_KEYS = ("width", "stem_stride", "dropout", "stochastic_depth", "alone_share", "precision")


@dataclass(frozen=True)
class CNNConfig:
    """CNN training and evaluation (notebook 03). The settings below are shared; a model's own
    (``per_model``: width, stem stride, regularisation, schedule, precision) are how the quick
    profile buys accuracy per CPU minute. ``model(name)`` gives them typed."""

    models: tuple[str, ...] = ("resnet50", "efficientnet_b0", "vgg19_bn")
    weights: Literal["imagenet", "none"] = "none"
    input_size: int = field(default=48, metadata=at_least(8))
    stem: Literal["gray", "rgb"] = "gray"  # gray: 1-channel stem; rgb: gray replicated x3
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
    # each model's own settings, e.g. {"resnet50": {"width": 0.25, "epochs": 7}} (ModelSettings);
    # may name a model left out of cnn.models (unused then), so an override of models keeps the file valid
    per_model: dict[str, ModelSettings] = field(default_factory=dict)
    threads: int | Literal["auto"] = "auto"  # torch CPU threads; auto: the cores this process may use
    # CPU only: models trained at once, each in a process with threads // parallel threads; auto:
    # one per job up to one per thread (emolib.machine); on a GPU one process trains. With
    # parallel > 1 a model's per_model alone_share of its epochs (rounded; e.g. 0.6 of 10 = 6)
    # train after every worker has finished, in the main process with all `threads`. Which epochs
    # run on how many threads follows from the config alone, never from timing.
    parallel: int | Literal["auto"] = 1
    test_time_flip: bool = False  # predict each face and its mirror image, average the probabilities
    # FER-2013-Hard: the probe (out of fold) is wrong, or right with p(true) below hard_threshold;
    # on quick the CNN probe is right on 60% of the test pool, so 0.3 adds 1 point to its 40% errors
    hard_threshold: float = field(default=0.3, metadata=within(0, 1))
    hard_folds: int = field(default=5, metadata=at_least(2))
    hard_probe: Literal["cnn", "hog"] = "cnn"  # faces: features of the best trained CNN, or HOG
    # Emotion6-Hard: fewer than this share of its voters chose its label
    hard_vote_share: float = field(default=0.3, metadata=within(0, 1))

    def __post_init__(self) -> None:
        check_names(self.models, CNN_MODELS, "cnn.models")
        for name, own in self.per_model.items():
            check_names(name, CNN_MODELS, f"cnn.per_model.{name}")
            self._check_model(name, own)
        check_threads(self.threads, "cnn.threads")
        check_threads(self.parallel, "cnn.parallel")

    def _check_model(self, name: str, own: ModelSettings) -> None:
        """ConfigError naming ``cnn.per_model.<name>.<key>`` for regularisation the network does
        not have or progressive sizes that do not fit its epochs (types and ranges: build_config)."""
        where = f"cnn.per_model.{name}"
        if own.dropout is not None and name == "resnet50":
            raise ConfigError(f"{where}.dropout: ResNet-50 has no dropout; remove the key")
        if own.stochastic_depth is not None and name != "efficientnet_b0":
            raise ConfigError(f"{where}.stochastic_depth: only efficientnet_b0 has stochastic depth; remove the key")
        sizes, epochs = own.epoch_sizes or (), self.epochs_of(name)
        if sizes and (len(sizes) != epochs or sizes[-1] != self.input_size):
            raise ConfigError(
                f"{where}.epoch_sizes {list(sizes)}: give one input size (>= 8 px) per epoch ({epochs}), the "
                f"last equal to cnn.input_size ({self.input_size}), which validation and prediction use")

    def model(self, name: str) -> ModelSettings:
        """``name``'s own settings (all None where it sets none)."""
        return self.per_model.get(name, ModelSettings())

    def own_settings(self) -> dict[str, dict[str, Any]]:
        """The settings each model of ``models`` sets itself (None left out), by model."""
        return {name: self.model(name).given() for name in self.models}

    def width_of(self, name: str) -> float:
        """``name``'s channel multiplier (1.0 = the published network)."""
        width = self.model(name).width
        return 1.0 if width is None else width

    def epochs_of(self, name: str) -> int:
        """``name``'s epochs: its own, else ``epochs``."""
        return self.model(name).epochs or self.epochs

    def batch_size_of(self, name: str) -> int:
        """``name``'s batch size: its own, else ``batch_size``."""
        return self.model(name).batch_size or self.batch_size

    def precision_of(self, name: str) -> str:
        """``name``'s precision as asked (auto | fp32 | bf16): its own, else ``precision``;
        ``emolib.machine.plan_machine`` decides what auto becomes here."""
        return self.model(name).precision or self.precision

    def alone_epochs(self, name: str) -> int:
        """How many of ``name``'s last epochs train after the workers (its ``alone_share``)."""
        return round((self.model(name).alone_share or 0.0) * self.epochs_of(name))
