"""Profiles: loading, overrides, validation errors, stable hashes."""

from __future__ import annotations

import pytest

from emolib.config import ConfigError, Profile, config_hash, load_profile


@pytest.mark.parametrize("name", ["smoke", "quick", "paper"])
def test_every_profile_loads(name):
    profile = load_profile(name)
    assert isinstance(profile, Profile) and profile.name == name


def test_smoke_needs_no_data():
    assert load_profile("smoke").data.source == "synthetic"
    assert load_profile("quick").data.source == "real"


def test_dotted_and_nested_overrides():
    assert load_profile("quick", **{"cnn.epochs": 2}).cnn.epochs == 2
    assert load_profile("quick", data={"subsample": {"train": 100}}).data.subsample.train == 100
    assert load_profile("quick", data={"subsample": {"train": 100}}).data.fer2013 == "fer2013/fer2013.zip"


def test_lists_become_tuples_and_ints_become_floats():
    profile = load_profile("smoke", **{"cnn.lr": 1, "cnn.models": ["resnet50"]})
    assert profile.cnn.lr == 1.0 and isinstance(profile.cnn.lr, float)
    assert profile.cnn.models == ("resnet50",)


def test_unknown_key_is_named_with_allowed_keys(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("cnn:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=r"mine.yaml: cnn: unknown key\(s\) \['epoch'\].*'epochs'"):
        load_profile(path)


def test_wrong_type_is_named(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("cnn:\n  epochs: three\n")
    with pytest.raises(ConfigError, match=r"cnn: epochs: expected int, got str 'three'"):
        load_profile(path)
    with pytest.raises(ConfigError, match=r"expected int, got the boolean"):
        load_profile("quick", **{"cnn.epochs": True})


def test_literal_values_are_checked():
    with pytest.raises(ConfigError, match=r"data: source: 'fake' is not one of \['real', 'synthetic'\]"):
        load_profile("quick", **{"data.source": "fake"})


def test_missing_profile_file_lists_known_profiles():
    with pytest.raises(ConfigError, match=r"does not exist; known profiles: .*'quick'.*'smoke'"):
        load_profile("no_such_profile")


def test_config_hash_is_stable_and_sensitive():
    a, b = load_profile("quick"), load_profile("quick")
    assert config_hash(a.data) == config_hash(b.data)
    assert len(config_hash(a)) == 12
    assert config_hash(a.data) != config_hash(load_profile("quick", **{"data.phash_threshold": 5}).data)
    # a change in one stage leaves another stage's hash alone
    assert config_hash(a.data) == config_hash(load_profile("quick", **{"cnn.epochs": 1}).data)
    assert config_hash({"x": 1, "y": 2}) == config_hash({"y": 2, "x": 1})
