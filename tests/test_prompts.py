"""Prompt variants: label lists, seeded permutations, stable names, the no-labels prompt."""

from __future__ import annotations

import re

import pytest

from emolib.labels import LABEL_SETS, SYNONYMS, get_label_set
from emolib.prompts.analysis import variant_orders
from emolib.prompts.variants import (
    FAMILIES,
    all_orders,
    choose_order_labels,
    generic_words,
    make_variants,
    permuted_orders,
    variants_table,
)
from emolib.templates import generative_prompt

ALL_KINDS = tuple(FAMILIES)


def listed_labels(text: str) -> list[str]:
    """The comma-separated words inside the prompt's [ ... ] label list."""
    lists = re.findall(r"\[([^\]]*)\]", text)
    assert len(lists) == 1, text
    return [w.strip() for w in lists[0].split(",")]


def emotion_words_outside_list(text: str) -> set[str]:
    outside = re.sub(r"\[[^\]]*\]", " ", text).lower()
    return set(re.findall(r"[a-z]+", outside)) & set(SYNONYMS)


@pytest.mark.parametrize("name", sorted(LABEL_SETS))
def test_every_variant_lists_exactly_its_labels(name):
    ls = get_label_set(name)
    variants = make_variants(ls, ALL_KINDS, n_permutations=4, seed=3)
    four = choose_order_labels(ls, 4, 3)
    for v in variants:
        if v.family == "no_labels":
            assert "[" not in v.text and v.label_order == ()
            assert emotion_words_outside_list(v.text) == set(), v.text
            assert not any(re.search(rf"\b{n}\b", v.text) for n in ls.names)
            continue
        listed = listed_labels(v.text)
        assert listed == list(v.label_order), v.name
        expected = four if v.family == "order4" else ls.names
        assert sorted(listed) == sorted(expected), v.name
        assert emotion_words_outside_list(v.text) == set(), (v.name, v.text)


def test_base_is_the_vlm_stage_prompt_and_names_are_stable():
    ls = get_label_set("emotion6")
    variants = make_variants(ls, ALL_KINDS, n_permutations=3, seed=0)
    assert variants[0].text == generative_prompt(ls)  # shares cache entries with notebook 04
    names = [v.name for v in variants if v.family != "order4"]
    assert names == ["base", "positive_first", "negative_first", "permuted_1", "permuted_2", "permuted_3",
                     "persona_positive", "persona_negative", "persona_neutral", "explain",
                     "context_reasoning", "caption_then_predict", "no_labels", "constrained_choice",
                     "constrained_json"]
    order4 = [v for v in variants if v.family == "order4"]
    assert len(order4) == 24 == len({v.name for v in order4}) == len({v.label_order for v in order4})
    assert all(v.name == "order4_" + "-".join(v.label_order) for v in order4)
    again = make_variants(ls, ALL_KINDS, n_permutations=3, seed=0)
    table = variants_table(variants)
    assert table.equals(variants_table(again))
    # the table names a variant in the predictions table's ``prompt`` column, and its orders read back
    assert table["prompt"].tolist() == [v.name for v in variants] and "variant" not in table
    assert variant_orders(table, "order4_") == {v.name: v.label_order for v in order4}


def test_sentiment_orders_group_labels():
    ls = get_label_set("mikels8")
    pos, neg = make_variants(ls, ("positive_first", "negative_first"))
    assert pos.label_order == ("amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness")
    assert neg.label_order == ("anger", "disgust", "fear", "sadness", "amusement", "awe", "contentment", "excitement")


def test_permutations_reproducible_distinct_and_not_base():
    names = get_label_set("mikels8").names
    a, b = permuted_orders(names, 10, seed=7), permuted_orders(names, 10, seed=7)
    assert a == b and len(set(a)) == 10 and names not in a
    assert all(sorted(o) == sorted(names) for o in a)
    assert permuted_orders(names, 10, seed=8) != a
    assert len(permuted_orders(("x", "y", "z"), 10, seed=0)) == 5  # 3! - 1 orders besides base


def test_order_labels_balance_sentiment_and_all_orders():
    ls = get_label_set("mikels8")
    four = choose_order_labels(ls, 4, seed=1)
    assert sorted(ls.sentiment(x) for x in four) == ["negative", "negative", "positive", "positive"]
    assert choose_order_labels(ls, 4, seed=1) == four
    orders = all_orders(four)
    assert len(orders) == 24
    for position in range(4):  # balanced: every label at every position 6 times
        assert {lab: sum(o[position] == lab for o in orders) for lab in four} == dict.fromkeys(four, 6)


def test_unknown_variant_is_refused_and_generic_words_load():
    with pytest.raises(ValueError, match="unknown prompt variant"):
        make_variants(get_label_set("fer7"), ("base", "shouting"))
    assert {"positive", "happy"} <= generic_words()


def test_constrained_variants_are_the_base_prompt_under_a_guided_mode():
    ls = get_label_set("emotion6")
    base, choice, schema = make_variants(ls, ("base", "constrained_choice", "constrained_json"))
    assert choice.text == schema.text == base.text == generative_prompt(ls)  # same question, same cache text
    assert (base.guided, choice.guided, schema.guided) == ("none", "choice", "json_schema")
    assert choice.family == schema.family == "constrained" and choice.label_order == ls.names
    table = variants_table([base, choice, schema])
    assert table.set_index("prompt")["guided"].to_dict() == {"base": "none", "constrained_choice": "choice",
                                                              "constrained_json": "json_schema"}
    assert all(v.guided == "none" for v in make_variants(ls, tuple(k for k in FAMILIES if "constrained" not in k)))
