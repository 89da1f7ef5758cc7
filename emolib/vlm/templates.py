"""Prompt templates of the VLM stage, read from ``emolib/vlm/templates.yaml`` (data, not code).

API (stable; the prompt study of notebook 05 builds on it):

- ``load_templates(path=None) -> dict``: the whole YAML file as a dict with keys
  ``clip_templates`` ({set name: [template with "{c}"]}), ``default_clip_templates``
  ({label set: set name}), ``class_words`` ({label set: {label: [words]}}), ``generative``
  ({name: prompt with "{labels}"}) and ``default_generative`` ({label set: name}).
- ``clip_templates(label_set, name=None) -> tuple[str, ...]``: a CLIP template set (default:
  the label set's default set).
- ``class_words(label_set) -> tuple[tuple[str, ...], ...]``: per label (label-set order) the
  words put into CLIP prompts.
- ``generative_prompt(label_set, name=None, label_words=None) -> str``: a generative prompt
  with its ``{labels}`` filled by ``label_words`` (default: the label set's names, in order,
  comma-separated). Label order and wording are the caller's to vary.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from emolib.labels import LabelSet

TEMPLATES_FILE = Path(__file__).resolve().parent / "templates.yaml"


@lru_cache(maxsize=4)
def _read_yaml(path: str) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())


def load_templates(path: str | Path | None = None) -> dict[str, Any]:
    """The template file as a dict (a fresh copy of the top level; see module docstring)."""
    return dict(_read_yaml(str(path or TEMPLATES_FILE)))


def clip_templates(label_set: LabelSet, name: str | None = None) -> tuple[str, ...]:
    """The CLIP template set ``name`` (default: the label set's), each with a ``{c}``."""
    data = load_templates()
    name = name or data["default_clip_templates"][label_set.name]
    return tuple(data["clip_templates"][name])


def class_words(label_set: LabelSet) -> tuple[tuple[str, ...], ...]:
    """Per label of ``label_set`` (in order), the words used for it in CLIP prompts."""
    words = load_templates()["class_words"].get(label_set.name, {})
    return tuple(tuple(words.get(name, [name])) for name in label_set.names)


def render_prompt(template: str, label_words: list[str] | tuple[str, ...]) -> str:
    """Fill ``{labels}`` with the comma-separated words (other braces stay as they are)."""
    return template.replace("{labels}", ", ".join(label_words))


def generative_prompt(label_set: LabelSet, name: str | None = None,
                      label_words: list[str] | tuple[str, ...] | None = None) -> str:
    """The generative prompt ``name`` (default: the label set's) with its label list filled."""
    data = load_templates()
    name = name or data["default_generative"][label_set.name]
    return render_prompt(data["generative"][name], label_words or label_set.names)
