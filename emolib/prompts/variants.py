"""Prompt variants of the prompt-sensitivity study (notebook 05), generated from templates.

The base prompt is the VLM stage's generative prompt of a label set
(``emolib.templates.generative_prompt``, templates in ``emolib/templates.yaml``: a built-in
set's default, or the profile's ``vlm.generative_prompts`` choice, passed as ``selection``, which
names the prompt of a label set of the user's own); every other variant is derived from it with
the data in ``emolib/prompts/variants.yaml``:

- ``base``: labels in the label set's order;
- ``positive_first`` / ``negative_first``: labels grouped by sentiment (set order inside a group);
- ``permuted_1`` .. ``permuted_k``: seeded random permutations (distinct, none equal to base);
- ``order4_<a>-<b>-<c>-<d>``: every one of the 24 orders of 4 labels (2 positive and 2 negative
  where the set has them, drawn with the seed), asked on a sample whose truth is one of the 4;
- ``persona_positive`` / ``persona_negative`` / ``persona_neutral``: a persona sentence first;
- ``explain``, ``context_reasoning``, ``caption_then_predict``: other answer formats;
- ``no_labels``: the label list is dropped; free answers are mapped to labels afterwards;
- ``constrained_choice`` / ``constrained_json``: the base prompt word for word, asked with
  constrained decoding over the label words (``guided`` choice | json_schema; only
  OpenAI-compatible servers such as vLLM and SGLang can; see ``emolib.prompts.sweep``).

A variant's name depends only on its kind (and for ``order4`` on the labels in order), so the
same config always gives the same names, orders and texts.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from emolib.labels import LabelSet
from emolib.registry import PROMPT_FAMILIES
from emolib.templates import generative_template, render_prompt

VARIANTS_FILE = Path(__file__).resolve().parent / "variants.yaml"
FAMILIES = PROMPT_FAMILIES
GUIDED_MODES = ("none", "choice", "json_schema")  # EndpointConfig.guided


@dataclass(frozen=True)
class PromptVariant:
    """One prompt: ``name`` (stable), ``family`` (order | order4 | persona | format | no_labels |
    constrained), ``text`` (the full prompt), ``label_order`` (labels in the order listed; () for
    no_labels), ``guided``: the constrained decoding it is asked with (none | choice | json_schema)."""

    name: str
    family: str
    text: str
    label_order: tuple[str, ...]
    guided: str = "none"


@lru_cache(maxsize=2)
def _read_variants(path: str) -> dict[str, Any]:
    return yaml.safe_load(Path(path).read_text())


def load_variant_templates(path: str | Path | None = None) -> dict[str, Any]:
    """``variants.yaml`` as a dict (answer_marker, label_clause, personas, formats,
    generic_words)."""
    return dict(_read_variants(str(path or VARIANTS_FILE)))


def base_template(label_set: LabelSet, selection: Mapping[str, str] | None = None) -> str:
    """The raw generative template (with ``{labels}``) the VLM stage uses for ``label_set``
    (``selection``: the profile's ``vlm.generative_prompts``; ConfigError naming that key when
    the label set has no prompt)."""
    return generative_template(label_set, selection)


def split_template(template: str, marker: str) -> tuple[str, str]:
    """(question, answer instruction) of a template, cut where ``marker`` starts."""
    at = template.find(marker)
    if at < 0:
        raise ValueError(f"the base prompt has no answer instruction starting with {marker!r}; "
                         "update answer_marker in emolib/prompts/variants.yaml")
    return template[:at].rstrip(), template[at:]


def sentiment_order(label_set: LabelSet, first: str) -> tuple[str, ...]:
    """Labels with sentiment ``first`` first, then the others (set order inside each group)."""
    names = label_set.names
    return tuple([n for n in names if label_set.sentiment(n) == first]
                 + [n for n in names if label_set.sentiment(n) != first])


def permuted_orders(names: tuple[str, ...], k: int, seed: int) -> list[tuple[str, ...]]:
    """``k`` distinct seeded permutations of ``names``, none equal to ``names`` itself
    (fewer if the list has fewer distinct orders)."""
    rng = np.random.default_rng(seed)
    limit = int(np.prod(range(1, len(names) + 1))) - 1
    seen, out = {tuple(names)}, []
    while len(out) < min(k, limit):
        order = tuple(names[i] for i in rng.permutation(len(names)))
        if order not in seen:
            seen.add(order)
            out.append(order)
    return out


def choose_order_labels(label_set: LabelSet, n: int = 4, seed: int = 0) -> tuple[str, ...]:
    """``n`` labels for the all-orders design: half positive, half negative where possible
    (drawn with ``seed``), returned in label-set order."""
    rng = np.random.default_rng(seed)
    pos = [x for x in label_set.names if label_set.sentiment(x) == "positive"]
    neg = [x for x in label_set.names if label_set.sentiment(x) != "positive"]
    n_pos = min(len(pos), n // 2)
    n_neg = min(len(neg), n - n_pos)
    n_pos = min(len(pos), n - n_neg)
    picked = set(rng.choice(pos, n_pos, replace=False)) | set(rng.choice(neg, n_neg, replace=False))
    return tuple(x for x in label_set.names if x in picked)


def all_orders(labels: tuple[str, ...]) -> list[tuple[str, ...]]:
    """Every order of ``labels`` (24 for 4), in lexicographic order of positions."""
    return list(itertools.permutations(labels))


def _listed(template: str, order: tuple[str, ...]) -> str:
    return render_prompt(template, order)


def order_variant(template: str, name: str, order: tuple[str, ...], family: str = "order") -> PromptVariant:
    """The base prompt (``template``, with ``{labels}``) with the labels listed in ``order``."""
    return PromptVariant(name, family, _listed(template, order), tuple(order))


def persona_variant(label_set: LabelSet, template: str, name: str, sentence: str) -> PromptVariant:
    text = sentence.strip() + " " + _listed(template, label_set.names)
    return PromptVariant(name, "persona", text, label_set.names)


def format_variant(label_set: LabelSet, template: str, name: str, answer_format: str, marker: str) -> PromptVariant:
    question, _ = split_template(template, marker)
    text = _listed(question + " " + answer_format.strip(), label_set.names)
    return PromptVariant(name, "format", text, label_set.names)


def no_labels_variant(template: str, data: dict[str, Any]) -> PromptVariant:
    """The base question without its label list, with the open answer format."""
    question, _ = split_template(template, data["answer_marker"])
    if data["label_clause"] not in question:
        raise ValueError(f"the base prompt lacks the label clause {data['label_clause']!r}")
    text = question.replace(data["label_clause"], "") + " " + data["formats"]["open"].strip()
    return PromptVariant("no_labels", "no_labels", text, ())


def constrained_variant(label_set: LabelSet, template: str, name: str, guided: str) -> PromptVariant:
    """The base prompt (same text, so the same question as ``base``) asked under ``guided``."""
    if guided not in GUIDED_MODES[1:]:
        raise ValueError(f"variants.yaml: constrained.{name} is {guided!r}; known modes: {GUIDED_MODES[1:]}")
    return PromptVariant(name, "constrained", _listed(template, label_set.names), label_set.names, guided)


def make_variants(label_set: LabelSet, kinds: tuple[str, ...], n_permutations: int = 5,
                  seed: int = 0, n_order_labels: int = 4,
                  selection: Mapping[str, str] | None = None) -> list[PromptVariant]:
    """The variants named by ``kinds`` (keys of ``FAMILIES``), in that order; ``permuted``
    expands to ``n_permutations`` variants and ``order4`` to every order of
    ``n_order_labels`` labels. ``selection``: the profile's ``vlm.generative_prompts`` (which
    base prompt a label set uses; ``base_template``). Raises ValueError for an unknown kind."""
    unknown = sorted(set(kinds) - set(FAMILIES))
    if unknown:
        raise ValueError(f"unknown prompt variant(s) {unknown}; known: {sorted(FAMILIES)}")
    data, template = load_variant_templates(), base_template(label_set, selection)
    out: list[PromptVariant] = []
    for kind in kinds:
        if kind == "base":
            out.append(order_variant(template, "base", label_set.names))
        elif kind in ("positive_first", "negative_first"):
            out.append(order_variant(template, kind, sentiment_order(label_set, kind.split("_")[0])))
        elif kind == "permuted":
            orders = permuted_orders(label_set.names, n_permutations, seed)
            out += [order_variant(template, f"permuted_{i + 1}", o) for i, o in enumerate(orders)]
        elif kind == "order4":
            labels = choose_order_labels(label_set, n_order_labels, seed)
            out += [order_variant(template, "order4_" + "-".join(o), o, "order4") for o in all_orders(labels)]
        elif kind.startswith("persona_"):
            out.append(persona_variant(label_set, template, kind, data["personas"][kind]))
        elif kind == "no_labels":
            out.append(no_labels_variant(template, data))
        elif kind.startswith("constrained_"):
            out.append(constrained_variant(label_set, template, kind, data["constrained"][kind]))
        else:
            out.append(format_variant(label_set, template, kind, data["formats"][kind], data["answer_marker"]))
    return out


def variants_table(variants: list[PromptVariant]) -> pd.DataFrame:
    """One row per variant: name, family, label_order ('|'-joined), n_labels, guided, text."""
    return pd.DataFrame({
        "prompt": [v.name for v in variants], "family": [v.family for v in variants],
        "label_order": ["|".join(v.label_order) for v in variants],
        "n_labels": [len(v.label_order) for v in variants], "guided": [v.guided for v in variants],
        "text": [v.text for v in variants]})


def generic_words() -> frozenset[str]:
    """Words that count as generic (not fine-grained) answers of ``no_labels``."""
    return frozenset(w.lower() for w in load_variant_templates()["generic_words"])
