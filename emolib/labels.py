"""Label sets, their synonyms, and each label's sentiment and arousal.

Sentiment and arousal follow Russell's circumplex model of affect (Russell, 1980, "A
circumplex model of affect", J. Personality and Social Psychology 39(6)), where anger, fear,
disgust, surprise, happiness/joy, excitement and amusement lie in the high-arousal half and
sadness, contentment, awe, contempt and neutral in the low-arousal half. Disgust,
amusement, awe and contempt are not among Russell's 28 terms: their placement is this
project's choice (awe as low arousal is debatable), shown in notebook 07's mapping table.
Neutral is its own sentiment, so confusing an emotion with neutral counts as EC I. The Mikels-8
sentiment split (four positive, four negative classes) is that of Mikels et al. (2005),
"Emotional category data on images from the International Affective Picture System",
Behavior Research Methods 37(4), used by ArtPhoto, Abstract, EmoSet and FI. Surprise is
taken as positive: in Emotion6's own user study the mean valence of its surprise images is
6.49 on the 1-9 scale, above the neutral 5 (Peng et al., CVPR 2015; ``ground_truth.txt``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Sentiment = Literal["positive", "negative", "neutral"]
Arousal = Literal["high", "low"]


@dataclass(frozen=True)
class LabelInfo:
    sentiment: Sentiment
    arousal: Arousal


# One entry per canonical label word used in any label set.
LABEL_INFO: dict[str, LabelInfo] = {
    "angry": LabelInfo("negative", "high"),
    "anger": LabelInfo("negative", "high"),
    "disgust": LabelInfo("negative", "high"),
    "fear": LabelInfo("negative", "high"),
    "happy": LabelInfo("positive", "high"),
    "happiness": LabelInfo("positive", "high"),
    "joy": LabelInfo("positive", "high"),
    "sad": LabelInfo("negative", "low"),
    "sadness": LabelInfo("negative", "low"),
    "surprise": LabelInfo("positive", "high"),
    "neutral": LabelInfo("neutral", "low"),
    "contempt": LabelInfo("negative", "low"),
    "amusement": LabelInfo("positive", "high"),
    "excitement": LabelInfo("positive", "high"),
    "awe": LabelInfo("positive", "low"),
    "contentment": LabelInfo("positive", "low"),
}


@dataclass(frozen=True)
class LabelSet:
    """An ordered list of class names; a label is an index into ``names``."""

    name: str
    names: tuple[str, ...]
    description: str

    def __len__(self) -> int:
        return len(self.names)

    def index(self, word: str) -> int:
        """Index of a label word, accepting synonyms; raises KeyError if it is not in the set."""
        found = normalize_label(word, self)
        if found is None:
            raise KeyError(f"{word!r} is not a label of {self.name} {list(self.names)}")
        return self.names.index(found)

    def sentiment(self, label: int | str) -> Sentiment:
        return LABEL_INFO[self._name_of(label)].sentiment

    def arousal(self, label: int | str) -> Arousal:
        return LABEL_INFO[self._name_of(label)].arousal

    def _name_of(self, label: int | str) -> str:
        return self.names[label] if isinstance(label, int) else self.names[self.index(label)]


LABEL_SETS: dict[str, LabelSet] = {
    s.name: s
    for s in (
        # Canonical FER-2013 order: the fer2013.csv codes 0..6 (not the Kaggle folder order).
        LabelSet(
            "fer7",
            ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"),
            "FER-2013, 7 basic expressions in the order of fer2013.csv codes 0-6",
        ),
        LabelSet(
            "ferplus8",
            ("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"),
            "FER+ relabelling, 8 classes in the column order of fer2013new.csv",
        ),
        LabelSet(
            "emotion6",
            ("anger", "disgust", "fear", "joy", "sadness", "surprise"),
            "Emotion6 folders; its vote distributions add a 7th column, neutral",
        ),
        LabelSet(
            "mikels8",
            (
                "amusement", "awe", "contentment", "excitement",
                "anger", "disgust", "fear", "sadness",
            ),
            "Mikels et al. 2005: ArtPhoto, Abstract, EmoSet, FI",
        ),
    )
}

# Vote columns of the Emotion6 ground truth: the six classes plus neutral.
EMOTION6_DISTRIBUTION = ("anger", "disgust", "fear", "joy", "sadness", "surprise", "neutral")

# Words a model or a data set may use for a label; each maps to a concept, and a concept
# resolves to whichever member of a label set expresses it.
SYNONYMS: dict[str, str] = {
    "angry": "anger", "anger": "anger", "mad": "anger", "rage": "anger", "furious": "anger",
    "annoyed": "anger", "irritated": "anger",
    "disgust": "disgust", "disgusted": "disgust", "disgusting": "disgust", "revulsion": "disgust",
    "fear": "fear", "afraid": "fear", "scared": "fear", "fearful": "fear", "frightened": "fear",
    "terrified": "fear", "anxious": "fear",
    "happy": "happiness", "happiness": "happiness", "joy": "happiness", "joyful": "happiness",
    "glad": "happiness", "cheerful": "happiness", "delighted": "happiness",
    "sad": "sadness", "sadness": "sadness", "sorrow": "sadness", "unhappy": "sadness",
    "grief": "sadness", "melancholy": "sadness", "depressed": "sadness",
    "surprise": "surprise", "surprised": "surprise", "astonished": "surprise",
    "amazed": "surprise", "shocked": "surprise",
    "neutral": "neutral", "calm": "neutral", "expressionless": "neutral",
    "contempt": "contempt", "contemptuous": "contempt", "scorn": "contempt",
    "amusement": "amusement", "amused": "amusement", "funny": "amusement",
    "awe": "awe", "awed": "awe", "wonder": "awe", "awestruck": "awe",
    "contentment": "contentment", "content": "contentment", "contented": "contentment",
    "peaceful": "contentment", "serene": "contentment",
    "excitement": "excitement", "excited": "excitement", "thrilled": "excitement",
}
# The concept each label-set member stands for (inverse direction of SYNONYMS for members).
_CONCEPT_OF_MEMBER = {name: SYNONYMS[name] for s in LABEL_SETS.values() for name in s.names}


def get_label_set(name: str) -> LabelSet:
    try:
        return LABEL_SETS[name]
    except KeyError:
        raise KeyError(f"unknown label set {name!r}; known: {sorted(LABEL_SETS)}") from None


def normalize_label(word: str, label_set: LabelSet) -> str | None:
    """The member of ``label_set`` that ``word`` names (case, spacing, synonyms), else None."""
    key = word.strip().strip(".!\"'").lower()
    if key in label_set.names:
        return key
    concept = SYNONYMS.get(key)
    if concept is None:
        return None
    for member in label_set.names:
        if _CONCEPT_OF_MEMBER[member] == concept:
            return member
    return None


def label_table(label_set: LabelSet) -> list[dict[str, str]]:
    """Rows of (label, sentiment, arousal), in label-set order, for display."""
    return [
        {"label": n, "sentiment": LABEL_INFO[n].sentiment, "arousal": LABEL_INFO[n].arousal}
        for n in label_set.names
    ]
