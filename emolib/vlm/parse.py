"""Turn a model's free-text answer into a label: JSON, then synonyms, then text, then SBERT.

``parse_answer(text, label_set)`` tries, in order:

1. JSON: every ``{...}`` object in the text (code fences, single quotes, unquoted values and
   prose around it are tolerated); the value of the first prediction-like key
   (``prediction``, ``emotion``, ``label``, ...). Several objects that name different labels
   are ambiguous -> no JSON answer. Status ``json``.
2. The value (or the whole text) through the label set's synonyms; cue phrases
   ("the answer is X", "emotion: X"); a label word alone as the first sentence; else the one label
   the text mentions (mentions after "not"/"no" are ignored). Status ``text_match``.
3. The extracted answer word(s) (the JSON value, the word after a cue phrase, or the words of
   an answer of at most ``MAX_EMBED_WORDS`` words; never the raw text around them) are embedded
   with a sentence embedder and given the nearest label if the cosine similarity reaches
   ``threshold`` (the profile's ``vlm.embedding_threshold``). Status ``embedding_match``.
4. Otherwise ``unparseable`` (label -1): counted as wrong, never dropped, never guessed;
   ``ParsedAnswer.reason`` says why. An empty answer, a number, punctuation, an empty or
   non-word JSON value (``{"prediction": ""}``, ``{"prediction": 3}``) have no word to
   embed and are unparseable at once.
Refusals ("I cannot determine ...") with no label in them are ``unparseable`` at once.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass

import pandas as pd

from emolib.data import ImageSet
from emolib.labels import LabelSet, normalize_label
from emolib.predictions import image_columns, make_predictions
from emolib.vlm.embed import Embedder, nearest_label
from emolib.vlm.types import ModelSpec

PREDICTION_KEYS = ("prediction", "predicted_emotion", "predicted emotion", "emotion", "label",
                   "answer", "class", "category", "predicted_label", "result")
NEGATIONS = {"not", "no", "nor", "neither", "without", "isn't", "isnt", "doesn't", "don't", "never"}
REFUSAL = re.compile(
    r"\b(cannot|can't|can not|unable|impossible|not possible|sorry|not sure|unclear|"
    r"difficult to (say|determine|tell)|hard to (say|determine|tell)|as an ai)\b", re.I)
CUE = re.compile(
    r"\b(?:answer|prediction|emotion|label|classification|category)\b[^a-z\n]{0,4}"
    r"(?:is|would be|:|=)\s*(?:most likely|probably|likely)?\s*[\"'*\[(]*([a-z][a-z-]*)", re.I)
FENCE = re.compile(r"```[a-zA-Z]*")
MAX_EMBED_WORDS = 6
# words that frame an answer rather than give it ("Answer: 3" has no answer word)
FRAME_WORDS = {"answer", "prediction", "predicted", "emotion", "label", "class", "category", "result",
               "the", "a", "an", "is", "my", "final"}


@dataclass(frozen=True)
class ParsedAnswer:
    """``label``: index into the label set (-1 none); ``status``: json | text_match |
    embedding_match | unparseable; ``word``: what the label was read from; ``similarity``:
    the cosine of an embedding match (or of the nearest label when it fell short);
    ``reason``: why an answer is unparseable (None when it was read)."""

    label: int
    status: str
    word: str | None = None
    similarity: float | None = None
    reason: str | None = None


def unparsed(reason: str, word: str | None = None, similarity: float | None = None) -> ParsedAnswer:
    return ParsedAnswer(-1, "unparseable", word, similarity, reason)


# ----------------------------------------------------------------------------- JSON
def _balanced_objects(text: str) -> list[str]:
    """Substrings ``{...}`` with balanced braces (quotes respected), outermost only."""
    found, depth, start, quote = [], 0, 0, None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote and text[i - 1] != "\\":
                quote = None
            continue
        if ch == '"' and depth:
            quote = ch
        elif ch == "{":
            start = i if depth == 0 else start
            depth += 1
        elif ch == "}" and depth:
            depth -= 1
            if depth == 0:
                found.append(text[start:i + 1])
    return found


def _load_object(raw: str) -> dict | None:
    for attempt in (raw, raw.replace("'", '"')):
        try:
            value = json.loads(attempt)
            return value if isinstance(value, dict) else None
        except json.JSONDecodeError:
            pass
    try:
        value = ast.literal_eval(raw)
        return value if isinstance(value, dict) else None
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        pass
    # Unquoted values: {"prediction": sad} or {prediction: sad}
    match = re.search(r"[\"']?(\w[\w ]*)[\"']?\s*:\s*[\"']?([A-Za-z][A-Za-z -]*)", raw)
    return {match.group(1): match.group(2).strip()} if match else None


_NO_KEY = object()  # an object without a prediction-like key (e.g. only "reasoning")


def _value_of(obj: dict):
    """The raw prediction value of one object (a stripped string, or whatever non-string the
    model put there: None, a number, ...), or ``_NO_KEY``."""
    lowered = {str(k).strip().lower(): v for k, v in obj.items()}
    for key in PREDICTION_KEYS:
        if key in lowered:
            value = lowered[key]
            break
    else:
        strings = [v for v in obj.values() if isinstance(v, str)]
        if len(obj) != 1 or not strings:
            return _NO_KEY
        value = strings[0]
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    return value.strip() if isinstance(value, str) else value


def json_answers(text: str) -> list:
    """The raw prediction value of every JSON-like object in ``text`` that has one, in order:
    strings (stripped) and also empty or non-string values (``""``, ``None``, ``3``)."""
    cleaned = FENCE.sub(" ", text)
    objects = (_load_object(raw) for raw in _balanced_objects(cleaned))
    return [v for v in (_value_of(o) for o in objects if o) if v is not _NO_KEY]


def json_values(text: str) -> list[str]:
    """The non-empty string prediction values of every JSON-like object in ``text`` (in order)."""
    return [v for v in json_answers(text) if isinstance(v, str) and v]


# ----------------------------------------------------------------------------- words
def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z][a-z'-]*", text.lower())


def answer_words(text: str) -> list[str]:
    """The words of an answer without those that only frame it: ``"Answer: 3"`` -> ``[]``."""
    return [t for t in _tokens(text) if t not in FRAME_WORDS]


def no_word_reason(value) -> str:
    """Why an answer (a JSON value or the whole text) holds no word to read a label from."""
    if value is None or (isinstance(value, str | list | tuple | dict) and not value):
        return "empty answer"
    if isinstance(value, bool) or not isinstance(value, str):
        return f"the answer is {type(value).__name__} {value!r}, not a word"
    if re.search(r"\d", value):
        return f"the answer {value!r} is a number, not a word"
    return f"the answer {value!r} holds no word"


def resolve_word(word: str, label_set: LabelSet) -> str | None:
    """The label a word or short phrase names: itself/synonym, else its one label token."""
    found = normalize_label(re.sub(r"[^a-zA-Z -]", "", word), label_set)
    if found:
        return found
    hits = {h for h in (normalize_label(t, label_set) for t in _tokens(word)) if h}
    return hits.pop() if len(hits) == 1 else None


def mentioned_labels(text: str, label_set: LabelSet) -> list[str]:
    """Labels mentioned in ``text``, in order, leaving out those negated just before."""
    tokens = _tokens(text)
    out = []
    for i, tok in enumerate(tokens):
        label = normalize_label(tok.strip("'-"), label_set)
        if label and not NEGATIONS.intersection(tokens[max(0, i - 3):i]):
            out.append(label)
    return out


def match_text(text: str, label_set: LabelSet) -> str | None:
    """A label read from prose: cue phrase, opening word, or the only label mentioned."""
    cue = CUE.search(text)
    if cue and (found := resolve_word(cue.group(1), label_set)):
        return found
    opening = _tokens(re.split(r"[.!\n:;]", text.strip(), maxsplit=1)[0])
    if len(opening) == 1 and (found := normalize_label(opening[0], label_set)):
        return found  # "Angry. The brows ..." : a label alone as the first sentence
    distinct = set(mentioned_labels(text, label_set))
    return distinct.pop() if len(distinct) == 1 else None


# ----------------------------------------------------------------------------- entry point
def parse_answer(text: str | None, label_set: LabelSet, embedder: Embedder | None = None,
                 threshold: float = 0.5) -> ParsedAnswer:
    """The label of one answer (see module docstring); ``embedder=None`` skips step 3.
    ``threshold``: the cosine an embedding match needs, in (0, 1] (0 would map any text)."""
    if embedder is not None and not 0 < threshold <= 1:
        raise ValueError(f"embedding threshold must be in (0, 1]; got {threshold!r}")
    if not text or not text.strip():
        return unparsed("empty answer")
    answers = json_answers(text)
    worded = [v for v in answers if isinstance(v, str) and answer_words(v)]
    if answers and not worded:  # {"prediction": ""}, {"prediction": 3}: the answer field is empty
        return unparsed(no_word_reason(answers[0]))
    labels = {resolve_word(v, label_set) for v in worded}
    if worded and None not in labels and len(labels) == 1:
        word = labels.pop()
        return ParsedAnswer(label_set.names.index(word), "json", worded[0])
    if len({v.lower() for v in worded}) > 1:
        return unparsed(f"the JSON answers {worded} disagree")
    leftover = worded[0] if worded else None
    found = match_text(leftover or text, label_set)
    if found:
        return ParsedAnswer(label_set.names.index(found), "text_match", found)
    if leftover is None and REFUSAL.search(text):
        return unparsed("a refusal")
    phrase, why_not = _answer_phrase(text, leftover)
    if phrase is None:
        return unparsed(why_not)
    if REFUSAL.search(phrase):
        return unparsed("a refusal", phrase)
    if embedder is None:
        return unparsed(f"{phrase!r} names no label and no sentence embedder was given", phrase)
    index, sim = nearest_label(phrase, label_set, embedder)
    if sim < threshold:
        return unparsed(f"{phrase!r} is nearest to {label_set.names[index]!r} at cosine {sim:.2f}, "
                        f"below the threshold {threshold:g}", phrase, sim)
    return ParsedAnswer(index, "embedding_match", phrase, sim)


def _answer_phrase(text: str, leftover: str | None) -> tuple[str | None, str | None]:
    """(the answer word(s) to embed, None), or (None, why there are none)."""
    if leftover is not None:
        words = answer_words(leftover)
    elif _balanced_objects(FENCE.sub(" ", text)):
        return None, "a JSON answer without a prediction field, and no label named"
    else:
        words = answer_words(text)
    if not words:
        return None, no_word_reason(text.strip())
    if len(words) > MAX_EMBED_WORDS:
        return None, (f"no label named, and {len(words)} words are too many to map by embedding "
                      f"(at most {MAX_EMBED_WORDS})")
    cue = CUE.search(text) if leftover is None else None
    return (cue.group(1).lower() if cue else " ".join(words)), None  # "Answer: elated" -> "elated"


def answer_table(image_set: ImageSet, label_set: LabelSet, spec: ModelSpec, prompt_name: str,
                 answers: list[str | None], latency_s: list[float], errors: list[str | None],
                 embedder=None, threshold: float = 0.6) -> pd.DataFrame:
    """Predictions table of free-text answers (one per image, in image-set order).

    ``errors[i]`` set: the call failed after its retries -> ``parse_status == "error"``,
    ``y_pred == -1`` and the error text in ``raw_response``. Else the answer is parsed with
    ``parse_answer`` (unparseable answers stay in the table with ``y_pred == -1``).
    ``seed`` is 0: decoding is greedy, nothing is drawn at random.
    """
    parsed = [None if err else parse_answer(ans, label_set, embedder, threshold)
              for ans, err in zip(answers, errors, strict=True)]
    return make_predictions(
        **image_columns(image_set) | {"label_set": label_set.name},
        y_pred=[-1 if p is None else p.label for p in parsed], model=spec.model,
        backend=spec.backend, prompt=prompt_name, seed=0,
        raw_response=[err or ans for ans, err in zip(answers, errors, strict=True)],
        parse_status=["error" if p is None else p.status for p in parsed], latency_s=latency_s)
