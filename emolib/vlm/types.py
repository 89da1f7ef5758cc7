"""The types every VLM backend shares, in a module that imports no backend: ``ModelSpec``
(which model, through which backend), ``ModelUnavailable`` (why a model cannot be used here),
the ``Backend`` protocol and the status words. The backends import these; ``emolib.vlm.backends``
holds the registry of backends that loads them (``LOADERS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import pandas as pd

from emolib.data import ImageSet
from emolib.labels import LabelSet

RANDOM_FLAG = "random weights — measures nothing"
DEFAULT_PROMPT = "default"  # the stage's own prompt (templates.yaml); variants are named in emolib.prompts
# LAION CLIP_benchmark's FER-2013 prompts (templates.yaml clip_prompts), and the prompt column of
# the rows scored by its protocol (vlm.clip_benchmark_models, emolib.vlm.published)
CLIP_BENCHMARK_PROMPT = "clip_benchmark"
AVAILABLE, UNAVAILABLE = "available", "unavailable"


class ModelUnavailable(RuntimeError):
    """A model that cannot be used here; ``str(err)`` is the reason shown in the status table."""


@dataclass(frozen=True)
class ModelSpec:
    """``backend`` (clip | hf | openai | recorded) and the backend's own model name."""

    backend: str
    model: str

    def __str__(self) -> str:
        return f"{self.backend}:{self.model}"

    @property
    def is_random(self) -> bool:
        return (self.backend == "clip" and self.model.endswith("/random")) or self.model.startswith("tiny-random")

    @property
    def note(self) -> str:
        """What a table must say beside this model's numbers ('' for real weights)."""
        return RANDOM_FLAG if self.is_random else ""


class Backend(Protocol):
    """What every backend offers."""

    spec: ModelSpec

    def predict(self, image_set: ImageSet, label_set: LabelSet, prompt: str | tuple[str, ...] | None,
                prompt_name: str) -> pd.DataFrame: ...
