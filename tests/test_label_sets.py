"""Label sets as data: the package YAML against the values once hard-coded, every check of a
label-set file with its message, and a profile's own label sets used by metrics and parsing."""

from __future__ import annotations

import pytest
import yaml

from emolib import labels
from emolib.config import load_profile
from emolib.labels import (
    LABEL_SETS,
    SYNONYMS,
    LabelSet,
    LabelSetError,
    get_label_set,
    load_label_sets,
    normalize_label,
    parse_label_sets,
    register_label_set,
)
from emolib.metrics import summarize
from emolib.predictions import make_predictions
from emolib.vlm.parse import parse_answer

# emolib/labels.py before the label sets became data (commit d724bbf): its values, copied.
BEFORE = {  # name: (names, description, sentiment per label, arousal per label)
    "fer7": (("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"),
             "FER-2013, 7 basic expressions in the order of fer2013.csv codes 0-6",
             "---+-+0", "HHHHLHL"),
    "ferplus8": (("neutral", "happiness", "surprise", "sadness", "anger", "disgust", "fear", "contempt"),
                 "FER+ relabelling, 8 classes in the column order of fer2013new.csv",
                 "0++-----", "LHHLHHHL"),
    "emotion6": (("anger", "disgust", "fear", "joy", "sadness", "surprise"),
                 "Emotion6 folders; its vote distributions add a 7th column, neutral",
                 "---+-+", "HHHHLH"),
    "mikels8": (("amusement", "awe", "contentment", "excitement", "anger", "disgust", "fear", "sadness"),
                "Mikels et al. 2005: ArtPhoto, Abstract, EmoSet, FI",
                "++++----", "HLLHHHHL"),
}
BEFORE_SYNONYMS = {  # concept: its words, as emolib.labels.SYNONYMS held them
    "anger": "angry anger mad rage furious annoyed irritated",
    "disgust": "disgust disgusted disgusting revulsion",
    "fear": "fear afraid scared fearful frightened terrified anxious",
    "happiness": "happy happiness joy joyful glad cheerful delighted",
    "sadness": "sad sadness sorrow unhappy grief melancholy depressed",
    "surprise": "surprise surprised astonished amazed shocked",
    "neutral": "neutral calm expressionless",
    "contempt": "contempt contemptuous scorn",
    "amusement": "amusement amused funny",
    "awe": "awe awed wonder awestruck",
    "contentment": "contentment content contented peaceful serene",
    "excitement": "excitement excited thrilled",
}
CODE = {"+": "positive", "-": "negative", "0": "neutral", "H": "high", "L": "low"}
OLD_SYNONYMS = {w: concept for concept, words in BEFORE_SYNONYMS.items() for w in words.split()}


def old_normalize(word: str, names: tuple[str, ...]) -> str | None:
    """normalize_label as it was: the member of the word's concept."""
    key = word.strip().strip(".!\"'").lower()
    if key in names:
        return key
    concept = OLD_SYNONYMS.get(key)
    return next((m for m in names if OLD_SYNONYMS[m] == concept), None) if concept else None


@pytest.fixture(autouse=True)
def fresh_registry(monkeypatch):
    """Each test starts with only the built-in sets registered."""
    monkeypatch.setattr(labels, "_REGISTERED", {})


def write(path, data) -> str:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


@pytest.mark.parametrize("name", sorted(BEFORE))
def test_builtin_set_read_from_yaml_equals_the_hard_coded_one(name):
    names, description, sentiment, arousal = BEFORE[name]
    got = get_label_set(name)
    assert (got.names, got.description) == (names, description)
    assert [got.sentiment(i) for i in range(len(got))] == [CODE[c] for c in sentiment]
    assert [got.arousal(i) for i in range(len(got))] == [CODE[c] for c in arousal]
    for word in [*OLD_SYNONYMS, "Joy.", " ANGRY", "boredom", "contempt"]:
        assert normalize_label(word, got) == old_normalize(word, names), word


def test_synonyms_equal_the_hard_coded_ones():
    assert SYNONYMS == OLD_SYNONYMS


@pytest.mark.parametrize("name", sorted(LABEL_SETS))
def test_builtin_set_written_as_a_user_file_reads_back_equal(name, tmp_path):
    ls = LABEL_SETS[name]
    entry = {"description": ls.description, "source": ls.source,
             "labels": [{"name": n, "sentiment": ls.sentiment(i), "arousal": ls.arousal(i),
                         "synonyms": list(ls.synonyms[i])} for i, n in enumerate(ls.names)]}
    back = load_label_sets(write(tmp_path / "copy.yaml", {"label_sets": {name: entry}}))
    assert back[name] == ls and back[name].synonyms == ls.synonyms


def test_ckplus_and_the_emoset_and_fi_spellings_normalise():
    ck = get_label_set("ckplus7")
    assert ck.names == ("anger", "contempt", "disgust", "fear", "happiness", "sadness", "surprise")
    # CK+48 folder names (happy, not happiness) -> CK+ emotion codes 1-7 as indices 0-6
    folders = ["anger", "contempt", "disgust", "fear", "happy", "sadness", "surprise"]
    assert [ck.index(f) for f in folders] == list(range(7))
    assert normalize_label("neutral", ck) is None and ck.sentiment("contempt") == "negative"
    mikels = get_label_set("mikels8")
    emoset_label2idx = {"amusement": 0, "awe": 1, "contentment": 2, "excitement": 3,
                        "anger": 4, "disgust": 5, "fear": 6, "sadness": 7}  # EmoSet info.json
    assert {w: mikels.index(w) for w in emoset_label2idx} == emoset_label2idx
    fi_folders = ["Amusement", "Anger", "Awe", "Contentment", "Disgust", "Excitement", "Fear", "Sadness"]
    assert sorted(normalize_label(f, mikels) for f in fi_folders) == sorted(mikels.names)


BAD_FILES = {
    "unknown sentiment": ([{"name": "boredom", "sentiment": "glum", "arousal": "low"}],
                          r"label 'boredom': sentiment 'glum' is not one of \['positive', 'negative', 'neutral'\]"),
    "unknown arousal": ([{"name": "boredom", "sentiment": "negative", "arousal": "medium"}],
                        r"label 'boredom': arousal 'medium' is not one of \['high', 'low'\]"),
    "synonym of two labels": ([{"name": "boredom", "sentiment": "negative", "arousal": "low", "synonyms": ["meh"]},
                               {"name": "apathy", "sentiment": "negative", "arousal": "low", "synonyms": ["meh"]}],
                              r"the word 'meh' names both 'boredom' and 'apathy'"),
    "two labels of one concept": (["happy", "joy"], r"the word 'joy' names both 'happy' and 'joy'"),
    "empty set": ([], r"label set 'mine' is empty; list its labels"),
    "label listed twice": (["anger", "fear", "anger"], r"label\(s\) \['anger'\] listed twice"),
    "label outside the vocabulary": (["anger", "boredom"],
                                     r"label 'boredom' is not a word of the vocabulary in label_sets.yaml; "
                                     r"define it as \{name: boredom, sentiment"),
    "upper-case label": ([{"name": "Boredom", "sentiment": "negative", "arousal": "low"}],
                         r"label names must be non-empty lower-case strings"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_each_bad_label_set_is_an_error_naming_the_file(case, tmp_path):
    entries, message = BAD_FILES[case]
    path = write(tmp_path / "bad_sets.yaml", {"label_sets": {"mine": {"labels": entries}}})
    with pytest.raises(LabelSetError, match=message) as err:
        load_label_sets(path)
    assert str(err.value).startswith(path)


def test_bad_file_shapes_say_what_to_write(tmp_path):
    with pytest.raises(LabelSetError, match=r"nope.yaml does not exist .*relative to the profile's folder"):
        load_label_sets(tmp_path / "nope.yaml")
    typo = write(tmp_path / "typo.yaml", {"label_sets": {"mine": {"lables": ["anger"]}}})
    with pytest.raises(LabelSetError, match=r"typo.yaml: label_sets.mine: unknown key\(s\) \['lables'\]"):
        load_label_sets(typo)
    vocab = write(tmp_path / "vocab.yaml", {"vocabulary": {}, "label_sets": {"mine": {"labels": ["anger"]}}})
    with pytest.raises(LabelSetError, match=r"vocab.yaml: expected only the key `label_sets:`"):
        load_label_sets(vocab)


def test_a_builtin_name_or_a_second_definition_cannot_be_registered(tmp_path):
    clash = write(tmp_path / "clash.yaml", {"label_sets": {"fer7": {"labels": ["anger", "fear"]}}})
    with pytest.raises(LabelSetError, match=r"clash.yaml: label set 'fer7' is built in"):
        register_label_set(load_label_sets(clash)["fer7"])
    first = write(tmp_path / "a.yaml", {"label_sets": {"mine": {"labels": ["anger", "fear"]}}})
    register_label_set(load_label_sets(first)["mine"])
    write(tmp_path / "a.yaml", {"label_sets": {"mine": {"labels": ["anger", "fear", "sadness"]}}})
    register_label_set(load_label_sets(first)["mine"])  # the same file, edited: replaces
    assert len(get_label_set("mine")) == 3
    other = write(tmp_path / "b.yaml", {"label_sets": {"mine": {"labels": ["joy"]}}})
    with pytest.raises(LabelSetError, match=r"b.yaml: label set 'mine' is already defined differently in .*a.yaml"):
        register_label_set(load_label_sets(other)["mine"])


def profile_with_own_sets(tmp_path):
    """A profile naming a label-set file beside it and an inline set."""
    write(tmp_path / "my_sets.yaml", {"label_sets": {"valence3": {
        "description": "three moods", "source": "a test",
        "labels": [{"name": "upbeat", "sentiment": "positive", "arousal": "high", "synonyms": ["cheery"]},
                   {"name": "boredom", "sentiment": "negative", "arousal": "low", "synonyms": ["bored", "meh"]},
                   "neutral"]}}})
    return write(tmp_path / "mine.yaml", {"device": "cpu", "label_sets": [
        "my_sets.yaml", {"pair2": {"labels": ["anger", "joy"]}}]})


def test_a_profiles_label_sets_are_registered_and_used_by_parsing_and_metrics(tmp_path):
    with pytest.raises(KeyError, match="unknown label set 'valence3'"):
        get_label_set("valence3")
    profile = load_profile(profile_with_own_sets(tmp_path), check_machine=False)
    assert profile.label_sets[0] == "my_sets.yaml"
    mine = get_label_set("valence3")
    assert mine.names == ("upbeat", "boredom", "neutral")
    assert (mine.sentiment("boredom"), mine.arousal("neutral")) == ("negative", "low")
    assert normalize_label("Bored.", mine) == "boredom" and normalize_label("calm", mine) == "neutral"
    assert get_label_set("pair2").sentiments == ("negative", "positive")
    assert parse_answer('{"emotion": "meh"}', mine).label == 1
    assert parse_answer("Cheery, I would say.", mine).label == 0
    frame = make_predictions(
        image_id=list("abcdef"), split="test", dataset="d", label_set="valence3",
        y_true=[0, 0, 1, 1, 2, 2], y_pred=[0, 1, 1, 1, -1, 2], model="m", backend="hf", restoration="none",
        prompt="base", seed=0, subset="d_all", parse_status=["json"] * 4 + ["unparseable", "json"])
    row = summarize(frame, n_boot=20).iloc[0]
    # per class F1: 2/3, 0.8, 2/3 (the hand-computed example of test_metrics)
    assert row["accuracy"] == pytest.approx(4 / 6) and row["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 2 / 3) / 3)
    load_profile(profile_with_own_sets(tmp_path), check_machine=False)  # loading it again is fine


def test_an_ad_hoc_label_set_is_scored_when_passed_or_registered():
    ad_hoc = LabelSet("two_moods", ("upbeat", "sad"))
    frame = make_predictions(
        image_id=["a", "b", "c"], split="test", dataset="d", label_set="two_moods", y_true=[0, 1, 1],
        y_pred=[0, 1, 0], model="m", backend="hf", restoration="none", prompt="base", seed=0, subset="d_all",
        parse_status="json")
    with pytest.raises(KeyError, match="unknown label set 'two_moods'.*label_sets:"):
        summarize(frame, n_boot=10)
    assert summarize(frame, n_boot=10, label_sets=[ad_hoc]).iloc[0]["accuracy"] == pytest.approx(2 / 3)
    register_label_set(ad_hoc)
    assert summarize(frame, n_boot=10).iloc[0]["accuracy"] == pytest.approx(2 / 3)
    assert normalize_label("unhappy", ad_hoc) == "sad" and normalize_label("cheery", ad_hoc) is None
    with pytest.raises(LabelSetError, match=r"label 'upbeat' has no sentiment"):
        ad_hoc.sentiment(0)


def test_inline_sets_are_checked_like_files():
    with pytest.raises(LabelSetError, match=r"mine.yaml: label_sets\[0\]: label set 'x' is empty"):
        parse_label_sets({"x": {"labels": []}}, "mine.yaml: label_sets[0]")
