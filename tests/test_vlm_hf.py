"""Generative VLM backend with a tiny random LLaVA built locally, loaded like a real model."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from emolib.config import VLMConfig
from emolib.data import make_synthetic_faces
from emolib.predictions import validate_predictions
from emolib.vlm import ModelSpec, ModelUnavailable, ResponseCache, load_backend
from emolib.vlm.backends import model_status
from emolib.vlm.hf import build_tiny_llava

CONFIG = VLMConfig(batch_size=4, max_new_tokens=6)


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    torch.set_num_threads(1)
    folder = build_tiny_llava(tmp_path_factory.mktemp("tiny_llava"))
    return load_backend(ModelSpec("hf", str(folder)), CONFIG)


@pytest.fixture(scope="module")
def faces():
    return make_synthetic_faces(per_class=1, seed=2).split("private_test")


def test_generates_and_parses_every_image(backend, faces) -> None:
    frame = validate_predictions(backend.predict(faces, faces.label_set, None, "base"))
    assert len(frame) == len(faces) == 7
    assert all(isinstance(r, str) and r.strip() for r in frame["raw_response"])
    assert set(frame["parse_status"]) <= {"json", "text_match", "embedding_match", "unparseable"}
    assert backend.chat_text("hi").startswith("user: <image> hi")


def test_batched_generation_equals_one_by_one(backend, faces) -> None:
    batched = backend.predict(faces, faces.label_set, "Which emotion? [happy, sad]", "b")
    backend.config = replace(CONFIG, batch_size=1)
    try:
        single = backend.predict(faces, faces.label_set, "Which emotion? [happy, sad]", "b")
    finally:
        backend.config = CONFIG
    assert list(batched["raw_response"]) == list(single["raw_response"])


def test_rerun_makes_zero_generate_calls(backend, faces, tmp_path) -> None:
    backend.cache = ResponseCache(tmp_path / "cache.sqlite")
    try:
        first = backend.predict(faces, faces.label_set, None, "c")
        calls = backend.generate_calls
        second = backend.predict(faces, faces.label_set, None, "c")
        assert backend.generate_calls == calls
    finally:
        backend.cache = None
    assert list(first["raw_response"]) == list(second["raw_response"])


def test_real_model_offline_is_unavailable(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    row = model_status(ModelSpec("hf", "llava-hf/llava-1.5-7b-hf"), VLMConfig())
    assert row["status"] == "unavailable"
    assert "not in the local Hugging Face cache" in row["reason"]
    with pytest.raises(ModelUnavailable, match="random_weights_ok"):
        load_backend("hf:tiny-random-llava", VLMConfig())
