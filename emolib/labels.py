"""Label sets, their synonyms, and each label's sentiment and arousal, read from YAML.

The built-in sets and the shared vocabulary (concept -> sentiment, arousal, words, and where
each placement comes from) are data: ``emolib/label_sets.yaml``, checked when this module is
imported. A profile adds sets of its own (``label_sets:`` in the profile, see README "Your own
label sets"); ``load_profile`` registers them, and from then on ``get_label_set(name)`` (so the
loaders, metrics, answer parsing and error categories) knows them too.

- ``get_label_set(name) -> LabelSet``; ``known_label_sets() -> {name: LabelSet}``.
- ``normalize_label(word, label_set) -> member or None`` (case, punctuation, synonyms).
- ``load_label_sets(path) -> {name: LabelSet}``: a user file (top-level ``label_sets:``).
- ``register_label_set(label_set)``, ``register_profile_label_sets(entries, base_dir, where)``.

Every error is a ``LabelSetError`` (a ``ConfigError``) that names the file and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import yaml

from emolib.schema import ConfigError

Sentiment = Literal["positive", "negative", "neutral"]
Arousal = Literal["high", "low"]
SENTIMENTS: tuple[str, ...] = ("positive", "negative", "neutral")
AROUSALS: tuple[str, ...] = ("high", "low")
BUILTIN_FILE = Path(__file__).resolve().parent / "label_sets.yaml"
SET_KEYS = {"description", "source", "labels"}
LABEL_KEYS = {"name", "sentiment", "arousal", "synonyms", "source"}
CONCEPT_KEYS = {"sentiment", "arousal", "words", "source"}

# Vote columns of the Emotion6 ground truth (a file format, not a label set): six classes + neutral.
EMOTION6_DISTRIBUTION = ("anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral")


class LabelSetError(ConfigError):
    """A label set that cannot be used as written; the message names the file and the fix."""


@dataclass(frozen=True)
class LabelInfo:
    """Where a concept sits on the circumplex, and every word for it."""

    sentiment: Sentiment
    arousal: Arousal
    words: tuple[str, ...] = ()


def _check_value(value: Any, allowed: tuple[str, ...], what: str, where: str) -> None:
    if value is not None and value not in allowed:
        raise LabelSetError(f"{where}: {what} {value!r} is not one of {list(allowed)}")


def _is_word(value: Any) -> bool:
    return isinstance(value, str) and bool(value) and value == value.strip().lower()


@dataclass(frozen=True)
class LabelSet:
    """An ordered list of class names; a label is an index into ``names``.

    Per label, aligned with ``names``: ``synonyms`` (every word naming it, its name first),
    ``sentiments`` and ``arousals``. Left empty (or None for one label), they come from the
    vocabulary of ``emolib/label_sets.yaml`` when the name is one of its words; given words
    are added to the vocabulary's. ``source`` says where the labels and order come from;
    ``defined_in`` names the file (or code) that defined the set, for messages.
    """

    name: str
    names: tuple[str, ...]
    description: str = ""
    synonyms: tuple[tuple[str, ...], ...] = ()
    sentiments: tuple[Sentiment | None, ...] = ()
    arousals: tuple[Arousal | None, ...] = ()
    source: str = ""
    defined_in: str = field(default="python", compare=False)

    def __post_init__(self) -> None:
        names, where = tuple(self.names), f"{self.defined_in}: label set {self.name!r}"
        if not names:
            raise LabelSetError(f"{where} is empty; list its labels under `labels:`")
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise LabelSetError(f"{where}: label(s) {twice} listed twice; list each label once")
        if not all(_is_word(n) for n in names):
            raise LabelSetError(f"{where}: label names must be non-empty lower-case strings, got {list(names)}")
        aligned = {"synonyms": self.synonyms, "sentiments": self.sentiments, "arousals": self.arousals}
        for key, values in aligned.items():
            if values and len(values) != len(names):
                raise LabelSetError(f"{where}: {len(values)} {key} for {len(names)} labels")
        vocab = [VOCABULARY.get(SYNONYMS.get(n, "")) for n in names]
        extra = self.synonyms or ((),) * len(names)
        synonyms = tuple(tuple(dict.fromkeys([n, *(v.words if v else ()), *more]))
                         for n, v, more in zip(names, vocab, extra, strict=True))
        sentiments, arousals = (tuple(own or (getattr(v, attr) if v else None)
                                      for own, v in zip(values or (None,) * len(names), vocab, strict=True))
                                for values, attr in ((self.sentiments, "sentiment"), (self.arousals, "arousal")))
        for n, s, a in zip(names, sentiments, arousals, strict=True):
            _check_value(s, SENTIMENTS, f"label {n!r}: sentiment", where)
            _check_value(a, AROUSALS, f"label {n!r}: arousal", where)
        owner: dict[str, str] = {}
        for n, words in zip(names, synonyms, strict=True):
            for word in words:
                if not _is_word(word):
                    raise LabelSetError(f"{where}: label {n!r}: synonym {word!r} must be a lower-case word")
                if owner.setdefault(word, n) != n:
                    raise LabelSetError(f"{where}: the word {word!r} names both {owner[word]!r} and {n!r}; "
                                        "a word may name one label of a set only")
        for key, value in (("names", names), ("synonyms", synonyms), ("sentiments", sentiments),
                           ("arousals", arousals)):
            object.__setattr__(self, key, value)

    def __len__(self) -> int:
        return len(self.names)

    @cached_property
    def _member_of_word(self) -> dict[str, str]:
        return {w: n for n, words in zip(self.names, self.synonyms, strict=True) for w in words}

    def member(self, word: str) -> str | None:
        """The label a lower-case word names in this set (its name or a synonym), else None."""
        return self._member_of_word.get(word)

    def index(self, word: str) -> int:
        """Index of a label word, accepting synonyms; raises KeyError if it is not in the set."""
        found = normalize_label(word, self)
        if found is None:
            raise KeyError(f"{word!r} is not a label of {self.name} {list(self.names)}")
        return self.names.index(found)

    def sentiment(self, label: int | str) -> Sentiment:
        return self._placement(label, self.sentiments, "sentiment")

    def arousal(self, label: int | str) -> Arousal:
        return self._placement(label, self.arousals, "arousal")

    def _placement(self, label: int | str, values: tuple, what: str) -> Any:
        i = label if isinstance(label, int) else self.index(label)
        if values[i] is None:
            raise LabelSetError(f"{self.defined_in}: label set {self.name!r}: label {self.names[i]!r} has no {what}; "
                                f"define the set in YAML with `{what}:` for that label")
        return values[i]


# ----------------------------------------------------------------------------- reading YAML
def _read_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise LabelSetError(f"label-set file {path} does not exist (a profile's label_sets paths are relative "
                            "to the profile's folder)")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise LabelSetError(f"{path} is not valid YAML: {err}") from err
    if not isinstance(raw, dict):
        raise LabelSetError(f"{path} must hold a mapping with the key `label_sets:`")
    return raw


def _check_keys(raw: Any, allowed: set[str], where: str) -> None:
    if not isinstance(raw, dict):
        raise LabelSetError(f"{where}: expected a mapping with keys {sorted(allowed)}, got {raw!r}")
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise LabelSetError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")


def _parse_vocabulary(raw: Any, where: str) -> dict[str, LabelInfo]:
    """``vocabulary:`` of the package file -> {concept: LabelInfo}; a word has one concept."""
    if not isinstance(raw, dict) or not raw:
        raise LabelSetError(f"{where}: `vocabulary:` must be a non-empty mapping {{concept: {{sentiment, ...}}}}")
    vocabulary, owner = {}, {}
    for concept, entry in raw.items():
        at = f"{where}: vocabulary.{concept}"
        _check_keys(entry, CONCEPT_KEYS, at)
        _check_value(entry.get("sentiment"), SENTIMENTS, "sentiment", at)
        _check_value(entry.get("arousal"), AROUSALS, "arousal", at)
        words = entry.get("words", [])
        if not entry.get("sentiment") or not entry.get("arousal") or concept not in words:
            raise LabelSetError(f"{at}: needs a sentiment, an arousal and words that include {concept!r}")
        for word in words:
            if owner.setdefault(word, concept) != concept:
                raise LabelSetError(f"{at}: the word {word!r} is also a word of {owner[word]!r}")
        vocabulary[concept] = LabelInfo(entry["sentiment"], entry["arousal"], tuple(words))
    return vocabulary


def _parse_label(item: Any, where: str) -> tuple[str, tuple[str, ...], str | None, str | None]:
    """One ``labels:`` entry (a word, or a mapping) -> (name, extra synonyms, sentiment, arousal)."""
    item = {"name": item} if isinstance(item, str) else item
    _check_keys(item, LABEL_KEYS, where)
    name, synonyms = item.get("name"), item.get("synonyms", [])
    if not isinstance(name, str) or not isinstance(synonyms, list):
        raise LabelSetError(f"{where}: a label needs `name:` (a word) and optional `synonyms:` (a list), got {item!r}")
    if name not in SYNONYMS and not (item.get("sentiment") and item.get("arousal")):
        raise LabelSetError(f"{where}: label {name!r} is not a word of the vocabulary in {BUILTIN_FILE.name}; "
                            f"define it as {{name: {name}, sentiment: positive|negative|neutral, arousal: high|low}}")
    return name, tuple(synonyms), item.get("sentiment"), item.get("arousal")


def parse_label_sets(raw: Any, where: str) -> dict[str, LabelSet]:
    """A mapping {set name: {description, source, labels}} -> {name: LabelSet}, all checked."""
    if not isinstance(raw, dict) or not raw:
        raise LabelSetError(f"{where}: label_sets must be a non-empty mapping {{name: {{labels: [...]}}}}")
    sets = {}
    for name, entry in raw.items():
        at = f"{where}: label_sets.{name}"
        _check_keys(entry, SET_KEYS, at)
        labels = entry.get("labels") or []
        if not isinstance(labels, list):
            raise LabelSetError(f"{at}: labels must be a list, got {labels!r}")
        parsed = [_parse_label(item, f"{at}.labels[{i}]") for i, item in enumerate(labels)]
        columns = [tuple(col) for col in zip(*parsed, strict=True)] if parsed else [()] * 4
        names, synonyms, sentiments, arousals = columns
        sets[name] = LabelSet(str(name), names, str(entry.get("description", "")), synonyms, sentiments, arousals,
                              str(entry.get("source", "")).strip(), defined_in=where)
    return sets


def load_label_sets(path: str | Path) -> dict[str, LabelSet]:
    """The label sets of a user YAML file (top-level ``label_sets:`` only), checked."""
    path = Path(path)
    raw = _read_yaml(path)
    if set(raw) != {"label_sets"}:
        raise LabelSetError(f"{path}: expected only the key `label_sets:`, got {sorted(raw)} (new labels are "
                            "defined inside a set as {name, sentiment, arousal, synonyms})")
    return parse_label_sets(raw["label_sets"], str(path))


_BUILTIN = _read_yaml(BUILTIN_FILE)
VOCABULARY: dict[str, LabelInfo] = _parse_vocabulary(_BUILTIN.get("vocabulary"), str(BUILTIN_FILE))
# Words a model or a data set may use for a label -> the concept they name (shared by all sets).
SYNONYMS: dict[str, str] = {w: concept for concept, info in VOCABULARY.items() for w in info.words}
LABEL_SETS: dict[str, LabelSet] = parse_label_sets(_BUILTIN.get("label_sets"), str(BUILTIN_FILE))
_REGISTERED: dict[str, LabelSet] = {}  # sets added by profiles (or code) in this process


# ----------------------------------------------------------------------------- registry
def register_label_set(label_set: LabelSet) -> LabelSet:
    """Make ``label_set`` known to ``get_label_set``. The same definition again is a no-op; a new
    one from the same file replaces it (a file edited and read again); a built-in name, or another
    definition of the name from elsewhere, is a LabelSetError."""
    name = label_set.name
    if name in LABEL_SETS:
        if LABEL_SETS[name] == label_set:
            return LABEL_SETS[name]
        raise LabelSetError(f"{label_set.defined_in}: label set {name!r} is built in ({BUILTIN_FILE.name}); "
                            "give yours another name")
    old = _REGISTERED.get(name)
    if old is not None and old != label_set and old.defined_in != label_set.defined_in:
        raise LabelSetError(f"{label_set.defined_in}: label set {name!r} is already defined differently in "
                            f"{old.defined_in}; rename one of them")
    _REGISTERED[name] = label_set
    return label_set


def register_profile_label_sets(entries: Any, base_dir: Path, where: str) -> tuple[str, ...]:
    """Register a profile's ``label_sets:``: YAML files (relative to ``base_dir``, the profile's
    folder) and/or inline mappings {name: definition}; returns the names registered."""
    if not isinstance(entries, list | tuple):
        raise LabelSetError(f"{where}: label_sets must be a list of YAML files and/or mappings "
                            f"{{name: {{labels: [...]}}}}, got {entries!r}")
    names = []
    for i, entry in enumerate(entries):
        if isinstance(entry, str):
            path = Path(entry).expanduser()
            sets = load_label_sets(path if path.is_absolute() else base_dir / path)
        elif isinstance(entry, dict):
            sets = parse_label_sets(entry, f"{where}: label_sets[{i}]")
        else:
            raise LabelSetError(f"{where}: label_sets[{i}] must be a file name or a mapping, got {entry!r}")
        names += [register_label_set(s).name for s in sets.values()]
    return tuple(names)


def known_label_sets() -> dict[str, LabelSet]:
    """Every label set known now: the built-in ones, then those registered."""
    return {**LABEL_SETS, **_REGISTERED}


def get_label_set(name: str) -> LabelSet:
    known = known_label_sets()
    if name not in known:
        raise KeyError(f"unknown label set {name!r}; known: {sorted(known)}. Define your own in a YAML file "
                       "listed under `label_sets:` in the profile (README, 'Your own label sets')")
    return known[name]


def normalize_label(word: str, label_set: LabelSet) -> str | None:
    """The member of ``label_set`` that ``word`` names (case, spacing, synonyms), else None."""
    return label_set.member(word.strip().strip(".!\"'").lower())


def label_table(label_set: LabelSet) -> list[dict[str, str]]:
    """Rows of (label, sentiment, arousal), in label-set order, for display."""
    return [{"label": n, "sentiment": label_set.sentiment(i), "arousal": label_set.arousal(i)}
            for i, n in enumerate(label_set.names)]
