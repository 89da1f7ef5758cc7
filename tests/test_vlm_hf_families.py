"""Every generative VLM family through the hf backend, on tiny random models of the real
transformers classes (real processors, real chat templates) built offline by ``vlm_tiny``."""

from __future__ import annotations

import importlib.util
import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from vlm_tiny import FAMILIES, build_tiny_vlm

from emolib.config import VLMConfig
from emolib.data import make_synthetic_evoked, make_synthetic_faces
from emolib.labels import get_label_set
from emolib.vlm import ModelSpec, ResponseCache, generative_prompt, hf_families, load_backend
from emolib.vlm.backends import model_status
from emolib.vlm.hf import load_generative

CONFIG = VLMConfig(batch_size=4, max_new_tokens=4)
PROMPT = generative_prompt(get_label_set("fer7"))
PHI = "microsoft/Phi-3.5-vision-instruct"


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiny_vlms")
    return {family: build_tiny_vlm(family, root / family) for family in FAMILIES}


@pytest.fixture(scope="module")
def backends(tiny_models) -> dict:
    return {family: load_backend(ModelSpec("hf", str(folder)), CONFIG) for family, folder in tiny_models.items()}


def _resize(image: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(image).resize((width, height)))


@pytest.fixture(scope="module")
def images() -> dict[str, list[np.ndarray]]:
    """Four images of each kind: grey 48 px faces, colour photos, and mixed sizes in one batch."""
    faces = make_synthetic_faces(per_class=1, seed=2).split("private_test").images()[:4]
    photos = make_synthetic_evoked(per_class=1, seed=3).images()[:4]
    mixed = [faces[0], photos[0], _resize(photos[1], 120, 40), _resize(photos[2], 36, 90)]
    return {"grey_faces": faces, "colour_photos": photos, "mixed_sizes": mixed}


@pytest.mark.parametrize("kind", ["grey_faces", "colour_photos", "mixed_sizes"])
@pytest.mark.parametrize("family", FAMILIES)
def test_batched_answers_equal_one_by_one(backends, images, family, kind) -> None:
    backend = backends[family]
    batched = backend.generate(images[kind], PROMPT)
    single = [backend.generate([image], PROMPT)[0] for image in images[kind]]
    assert batched == single
    assert all(answer.strip() for answer in batched)


@pytest.mark.parametrize("family", FAMILIES)
def test_one_bos_token_at_the_start_of_each_prompt(backends, images, family) -> None:
    backend = backends[family]
    tokenizer = backend.processor.tokenizer
    inputs = backend.encode(images["mixed_sizes"], PROMPT)
    for ids, mask in zip(inputs["input_ids"], inputs["attention_mask"], strict=True):
        ids = ids[mask.bool()].tolist()  # without the left padding
        if family.startswith("qwen"):  # Qwen has no BOS token at all
            assert tokenizer.bos_token_id is None
            continue
        assert ids.count(tokenizer.bos_token_id) == 1
        # PaliGemma's own layout: image tokens, then BOS, then the text
        first_text = ids.count(backend.processor.image_token_id) if family == "paligemma" else 0
        assert ids[first_text] == tokenizer.bos_token_id


@pytest.mark.parametrize("family", FAMILIES)
def test_only_new_tokens_are_decoded(backends, images, family) -> None:
    backend = backends[family]
    tokenizer = backend.processor.tokenizer
    prompt_tokens = int(backend.encode(images["mixed_sizes"][:1], PROMPT)["attention_mask"].sum())
    assert prompt_tokens > 10 * CONFIG.max_new_tokens
    for answer in backend.generate(images["mixed_sizes"], PROMPT):
        assert 0 < len(tokenizer(answer, add_special_tokens=False)["input_ids"]) <= CONFIG.max_new_tokens


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_is_available(tiny_models, family) -> None:
    row = model_status(ModelSpec("hf", str(tiny_models[family])), CONFIG)
    assert (row["status"], row["reason"]) == ("available", "")


def test_missing_num2words_is_unavailable_and_says_so(tiny_models, monkeypatch) -> None:
    monkeypatch.setattr("transformers.models.smolvlm.processing_smolvlm.num2words", None)
    row = model_status(ModelSpec("hf", str(tiny_models["smolvlm"])), CONFIG)
    assert row["status"] == "unavailable"
    assert "num2words" in row["reason"] and "Python module" in row["reason"]
    assert "cannot load" not in row["reason"]


def test_family_unknown_to_transformers_is_unavailable(tiny_models, tmp_path) -> None:
    folder = shutil.copytree(tiny_models["llava"], tmp_path / "unknown")
    config = (folder / "config.json").read_text().replace('"model_type": "llava"', '"model_type": "not_a_vlm"')
    (folder / "config.json").write_text(config)
    row = model_status(ModelSpec("hf", str(folder)), CONFIG)
    assert row["status"] == "unavailable"
    assert "cannot load it" in row["reason"] and "not_a_vlm" in row["reason"]


def test_neither_folder_nor_repo_id_is_unavailable(tmp_path) -> None:
    row = model_status(ModelSpec("hf", str(tmp_path / "no" / "such" / "model")), CONFIG)
    assert row["status"] == "unavailable"
    assert "is neither a model folder here nor a hub repo id" in row["reason"]


def test_processor_without_chat_template_is_unavailable(tiny_models, tmp_path) -> None:
    folder = shutil.copytree(tiny_models["llava"], tmp_path / "no_template")
    for path in folder.glob("chat_template*"):
        path.unlink()
    row = model_status(ModelSpec("hf", str(folder)), CONFIG)
    assert row["status"] == "unavailable"
    assert "LlavaProcessor has no chat template" in row["reason"]


def test_phi35_vision_status_says_exactly_why(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    row = model_status(ModelSpec("hf", PHI), replace(CONFIG, hf_trust_remote_code=True))
    assert row["status"] == "unavailable"
    missing = hf_families.missing_from_transformers(hf_families.PHI3V_NEEDS)
    # the cache API its generate step calls is gone from every transformers emolib allows
    assert "transformers.cache_utils.DynamicCache.seen_tokens" in missing
    if importlib.util.find_spec("transformers.modeling_attn_mask_utils") is None:  # transformers 5
        assert "transformers.modeling_attn_mask_utils._prepare_4d_causal_attention_mask" in missing
    assert f"needs {', '.join(missing)}, gone from the installed transformers" in row["reason"]
    assert f"vllm serve {PHI}" in row["reason"] and f"openai_models: [{PHI}]" in row["reason"]


def test_phi35_vision_asks_for_remote_code_where_its_code_would_run(monkeypatch) -> None:
    monkeypatch.setattr(hf_families, "PHI3V_NEEDS", (("transformers.cache_utils", "DynamicCache"),))
    with pytest.raises(hf_families.ModelUnavailable, match="set vlm.hf_trust_remote_code: true"):
        hf_families.check_loadable(PHI, hf_families.model_type(PHI), trust_remote_code=False)
    hf_families.check_loadable(PHI, "phi3_v", trust_remote_code=True)  # nothing left to object to


def test_one_prompt_per_call_collation_equals_the_batched_processor(backends, images, monkeypatch) -> None:
    """Phi-3.5-Vision's processor takes one text: prompts are encoded alone and left-padded."""
    backend = backends["qwen2_vl"]
    batched = backend.encode(images["mixed_sizes"], PROMPT)
    answers = backend.generate(images["mixed_sizes"], PROMPT)
    monkeypatch.setattr(hf_families, "ONE_TEXT", ("Qwen2VLProcessor",))
    alone = backend.encode(images["mixed_sizes"], PROMPT)
    assert len(set(batched["attention_mask"].sum(1).tolist())) > 1  # the padding is exercised
    assert set(alone.keys()) == set(batched.keys())
    for key in batched:
        assert torch.equal(alone[key], batched[key]), key
    assert backend.generate(images["mixed_sizes"], PROMPT) == answers


def _flaky_generate(backend, monkeypatch, fails) -> list[int]:
    """Replace ``model.generate`` by one that raises a CUDA out-of-memory error when
    ``fails(batch, call)``; returns the batch sizes it was called with."""
    sizes, real = [], backend.model.generate

    def generate(**inputs):
        sizes.append(len(inputs["input_ids"]))
        if fails(sizes[-1], len(sizes)):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected by the test)")
        return real(**inputs)

    monkeypatch.setattr(backend.model, "generate", generate)
    return sizes


def test_out_of_memory_halves_the_batch_and_goes_on(tiny_models, tmp_path, monkeypatch) -> None:
    faces = make_synthetic_faces(per_class=1, seed=2).split("private_test")
    backend = load_backend(ModelSpec("hf", str(tiny_models["llava"])), CONFIG)
    single = [backend.generate([image], PROMPT)[0] for image in faces.images()]
    backend.cache = ResponseCache(tmp_path / "cache.sqlite")
    sizes = _flaky_generate(backend, monkeypatch, lambda batch, call: call > 1 and batch > 2)
    frame = backend.predict(faces, faces.label_set, PROMPT, "default")
    assert sizes == [4, 3, 2, 1]  # 4 answered, 3 ran out of memory: halved to 2 for the rest
    assert backend.max_batch == 2
    assert list(frame["raw_response"]) == single
    assert len(backend.cache) == len(faces) == 7


def test_out_of_memory_at_batch_one_raises_after_caching_finished_batches(tiny_models, tmp_path,
                                                                          monkeypatch) -> None:
    faces = make_synthetic_faces(per_class=1, seed=2).split("private_test")
    backend = load_backend(ModelSpec("hf", str(tiny_models["llava"])), CONFIG)
    backend.cache = ResponseCache(tmp_path / "cache.sqlite")
    sizes = _flaky_generate(backend, monkeypatch, lambda batch, call: call > 1)
    with pytest.raises(torch.cuda.OutOfMemoryError):
        backend.predict(faces, faces.label_set, PROMPT, "default")
    assert sizes == [4, 3, 2, 1]
    assert len(backend.cache) == 4  # the first batch's answers survive for the rerun


def test_cache_key_holds_dtype_and_device(backends) -> None:
    settings = backends["llava"].settings
    assert (settings["dtype"], settings["device"]) == ("float32", "cpu")


def test_cuda_load_places_weights_on_the_gpu_directly(tiny_models, monkeypatch) -> None:
    """On CUDA: bf16, ``device_map`` (no copy of the whole model in host RAM), no ``.to()``."""
    calls = []
    real = hf_families.model_class("llava")

    class Recorder:
        @staticmethod
        def from_pretrained(repo, **kwargs):
            calls.append(kwargs)
            return real.from_pretrained(repo, local_files_only=True)

    monkeypatch.setattr(hf_families, "model_class", lambda kind: Recorder)
    model, _ = load_generative(tiny_models["llava"], device="cuda:0")
    assert next(model.parameters()).device.type == "cpu"  # not moved by .to("cuda:0")
    assert calls[0]["device_map"] == "cuda:0" and calls[0]["low_cpu_mem_usage"] is True
    assert calls[0]["dtype"] == torch.bfloat16
