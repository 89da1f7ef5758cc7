"""Prompt templates of the VLM stage, read from ``emolib/templates.yaml`` (data, not code).

API (stable; the prompt study of notebook 05 builds on it):

- ``load_templates(path=None) -> dict``: the whole YAML file as a dict with keys
  ``clip_templates`` ({set name: [template with "{c}"]}), ``class_words`` ({set name: {label
  word: [words]}}), ``clip_prompts`` ({name: {templates, class_words}}),
  ``default_clip_prompts`` ({label set: name}), ``generative`` ({name: prompt with
  "{labels}"}) and ``default_generative`` ({label set: name}).
- ``clip_prompts_for(label_set, selection=None) -> str``: the CLIP prompts a label set uses:
  the profile's choice (``VLMConfig.clip_prompts``, passed as ``selection``), else its default.
- ``clip_templates(label_set, name=None, prompts=None) -> tuple[str, ...]``: the template set
  ``name``, else that of the CLIP prompts ``prompts`` (default: the label set's).
- ``class_words(label_set, prompts=None) -> tuple[tuple[str, ...], ...]``: per label (label-set
  order) the words put into CLIP prompts.
- ``check_clip_prompts(selection, where)``: ConfigError for an unknown label set or prompt name.
- ``generative_prompt(label_set, name=None, label_words=None, selection=None) -> str``: a
  generative prompt with its ``{labels}`` filled by ``label_words`` (default: the label set's
  names, in order, comma-separated). Label order and wording are the caller's to vary.
- ``generative_prompt_name(label_set, selection=None) -> str``: which generative prompt a label
  set uses: the profile's choice (``VLMConfig.generative_prompts``, passed as ``selection``: a
  prompt name or a data-set role), else its default (``default_generative``); a label set of
  the user's own gets the prompt of its data sets' role (``role_generative_prompts``, filled in
  when the profile is loaded), so built-in sets keep their prompts (and cache keys) exactly.
- ``check_generative_prompts(selection, where)``: ConfigError for an unknown label set, prompt or role.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from emolib.labels import LabelSet, get_label_set, normalize_label
from emolib.schema import ConfigError

TEMPLATES_FILE = Path(__file__).resolve().parent / "templates.yaml"


@lru_cache(maxsize=4)
def _read_yaml(path: str) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())


def load_templates(path: str | Path | None = None) -> dict[str, Any]:
    """The template file as a dict (a fresh copy of the top level; see module docstring)."""
    return dict(_read_yaml(str(path or TEMPLATES_FILE)))


def clip_prompts_for(label_set: LabelSet, selection: Mapping[str, str] | None = None) -> str:
    """Name of the CLIP prompts for ``label_set``: ``selection[label_set.name]``, else the
    default of ``templates.yaml``; ConfigError naming the profile key if there is neither."""
    data = load_templates()
    name = (selection or {}).get(label_set.name) or data["default_clip_prompts"].get(label_set.name)
    if name is None:
        raise ConfigError(f"label set {label_set.name!r} has no default CLIP prompts in {TEMPLATES_FILE.name}; "
                          f"choose some in the profile, vlm.clip_prompts: {{{label_set.name}: <name>}}, "
                          f"one of {sorted(data['clip_prompts'])}")
    return name


def _prompts(name: str) -> dict[str, Any]:
    known = load_templates()["clip_prompts"]
    if name not in known:
        raise ConfigError(f"unknown CLIP prompts {name!r}; known in {TEMPLATES_FILE.name}: {sorted(known)}")
    return known[name]


def clip_templates(label_set: LabelSet, name: str | None = None, prompts: str | None = None) -> tuple[str, ...]:
    """The CLIP template set ``name``, else that of the CLIP prompts ``prompts`` (default: the
    label set's), each template with a ``{c}``."""
    name = name or _prompts(prompts or clip_prompts_for(label_set))["templates"]
    return tuple(load_templates()["clip_templates"][name])


def class_words(label_set: LabelSet, prompts: str | None = None) -> tuple[tuple[str, ...], ...]:
    """Per label of ``label_set`` (in order), the words the CLIP prompts ``prompts`` (default:
    the label set's) put into templates; ConfigError if their word set misses a label."""
    prompts = prompts or clip_prompts_for(label_set)
    words_name = _prompts(prompts)["class_words"]
    if words_name is None:
        return tuple((name,) for name in label_set.names)
    by_label: dict[str, tuple[str, ...]] = {}
    for key, words in load_templates()["class_words"][words_name].items():
        member = normalize_label(key, label_set)
        if member is not None and by_label.setdefault(member, tuple(words)) != tuple(words):
            raise ConfigError(f"{TEMPLATES_FILE.name}: class_words.{words_name} has two entries for "
                              f"{label_set.name} label {member!r}")
    missing = [n for n in label_set.names if n not in by_label]
    if missing:
        raise ConfigError(f"CLIP prompts {prompts!r} have no class words for {label_set.name} label(s) {missing} "
                          f"(class_words.{words_name} in {TEMPLATES_FILE.name}); choose other prompts in "
                          f"vlm.clip_prompts")
    return tuple(by_label[n] for n in label_set.names)


def check_clip_prompts(selection: Mapping[str, str], where: str = "vlm.clip_prompts") -> None:
    """ConfigError, naming ``where`` and the known names, for a label set or CLIP prompts that
    do not exist or prompts that lack words for a label; None if every choice can be used."""
    for set_name, prompts in selection.items():
        try:
            label_set = get_label_set(set_name)
        except KeyError as err:
            raise ConfigError(f"{where}: {err.args[0]}") from None
        try:
            class_words(label_set, prompts)
        except ConfigError as err:
            raise ConfigError(f"{where}.{set_name}: {err}") from None


def render_prompt(template: str, label_words: list[str] | tuple[str, ...]) -> str:
    """Fill ``{labels}`` with the comma-separated words (other braces stay as they are)."""
    return template.replace("{labels}", ", ".join(label_words))


def _generative_name(choice: str, where: str) -> str:
    """The prompt name a profile's choice means: a name of ``generative`` as it is, a role
    (``generative_by_role``) its prompt; ConfigError naming ``where`` and both lists else."""
    data = load_templates()
    if choice in data["generative"]:
        return choice
    if choice in data["generative_by_role"]:
        return data["generative_by_role"][choice]
    raise ConfigError(f"{where}: unknown generative prompt {choice!r}; name a role "
                      f"{sorted(data['generative_by_role'])} or a prompt of {TEMPLATES_FILE.name} "
                      f"{sorted(data['generative'])}")


def generative_prompt_name(label_set: LabelSet, selection: Mapping[str, str] | None = None) -> str:
    """Name of the generative prompt of ``label_set``: ``selection[label_set.name]`` (a prompt
    name or a role), else its default in ``templates.yaml``; ConfigError naming the profile key
    if there is neither."""
    choice = (selection or {}).get(label_set.name)
    if choice is not None:
        return _generative_name(choice, f"vlm.generative_prompts.{label_set.name}")
    data = load_templates()
    name = data["default_generative"].get(label_set.name)
    if name is None:
        raise ConfigError(f"label set {label_set.name!r} has no default generative prompt in {TEMPLATES_FILE.name}; "
                          f"label a data set of the profile with it (its role chooses the prompt) or choose one in "
                          f"the profile, vlm.generative_prompts: {{{label_set.name}: <role or prompt>}}, a role "
                          f"{sorted(data['generative_by_role'])} or a prompt {sorted(data['generative'])}")
    return name


def generative_template(label_set: LabelSet, selection: Mapping[str, str] | None = None) -> str:
    """The raw generative template (with ``{labels}``) of ``label_set`` (``generative_prompt_name``)."""
    return load_templates()["generative"][generative_prompt_name(label_set, selection)]


def generative_prompt(label_set: LabelSet, name: str | None = None,
                      label_words: list[str] | tuple[str, ...] | None = None,
                      selection: Mapping[str, str] | None = None) -> str:
    """The generative prompt ``name`` (default: the label set's, ``generative_prompt_name``
    with the profile's ``selection``) with its label list filled."""
    data = load_templates()
    template = data["generative"][name] if name else generative_template(label_set, selection)
    return render_prompt(template, label_words or label_set.names)


def check_generative_prompts(selection: Mapping[str, str], where: str = "vlm.generative_prompts") -> None:
    """ConfigError, naming ``where`` and the known names, for a label set or a prompt/role of
    ``selection`` that does not exist; None if every choice can be used."""
    for set_name, choice in selection.items():
        try:
            get_label_set(set_name)
        except KeyError as err:
            raise ConfigError(f"{where}: {err.args[0]}") from None
        _generative_name(choice, f"{where}.{set_name}")


def role_generative_prompts(selection: Mapping[str, str],
                            sets: Iterable[tuple[str, str | None, str | None]]) -> dict[str, str]:
    """``selection`` (the profile's ``vlm.generative_prompts``) plus, for each label set that
    has neither a choice there nor a default in ``templates.yaml``, the role of the data sets
    labelled with it. ``sets``: (set name, label set, role) of every data set of the profile.
    ConfigError when sets of both roles share such a label set (the profile must choose)."""
    defaults = load_templates()["default_generative"]
    roles: dict[str, dict[str, str]] = {}
    for name, label_set, role in sets:
        if label_set is not None and role is not None and label_set not in selection and label_set not in defaults:
            roles.setdefault(label_set, {}).setdefault(role, name)
    out = dict(selection)
    for label_set, by_role in roles.items():
        if len(by_role) > 1:
            raise ConfigError(f"label set {label_set!r} labels data sets of two roles ({by_role}), so its generative "
                              f"prompt is ambiguous; choose it in the profile, vlm.generative_prompts: "
                              f"{{{label_set}: evoked}} (or faces, or a prompt name of {TEMPLATES_FILE.name})")
        out[label_set] = next(iter(by_role))
    return out
