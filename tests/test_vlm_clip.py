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
from emolib.vlm.stage import fit_linear_probe

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


def configured_clip_tags() -> list[tuple[str, str]]:
    """Every ``<arch>/<pretrained tag>`` named in ``vlm.clip_models`` of configs/*.yaml."""
    import yaml

    from emolib.config import configs_dir
    from emolib.vlm.clip import WEIGHT_SUFFIXES

    tags = set()
    for path in sorted(configs_dir().glob("*.yaml")):
        for name in (yaml.safe_load(path.read_text()).get("vlm") or {}).get("clip_models", []):
            arch, _, weights = name.partition("/")
            if not name.startswith("transformers:") and weights != "random" and not weights.endswith(WEIGHT_SUFFIXES):
                tags.add((arch, weights))
    return sorted(tags)


@pytest.mark.parametrize(("arch", "tag"), configured_clip_tags())
def test_every_configured_tag_builds_with_its_tags_settings(arch, tag) -> None:
    from emolib.vlm.clip import build_open_clip, built_settings, tag_settings

    with torch.device("meta"):  # the real architecture, no weights allocated or downloaded
        model, preprocess = build_open_clip(arch, tag, None, device="meta")
    got = built_settings(model, preprocess)
    assert got == tag_settings(arch, tag)
    # what open_clip's tag table says, written out: OpenAI's weights were trained with QuickGELU
    # and OpenAI's normalisation; LAION's ViT-L-14 with GELU and mean = std = 0.5
    if tag == "openai":
        assert got["activation"] == "quick_gelu"
        np.testing.assert_allclose(got["mean"], (0.48145466, 0.4578275, 0.40821073))
    if tag.startswith("laion2b"):
        assert got["activation"] == "gelu" and got["mean"] == got["std"] == (0.5, 0.5, 0.5)
    assert got["interpolation"] == "bicubic" and got["resize_mode"] == "shortest"


def test_configs_name_the_tags_of_both_papers() -> None:
    assert {("ViT-B-32", "openai"), ("ViT-L-14", "openai"), ("ViT-L-14", "laion2b_s32b_b82k")} <= set(
        configured_clip_tags())


def test_a_build_unlike_its_tag_is_caught() -> None:
    import open_clip

    from emolib.vlm.clip import check_tag_settings

    def plain(arch: str, **kw):  # what building from a weight file gives: the arch's defaults
        with torch.device("meta"):
            model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=None, device="meta", **kw)
        return model, preprocess

    with pytest.raises(ValueError, match=r"'activation': \('quick_gelu', 'gelu'\)"):
        check_tag_settings("ViT-B-32", "openai", *plain("ViT-B-32"))
    with pytest.raises(ValueError, match="'mean'.*'std'"):
        check_tag_settings("ViT-L-14", "laion2b_s32b_b82k", *plain("ViT-L-14"))
    with pytest.raises(ValueError, match=r"'interpolation': \('bicubic', 'bilinear'\)"):
        check_tag_settings("ViT-B-32", "openai", *plain("ViT-B-32", force_quick_gelu=True,
                                                        image_interpolation="bilinear"))
    with pytest.raises(ValueError, match="'resize_mode'"):
        check_tag_settings("ViT-B-32", "openai", *plain("ViT-B-32", force_quick_gelu=True, image_resize_mode="squash"))
    check_tag_settings("ViT-B-32", "openai", *plain("ViT-B-32-quickgelu"))  # the -quickgelu arch is right


def test_loader_builds_a_tag_with_its_settings(monkeypatch) -> None:
    from torchvision.transforms import Normalize

    from emolib.vlm import clip

    # stands in for the cached weight file: the loader's own build path, random weights
    monkeypatch.setattr(clip, "cached_pretrained_file", lambda arch, tag, weights="auto": None)
    backend = load_backend("clip:ViT-B-32/openai", VLMConfig())
    assert clip.built_settings(backend.model, backend.preprocess)["activation"] == "quick_gelu"
    norm = next(t for t in backend.preprocess.transforms if isinstance(t, Normalize))
    np.testing.assert_allclose(norm.std, (0.26862954, 0.26130258, 0.27577711))


def test_random_stand_in_is_seeded_so_two_builds_predict_the_same(faces) -> None:
    test = faces.split("private_test")
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    first = load_backend("clip:ViT-S-32/random", CONFIG)
    assert torch.equal(torch.random.get_rng_state(), state)  # the caller's random stream is untouched
    torch.manual_seed(456)  # a different global state must not change the stand-in
    second = load_backend("clip:ViT-S-32/random", CONFIG)
    one, two = first.model.state_dict(), second.model.state_dict()
    assert one.keys() == two.keys() and all(torch.equal(one[k], two[k]) for k in one)
    a = first.predict(test, test.label_set, None, "base")
    b = second.predict(test, test.label_set, None, "base")
    np.testing.assert_array_equal(score_matrix(a), score_matrix(b))
    np.testing.assert_array_equal(a["y_pred"], b["y_pred"])


def test_profile_chooses_clip_prompts_per_label_set(backend, faces) -> None:
    from emolib.labels import get_label_set
    from emolib.templates import class_words, clip_templates

    fer7, test = get_label_set("fer7"), faces.split("private_test")
    # CLIP_benchmark's fer2013 class names (en_classnames.json), in its order: the FER-2013 folders
    benchmark = ["angry", "disgusted", "fearful", "happy", "neutral", "sad", "surprised"]
    folders = ["angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"]
    words = class_words(fer7, "clip_benchmark")
    assert [words[fer7.index(f)] for f in folders] == [(w,) for w in benchmark]
    assert clip_templates(fer7, prompts="clip_benchmark")[1] == "a photo of a face showing the emotion: {c}."
    default = score_matrix(backend.predict(test, fer7, None, "p"))
    try:
        backend.config = replace(CONFIG, clip_prompts={"fer7": "clip_benchmark"})
        assert backend.prompts_for(fer7) == "clip_benchmark"
        # the same words and templates as the CLIP paper's, mapped onto fer7's order: the same scores
        np.testing.assert_allclose(score_matrix(backend.predict(test, fer7, None, "p")), default, atol=1e-6)
        backend.config = replace(CONFIG, clip_prompts={"fer7": "single_face"})
        single = score_matrix(backend.predict(test, fer7, None, "p"))
        assert not np.allclose(single, default, atol=1e-4)  # one template, not six
    finally:
        backend.config = CONFIG


def test_unknown_clip_prompts_are_a_config_error_naming_the_known_ones() -> None:
    from emolib.config import ConfigError

    known = r"\['clip_benchmark', 'clip_paper', 'evoked', 'single_face'\]"
    with pytest.raises(ConfigError, match=r"vlm.clip_prompts.fer7: unknown CLIP prompts 'clip_bench'; known in "
                                          r"templates.yaml: " + known):
        load_backend("clip:ViT-S-32/random", replace(CONFIG, clip_prompts={"fer7": "clip_bench"}))
    with pytest.raises(ConfigError, match=r"vlm.clip_prompts: unknown label set 'fer8'; known: \['ckplus7'"):
        load_backend("clip:ViT-S-32/random", replace(CONFIG, clip_prompts={"fer8": "clip_paper"}))
    with pytest.raises(ConfigError, match=r"clip_prompts.ferplus8: .* no class words for ferplus8 label\(s\) "
                                          r"\['contempt'\]"):
        load_backend("clip:ViT-S-32/random", replace(CONFIG, clip_prompts={"ferplus8": "clip_benchmark"}))
