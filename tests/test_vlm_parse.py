"""parse_answer against answers in the forms real VLMs give (tests/data/vlm_answers.yaml)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from emolib.labels import SYNONYMS, get_label_set
from emolib.templates import class_words, clip_templates, generative_prompt, load_templates
from emolib.vlm.embed import load_embedder
from emolib.vlm.parse import json_values, parse_answer

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


NO_WORD_ANSWERS = [  # (answer, what the reason says): nothing here may reach the embedder
    ('{"prediction": ""}', "empty answer"),
    ('{"prediction": 3}', "int 3, not a word"),
    ('{"prediction": null}', "empty answer"),
    ('{"prediction": "42"}', "is a number"),
    ('```json\n{"prediction": ""}\n```', "empty answer"),
    ('{"reasoning": "dark sky over water", "confidence": 0.4}', "without a prediction field"),
    ('""', "holds no word"),
    ('"42"', "is a number"),
    ("42", "is a number"),
    ("Answer: 3", "is a number"),
    ("...", "holds no word"),
]


def _spy(embedder, seen: list[str]):
    """The embedder, noting every text it is asked to embed."""
    def embed(texts):
        seen.extend(texts)
        return embedder(texts)
    return embed


@pytest.mark.parametrize(("answer", "why"), NO_WORD_ANSWERS, ids=[a for a, _ in NO_WORD_ANSWERS])
@pytest.mark.parametrize("label_set", ["emotion6", "fer7"])
def test_answers_without_a_word_are_unparseable_and_never_embedded(answer, why, label_set, embedder) -> None:
    """The old no_labels bug: the raw text was embedded at threshold 0.0, so {"prediction": ""}
    came out as "fear". Even at a threshold that would accept anything, nothing is embedded."""
    seen: list[str] = []
    parsed = parse_answer(answer, get_label_set(label_set), _spy(embedder, seen), threshold=1e-6)
    assert (parsed.label, parsed.status, parsed.similarity) == (-1, "unparseable", None)
    assert why in parsed.reason
    assert seen == []


@pytest.mark.parametrize(("answer", "label_set", "expected"), [
    ('{"prediction": "blissful"}', "fer7", "happy"),
    ('{"prediction": "blissful"}', "emotion6", "joy"),
    ("Blissful.", "emotion6", "joy"),
    ("Answer: sorrowful", "fer7", "sad"),
    ('{"prediction": "gloomy"}', "emotion6", "sadness"),
])
def test_only_the_answer_word_is_embedded(answer, label_set, expected, embedder) -> None:
    labels = get_label_set(label_set)
    seen: list[str] = []
    parsed = parse_answer(answer, labels, _spy(embedder, seen), threshold=0.6)
    assert (parsed.label, parsed.status) == (labels.names.index(expected), "embedding_match")
    assert parsed.similarity >= 0.6 and parsed.reason is None
    label_words = {w for w in seen if w in {*labels.names, *SYNONYMS}}
    assert [w for w in seen if w not in label_words] == [parsed.word]  # one phrase: the answer word
    assert parsed.word in {"blissful", "sorrowful", "gloomy"}


def test_below_threshold_says_which_label_and_cosine(embedder) -> None:
    parsed = parse_answer('{"prediction": "elated"}', get_label_set("emotion6"), embedder, threshold=0.6)
    assert (parsed.label, parsed.status, parsed.word) == (-1, "unparseable", "elated")
    assert parsed.similarity < 0.6
    assert parsed.reason == f"'elated' is nearest to 'joy' at cosine {parsed.similarity:.2f}, below the threshold 0.6"
    # a long free answer is not embedded as a whole
    long = parse_answer("A quiet, foggy harbour at dawn with boats resting on still water", get_label_set("emotion6"),
                        embedder, threshold=0.6)
    assert long.status == "unparseable" and long.similarity is None and "too many" in long.reason


def test_a_zero_threshold_is_refused(embedder) -> None:
    with pytest.raises(ValueError, match=r"threshold must be in \(0, 1\]"):
        parse_answer("gloomy", get_label_set("fer7"), embedder, threshold=0.0)
