"""Local generative VLMs through transformers: ``AutoProcessor`` + ``AutoModelForImageTextToText``.

Phi-3.5-Vision, LLaVA-1.5 / LLaVA-NeXT, Qwen2-VL, SmolVLM, Idefics3: whichever the installed
transformers supports. Weights come only from the local Hugging Face cache (or a local
folder): a model that is not there is ``ModelUnavailable``, never downloaded here. Each
prompt is wrapped in the model's chat template (one image, then the text); answers are
generated greedily by default (``VLMConfig.temperature == 0``), ``batch_size`` images at a
time with left padding, then parsed by ``parse_answer``.

``tiny-random-llava`` (only with ``VLMConfig.random_weights_ok``) is a LLaVA of a few
thousand random weights built locally by ``build_tiny_llava`` (its own word-level tokenizer,
CLIP image processor and chat template), saved to a folder and loaded through the very same
path a real model takes. Its answers measure nothing.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from jinja2 import TemplateError
from tqdm.auto import tqdm

from emolib.config import VLMConfig
from emolib.data import ImageSet, image_hash
from emolib.labels import LABEL_SETS, LabelSet
from emolib.vlm.base import ModelSpec, ModelUnavailable, answer_table
from emolib.vlm.cache import cache_key
from emolib.vlm.clip import to_pil
from emolib.vlm.parse import lazy_embedder
from emolib.vlm.templates import generative_prompt, load_templates

TINY_MODEL = "tiny-random-llava"
NESTED_IMAGES = ("Idefics2Processor", "Idefics3Processor", "SmolVLMProcessor")
TINY_CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}: {% for c in m['content'] %}"
    "{% if c['type'] == 'image' %}<image> {% else %}{{ c['text'] }} {% endif %}{% endfor %}"
    "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}")


def build_tiny_llava(folder: str | Path, seed: int = 0) -> Path:
    """Write a tiny random LLaVA (model, tokenizer, processor) to ``folder``; returns it."""
    import re

    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    folder = Path(folder)
    words = {w for text in load_templates()["generative"].values() for w in re.findall(r"\w+|[^\w\s]", text)}
    words |= {n for s in LABEL_SETS.values() for n in s.names} | {"user", "assistant", ":"}
    specials = ["<unk>", "<pad>", "<s>", "</s>", "<image>"]
    vocab = {w: i for i, w in enumerate(specials + sorted(words))}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tok.add_special_tokens(specials)  # matched before splitting, so "<image><image>" stays whole
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>",
                                        bos_token="<s>", eos_token="</s>", padding_side="left")
    image_processor = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=16,
                               vision_feature_select_strategy="default", chat_template=TINY_CHAT_TEMPLATE,
                               num_additional_image_tokens=1)
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, image_size=32, patch_size=16),
        text_config=LlamaConfig(vocab_size=len(vocab), hidden_size=16, intermediate_size=32,
                                num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                pad_token_id=1, bos_token_id=2, eos_token_id=3),
        image_token_index=vocab["<image>"], vision_feature_layer=-1,
        vision_feature_select_strategy="default", image_seq_length=4)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    with torch.no_grad():  # logit 0 for special tokens: a random model then answers in words
        model.lm_head.weight[: len(specials)] = 0.0
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def load_generative(repo: str | Path, device: str = "cpu", trust_remote_code: bool = False):
    """(model, processor) from the local cache or folder; ModelUnavailable if not there.

    Models whose own code registers only a causal-LM class (Phi-3.5-Vision) are loaded with
    ``AutoModelForCausalLM`` when ``AutoModelForImageTextToText`` does not know them.
    """
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor

    kwargs = {"local_files_only": True, "trust_remote_code": trust_remote_code}
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    try:
        processor = AutoProcessor.from_pretrained(repo, **kwargs)
        try:
            model = AutoModelForImageTextToText.from_pretrained(repo, dtype=dtype, **kwargs)
        except ValueError:
            model = AutoModelForCausalLM.from_pretrained(repo, dtype=dtype, **kwargs)
    except OSError as err:
        raise ModelUnavailable(f"{repo} is not in the local Hugging Face cache ({_first_line(err)})") from None
    except (ValueError, ImportError) as err:
        raise ModelUnavailable(f"{repo}: the installed transformers cannot load it ({_first_line(err)})") from None
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is not None:
        tokenizer.padding_side = "left"  # decoder-only batched generation pads on the left
    return model.to(device).eval(), processor


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:200] if text else type(err).__name__


class HFBackend:
    """Batched, cached generation with a transformers image-text-to-text model."""

    def __init__(self, spec: ModelSpec, model, processor, config: VLMConfig, cache=None,
                 device: str = "cpu") -> None:
        self.spec, self.model, self.processor = spec, model, processor
        self.config, self.cache, self.device = config, cache, device
        self.embedder = lazy_embedder()
        self.generate_calls = 0

    @property
    def settings(self) -> dict:
        c = self.config
        return {"max_new_tokens": c.max_new_tokens, "temperature": c.temperature}

    def chat_text(self, prompt: str) -> str:
        """The prompt in the model's chat template: one image, then the text."""
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        try:
            return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        except (TypeError, ValueError, AttributeError, TemplateError):
            # Remote-code processors (Phi-3.5-Vision) take plain text with an image placeholder.
            plain = [{"role": "user", "content": f"<|image_1|>\n{prompt}"}]
            return self.processor.tokenizer.apply_chat_template(plain, add_generation_prompt=True, tokenize=False)

    @torch.inference_mode()
    def generate(self, images: list[np.ndarray], prompt: str) -> list[str]:
        """One answer per image (same prompt), generated as one padded batch."""
        self.generate_calls += 1
        pil = [to_pil(im) for im in images]
        nested = type(self.processor).__name__ in NESTED_IMAGES
        inputs = self.processor(text=[self.chat_text(prompt)] * len(pil),
                                images=[[p] for p in pil] if nested else pil,
                                padding=True, return_tensors="pt").to(self.device)
        sample = self.config.temperature > 0
        out = self.model.generate(**inputs, max_new_tokens=self.config.max_new_tokens, do_sample=sample,
                                  temperature=self.config.temperature if sample else None,
                                  top_p=None, top_k=None)
        new = out[:, inputs["input_ids"].shape[1]:]
        return self.processor.batch_decode(new, skip_special_tokens=True)

    def predict(self, image_set: ImageSet, label_set: LabelSet, prompt: str | None,
                variant: str) -> pd.DataFrame:
        prompt = prompt or generative_prompt(label_set)
        images = image_set.images()
        keys = [cache_key("hf", self.spec.model, prompt, image_hash(im), self.settings) for im in images]
        hits = [self.cache.get(k) if self.cache is not None else None for k in keys]
        answers = [h.response if h else None for h in hits]
        latency = [h.latency_s if h else np.nan for h in hits]
        todo = [i for i, h in enumerate(hits) if h is None]
        size = self.config.batch_size
        for start in tqdm(range(0, len(todo), size), desc=f"hf {self.spec.model}", leave=False):
            chunk = todo[start:start + size]
            t0 = time.perf_counter()
            texts = self.generate([images[i] for i in chunk], prompt)
            per_image = (time.perf_counter() - t0) / len(chunk)
            for i, text in zip(chunk, texts, strict=True):
                answers[i], latency[i] = text, per_image
                if self.cache is not None:
                    self.cache.put(keys[i], text, per_image, "hf", self.spec.model, image_hash(images[i]),
                                   prompt, self.settings)
        return answer_table(image_set, label_set, self.spec, variant, answers, latency,
                            [None] * len(images), self.embedder, self.config.embedding_threshold)


def load_hf_backend(spec: ModelSpec, config: VLMConfig, cache=None, device: str = "cpu") -> HFBackend:
    """A ready backend for a local model id/folder; ``tiny-random-llava`` is built on the fly."""
    repo: str | Path = spec.model
    if spec.model == TINY_MODEL:
        if not config.random_weights_ok:
            raise ModelUnavailable("random weights are allowed only when vlm.random_weights_ok (smoke)")
        from emolib.paths import results_dir

        repo = results_dir("models") / TINY_MODEL
        if not (repo / "config.json").is_file():
            build_tiny_llava(repo)
    model, processor = load_generative(repo, device, config.hf_trust_remote_code)
    return HFBackend(spec, model, processor, config, cache, device)
