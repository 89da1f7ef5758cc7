"""Settings of the prompt sweep, the cost measurement and the human evaluation (notebooks 05-07)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from emolib.config.checks import check_threads
from emolib.registry import PROMPT_FAMILIES
from emolib.schema import at_least, check_names, within


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
