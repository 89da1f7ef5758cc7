"""CLIP through transformers (for models open_clip lacks): a tiny random CLIPModel saved to a
folder with its own tokenizer and processor, loaded by ``clip:transformers:<folder>``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emolib.config import VLMConfig
from emolib.data import make_synthetic_faces
from emolib.predictions import score_matrix, validate_predictions
from emolib.templates import class_words, clip_templates, load_templates
from emolib.vlm import ModelUnavailable, load_backend


def build_tiny_clip(folder) -> None:
    import re

    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import (
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        CLIPProcessor,
        CLIPTextConfig,
        CLIPVisionConfig,
        PreTrainedTokenizerFast,
    )

    data = load_templates()
    words = {w for ts in data["clip_templates"].values() for t in ts for w in re.findall(r"\w+|[^\w\s]", t)}
    words |= {w for per_set in data["class_words"].values() for ws in per_set.values() for w in ws}
    vocab = {w: i for i, w in enumerate(["<unk>", "<pad>", "<s>", "</s>"] + sorted(words))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A </s>", special_tokens=[("<s>", 2), ("</s>", 3)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                        bos_token="<s>", eos_token="</s>", model_max_length=16)
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    config = CLIPConfig(
        text_config=CLIPTextConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32,
                                   num_hidden_layers=1, num_attention_heads=2, max_position_embeddings=16,
                                   pad_token_id=1, bos_token_id=2, eos_token_id=3),
        vision_config=CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, image_size=32, patch_size=16),
        projection_dim=8)
    torch.manual_seed(0)
    CLIPModel(config).eval().save_pretrained(folder)
    CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(folder)


def test_transformers_clip_scores_like_open_clip(tmp_path) -> None:
    build_tiny_clip(tmp_path)
    faces = make_synthetic_faces(per_class=1, seed=4).split("private_test")
    backend = load_backend(f"clip:transformers:{tmp_path}", VLMConfig(batch_size=3))
    frame = validate_predictions(backend.predict(faces, faces.label_set, None, "base"))
    scores = score_matrix(frame)
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
    assert np.ptp(scores, axis=1).max() > 0  # classes get different scores
    text = backend.text_features(faces.label_set, clip_templates(faces.label_set))
    assert text.shape == (7, 8) and len(class_words(faces.label_set)) == 7
    np.testing.assert_allclose(text.norm(dim=1).numpy(), 1.0, atol=1e-5)


def test_transformers_clip_not_cached_is_unavailable(monkeypatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailable, match="not in the local Hugging Face cache"):
        load_backend("clip:transformers:openai/clip-vit-base-patch32", VLMConfig())
