"""parse_answer against answers in the forms real VLMs give (tests/data/vlm_answers.yaml)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from emolib.labels import get_label_set
from emolib.vlm.parse import json_values, load_embedder, parse_answer
from emolib.vlm.templates import class_words, clip_templates, generative_prompt, load_templates

CORPUS = yaml.safe_load((Path(__file__).parent / "data" / "vlm_answers.yaml").read_text())


@pytest.fixture(scope="module")
def embedder():
    os.environ["HF_HUB_OFFLINE"] = "1"
    return load_embedder()


def test_corpus_is_large_and_varied() -> None:
    assert len(CORPUS) >= 40
    statuses = {case["status"] for case in CORPUS}
    assert statuses == {"json", "text_match", "embedding_match", "unparseable"}


@pytest.mark.parametrize("case", CORPUS, ids=[c["answer"][:40] for c in CORPUS])
def test_parse_answer_corpus(case: dict, embedder) -> None:
    label_set = get_label_set(case["label_set"])
    parsed = parse_answer(case["answer"], label_set, embedder, threshold=0.6)
    expected = -1 if case["expected"] == "unparseable" else label_set.names.index(case["expected"])
    assert (parsed.label, parsed.status) == (expected, case["status"])


def test_without_embedder_free_words_stay_unparseable() -> None:
    parsed = parse_answer('{"prediction": "sorrowful"}', get_label_set("fer7"), None)
    assert (parsed.label, parsed.status) == (-1, "unparseable")


def test_threshold_gates_embedding_match(embedder) -> None:
    fer7 = get_label_set("fer7")
    assert parse_answer("gloomy", fer7, embedder, threshold=0.6).status == "embedding_match"
    assert parse_answer("gloomy", fer7, embedder, threshold=0.99).status == "unparseable"


def test_json_values_handles_nested_prose() -> None:
    text = 'Example: {"prediction": <word>}. Answer: ```json\n{"prediction": "fear"}\n```'
    assert json_values(text)[-1] == "fear"


def test_templates_hold_the_clip_paper_set_and_seed_prompt() -> None:
    fer7 = get_label_set("fer7")
    assert clip_templates(fer7)[0] == "a photo of a {c} looking face."
    assert len(clip_templates(fer7)) == 6
    assert class_words(fer7)[5] == ("surprised",)
    prompt = generative_prompt(get_label_set("emotion6"))
    assert prompt.startswith("Imagine you are like a human, capable of feeling emotions")
    assert "[anger, disgust, fear, joy, sadness, surprise]" in prompt
    assert '{"prediction": <your predicted emotion word>}' in prompt
    assert set(load_templates()["generative"]) >= {"classification", "classification_faces"}
