"""One interface for every VLM backend, the status of each model, and ``predict``.

A backend is built from a ``ModelSpec`` (``"clip:ViT-B-32/openai"``, ``"hf:Qwen/Qwen2-VL-2B-Instruct"``,
``"openai:gpt-4o"``, ``"recorded:gpt4v"``). ``load_backend`` returns a ready backend or raises
``ModelUnavailable`` with the reason (weights not cached, endpoint unreachable, no API key);
``model_status`` turns that into a row of the status table. Backends answer
``predict(image_set, label_set, prompt, prompt_name)`` with a predictions table
(``emolib.predictions.COLUMNS``), going through a ``ResponseCache`` so that a rerun makes no
model calls.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from emolib.config import VLMConfig
from emolib.data import ImageSet
from emolib.labels import LabelSet
from emolib.vlm.types import AVAILABLE, DEFAULT_PROMPT, UNAVAILABLE, Backend, ModelSpec, ModelUnavailable


def model_specs(config: VLMConfig) -> list[ModelSpec]:
    """Every model a profile asks for, in config order."""
    return ([ModelSpec("clip", m) for m in config.clip_models]
            + [ModelSpec("hf", m) for m in config.hf_models]
            + [ModelSpec("openai", m) for m in config.openai_models]
            + [ModelSpec("recorded", m) for m in config.recorded])


def _load_clip(spec: ModelSpec, config: VLMConfig, cache, device: str, weights: str) -> Backend:
    from emolib.vlm.clip import load_clip_backend

    return load_clip_backend(spec, config, cache=cache, device=device, weights=weights)


def _load_hf(spec: ModelSpec, config: VLMConfig, cache, device: str, weights: str) -> Backend:
    from emolib.vlm.hf import load_hf_backend

    return load_hf_backend(spec, config, cache=cache, device=device, weights=weights)


def _load_openai(spec: ModelSpec, config: VLMConfig, cache, device: str, weights: str) -> Backend:  # no weights here
    from emolib.vlm.openai_api import load_openai_backend

    return load_openai_backend(spec, config, cache=cache, device=device)


def _load_recorded(spec: ModelSpec, config: VLMConfig, cache, device: str, weights: str) -> Backend:  # no weights here
    from emolib.vlm.recorded import load_recorded_backend

    return load_recorded_backend(spec, config, cache=cache, device=device)


# The registry of backends: a new backend joins here, with one loader that imports its module on
# first use (torch and transformers only when needed). Its module imports emolib.vlm.types, never
# this one, so no import goes round in a circle.
LOADERS: dict[str, Callable[..., Backend]] = {"clip": _load_clip, "hf": _load_hf, "openai": _load_openai,
                                              "recorded": _load_recorded}
BACKEND_NAMES = tuple(LOADERS)


def parse_spec(text: str) -> ModelSpec:
    """``"clip:ViT-B-32/openai"`` -> ModelSpec("clip", "ViT-B-32/openai"); ValueError naming the
    registered backends for anything else."""
    backend, sep, model = text.partition(":")
    if not sep or backend not in LOADERS:
        raise ValueError(f"model spec {text!r} must be '<backend>:<model>', backend in {BACKEND_NAMES}")
    return ModelSpec(backend, model)


def load_backend(spec: ModelSpec | str, config: VLMConfig, cache=None, device: str = "cpu",
                 weights: str = "auto") -> Backend:
    """A ready backend for ``spec``; raises ``ModelUnavailable`` with the reason. ``weights``
    is the profile's ``weights`` setting: ``auto`` fetches missing weights on first use,
    ``offline`` never downloads (a missing model is unavailable with the fetch command)."""
    spec = parse_spec(spec) if isinstance(spec, str) else spec
    return LOADERS[spec.backend](spec, config, cache, device, weights)


def model_status(spec: ModelSpec, config: VLMConfig, device: str = "cpu",
                 loaded: dict[str, Backend] | None = None, weights: str = "auto") -> dict[str, str]:
    """One status row: backend, model, status (available | unavailable), reason, note.

    A backend that loads is kept in ``loaded`` (keyed by ``str(spec)``) for reuse.
    """
    row = {"backend": spec.backend, "model": spec.model, "status": AVAILABLE, "reason": "",
           "note": spec.note}
    try:
        backend = load_backend(spec, config, device=device, weights=weights)
    except ModelUnavailable as err:
        row.update(status=UNAVAILABLE, reason=str(err))
        return row
    if loaded is not None:
        loaded[str(spec)] = backend
    return row


def status_table(config: VLMConfig, device: str = "cpu",
                 loaded: dict[str, Backend] | None = None) -> pd.DataFrame:
    """The status table of every model of a profile (loads each one once)."""
    rows = [model_status(s, config, device, loaded) for s in model_specs(config)]
    return pd.DataFrame(rows, columns=["backend", "model", "status", "reason", "note"])


def predict(backend_model: ModelSpec | str | Backend, image_set: ImageSet, label_set: LabelSet,
            prompt: str | tuple[str, ...] | None = None, prompt_name: str = DEFAULT_PROMPT,
            config: VLMConfig | None = None, cache=None, device: str = "cpu") -> pd.DataFrame:
    """Predictions table of one model on ``image_set`` over ``label_set``.

    ``prompt``: for CLIP a tuple of templates with ``{c}`` (default: the label set's set in
    prompts.yaml); for generative backends the full prompt text (default: the label set's
    JSON classification prompt). ``prompt_name`` is written into the table's ``prompt`` column.
    Responses go through ``cache`` (a ``ResponseCache``) keyed by backend, model, prompt
    text, image hash and generation settings.
    """
    if isinstance(backend_model, ModelSpec | str):
        backend_model = load_backend(backend_model, config or VLMConfig(), cache=cache, device=device)
    elif cache is not None:
        backend_model.cache = cache
    return backend_model.predict(image_set, label_set, prompt, prompt_name)
