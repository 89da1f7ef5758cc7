"""CLIP backend end to end with a random-weight open_clip model (no weights needed)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from emolib.config import VLMConfig
from emolib.data import make_synthetic_faces
from emolib.predictions import score_matrix, validate_predictions
from emolib.vlm import ModelUnavailable, ResponseCache, load_backend, status_table
from emolib.vlm.study import fit_linear_probe

CONFIG = VLMConfig(random_weights_ok=True, batch_size=8, clip_models=("ViT-S-32/random",), recorded=())


@pytest.fixture(scope="module")
def faces():
    return make_synthetic_faces(per_class=2, seed=1)


@pytest.fixture(scope="module")
def backend():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    return load_backend("clip:ViT-S-32/random", CONFIG)


def test_scores_are_probabilities_and_argmax_is_prediction(backend, faces) -> None:
    test = faces.split("private_test")
    frame = validate_predictions(backend.predict(test, test.label_set, None, "base"))
    scores = score_matrix(frame)
    assert scores.shape == (14, 7)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(frame["y_pred"], scores.argmax(axis=1))
    assert set(frame["parse_status"]) == {"scored"} and set(frame["backend"]) == {"clip"}


def test_text_features_are_computed_once_per_label_set(backend, faces) -> None:
    before = backend.text_encodes
    for split in ("train", "public_test"):
        part = faces.split(split)
        backend.predict(part, part.label_set, None, "base")
    assert backend.text_encodes - before <= 1  # the fixture's first call may compute them
    backend.predict(part, part.label_set, ("a photo of a {c} face.",), "one template")
    assert backend.text_encodes - before <= 2


def test_batched_equals_per_image(backend, faces) -> None:
    test = faces.split("private_test")
    batched = score_matrix(backend.predict(test, test.label_set, None, "b"))
    backend.config = replace(CONFIG, batch_size=1)
    try:
        single = score_matrix(backend.predict(test, test.label_set, None, "b"))
    finally:
        backend.config = CONFIG
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_rerun_reads_the_cache_without_encoding(backend, faces, tmp_path) -> None:
    test = faces.split("public_test")
    backend.cache = ResponseCache(tmp_path / "cache.sqlite")
    try:
        first = backend.predict(test, test.label_set, None, "c")
        encoded = backend.image_encodes
        second = backend.predict(test, test.label_set, None, "c")
        assert backend.image_encodes == encoded  # zero model calls on the rerun
        assert backend.cache.hits == len(test)
    finally:
        backend.cache = None
    np.testing.assert_allclose(score_matrix(first), score_matrix(second))


def test_linear_probe_predicts_the_test_split(backend, faces) -> None:
    frame = fit_linear_probe(backend, faces.split("train"), faces.split("private_test"), 1.0, 0)
    assert set(frame["backend"]) == {"clip_probe"} and len(frame) == 14
    np.testing.assert_allclose(score_matrix(frame).sum(axis=1), 1.0, atol=1e-6)


def test_unavailable_models_say_why() -> None:
    with pytest.raises(ModelUnavailable, match="random_weights_ok"):
        load_backend("clip:ViT-S-32/random", VLMConfig())
    with pytest.raises(ModelUnavailable, match="not in the local cache"):
        load_backend("clip:ViT-B-32/openai", VLMConfig())
    table = status_table(replace(CONFIG, clip_models=("ViT-B-32/openai", "NoSuchNet/openai")))
    assert list(table["status"]) == ["unavailable", "unavailable"]
    assert "no architecture" in table["reason"].iloc[1]


def test_interrupted_run_resumes_from_the_cache(backend, faces, tmp_path) -> None:
    train = faces.split("train")
    backend.cache = ResponseCache(tmp_path / "cache.sqlite")
    try:
        backend.predict(train.subset(range(5)), train.label_set, None, "r")  # "interrupted" after 5
        encoded = backend.image_encodes
        full = backend.predict(train, train.label_set, None, "r")
        assert backend.image_encodes - encoded == len(train) - 5
    finally:
        backend.cache = None
    assert len(full) == len(train)
