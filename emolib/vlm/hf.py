"""Local generative VLMs through transformers: ``AutoProcessor`` + ``AutoModelForImageTextToText``.

LLaVA-1.5, LLaVA-NeXT, Qwen2-VL, Qwen2.5-VL, Idefics3, SmolVLM, Gemma 3 and PaliGemma run
here (each proven by tests on tiny random models of the real classes); what differs between
families lives in ``hf_families``. Weights are read from the local Hugging Face cache (or a
local folder), fetched there first by ``fetch.hf_local_only``; a model that cannot be had
is ``ModelUnavailable``, and so is one the installed transformers cannot load (the reason
says which piece is missing; for Phi-3.5-Vision before anything is fetched).
Each prompt is laid out in the model's chat template (one image, then the text; one BOS);
answers are generated greedily by default (``VLMConfig.temperature == 0``), ``batch_size``
images at a time with left padding, and only the new tokens are decoded, then parsed by
``parse_answer``. Models load with ``low_cpu_mem_usage`` and, on CUDA, ``device_map`` straight
to the GPU (a 7B model never sits whole in host RAM); a CUDA out-of-memory error halves the
batch and goes on (answers of finished batches are already cached). The response cache key
holds the dtype and device, since both change greedy answers.

Phi-3.5-Vision runs on its own modelling code (``vlm.hf_trust_remote_code: true``): it loads
as a causal LM, and its processor takes one prompt per call, so each is encoded alone and
left-padded here. That code was written for transformers 4.4x: on a transformers without the
pieces it uses (``hf_families.PHI3V_NEEDS``; 4.56 and 5.x lack ``DynamicCache.seen_tokens``)
it cannot run in-process, and the status table names what is gone. vLLM serves it natively:
``vllm serve microsoft/Phi-3.5-vision-instruct --trust-remote-code``, then
``openai_models: [microsoft/Phi-3.5-vision-instruct]`` with ``openai_base_url``
(``http://<host>:8000/v1``) through the ``openai:`` backend.

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

from emolib.config import VLMConfig
from emolib.data import ImageSet, image_hash
from emolib.labels import LABEL_SETS, LabelSet
from emolib.quiet import progress_bar
from emolib.templates import generative_prompt, load_templates
from emolib.vlm import hf_families
from emolib.vlm.cache import Lookup, look_up
from emolib.vlm.clip import to_pil
from emolib.vlm.embed import lazy_embedder
from emolib.vlm.parse import answer_table
from emolib.vlm.types import ModelSpec, ModelUnavailable

TINY_MODEL = "tiny-random-llava"
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
                                        bos_token="<s>", eos_token="</s>", padding_side="left",
                                        model_input_names=["input_ids", "attention_mask"])  # as Llama's
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
    with torch.random.fork_rng():  # seeded weights without touching the caller's random state
        torch.manual_seed(seed)
        model = LlavaForConditionalGeneration(config).eval()
    with torch.no_grad():  # logit 0 for special tokens: a random model then answers in words
        model.lm_head.weight[: len(specials)] = 0.0
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def load_generative(repo: str | Path, device: str = "cpu", trust_remote_code: bool = False, weights: str = "auto"):
    """(model, processor) from the local cache or folder; ModelUnavailable with the reason if
    it cannot be had or cannot load here (Phi-3.5-Vision's misfit is known before any fetch).

    On CUDA the weights go straight to the GPU (``device_map``), never whole into host RAM.
    """
    import transformers
    from transformers import AutoProcessor

    from emolib.vlm.fetch import hf_local_only

    kind = hf_families.model_type(repo)
    hf_families.check_loadable(repo, kind, trust_remote_code)
    kwargs = {"local_files_only": hf_local_only(repo, weights), "trust_remote_code": trust_remote_code}  # fetched first
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    # low_cpu_mem_usage: transformers >= 4.56 always loads lazily and drops the flag; kept for clarity
    placement = {"low_cpu_mem_usage": True} | ({"device_map": device} if device.startswith("cuda") else {})
    try:
        processor = AutoProcessor.from_pretrained(repo, **kwargs)
        model = hf_families.model_class(kind).from_pretrained(repo, dtype=dtype, **placement,
                                                              **hf_families.load_kwargs(kind), **kwargs)
    except OSError as err:
        raise ModelUnavailable(f"{repo} is not in the local Hugging Face cache ({_first_line(err)})") from None
    except ImportError as err:  # a missing package (num2words), or remote code importing a gone module
        what = "transformers" if (err.name or "").startswith("transformers") else "Python"
        raise ModelUnavailable(f"{repo}: a {what} module it needs is missing here ({_first_line(err)})") from None
    except ValueError as err:
        raise ModelUnavailable(f"{repo}: transformers {transformers.__version__} cannot load it "
                               f"({_first_line(err)})") from None
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is not None:
        tokenizer.padding_side = "left"  # decoder-only batched generation pads on the left
    return (model if "device_map" in placement else model.to(device)).eval(), processor


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0][:300] if text else type(err).__name__


class HFBackend:
    """Batched, cached generation with a transformers image-text-to-text model."""

    def __init__(self, spec: ModelSpec, model, processor, config: VLMConfig, cache=None,
                 device: str = "cpu") -> None:
        self.spec, self.model, self.processor = spec, model, processor
        self.config, self.cache, self.device = config, cache, device
        self.embedder = lazy_embedder()
        self.generate_calls = 0
        self.max_batch: int | None = None  # lowered by a CUDA out-of-memory error, for the backend's life

    @property
    def settings(self) -> dict:
        """Everything besides model, prompt and image that changes an answer (the cache key)."""
        c = self.config
        return {"max_new_tokens": c.max_new_tokens, "temperature": c.temperature,
                "dtype": str(self.model.dtype).removeprefix("torch."), "device": self.device}

    def chat_text(self, prompt: str) -> str:
        """The prompt laid out for the model (chat template: one image, then the text)."""
        return hf_families.chat_text(self.processor, prompt)

    def encode(self, images: list[np.ndarray], prompt: str) -> dict:
        """Model inputs of one batch (``input_ids`` of shape (len(images), tokens), left-padded)."""
        pil = [to_pil(im) for im in images]
        return hf_families.encode(self.processor, [self.chat_text(prompt)] * len(pil), pil)

    @torch.inference_mode()
    def generate(self, images: list[np.ndarray], prompt: str) -> list[str]:
        """One answer per image (same prompt), generated as one padded batch."""
        self.generate_calls += 1
        inputs = self.encode(images, prompt).to(self.device)
        sample = self.config.temperature > 0
        out = self.model.generate(**inputs, max_new_tokens=self.config.max_new_tokens, do_sample=sample,
                                  temperature=self.config.temperature if sample else None,
                                  top_p=None, top_k=None)
        new = out[:, inputs["input_ids"].shape[1]:]
        return self.processor.batch_decode(new, skip_special_tokens=True)

    def answer_all(self, images: list[np.ndarray], calls: Lookup, prompt: str):
        """Yield (i, answer, seconds per image) for every ``images[i]``, i in ``calls.todo``, a batch
        at a time, each answer cached as its batch ends. A CUDA out-of-memory error halves the batch
        and retries it (at batch 1 it is raised)."""
        start, todo = 0, calls.todo
        with progress_bar(total=len(todo), desc=f"hf {self.spec.model}", leave=False) as bar:
            while start < len(todo):
                size = min(self.config.batch_size, self.max_batch or self.config.batch_size)
                chunk = todo[start:start + size]
                t0 = time.perf_counter()
                try:
                    texts = self.generate([images[i] for i in chunk], prompt)
                except torch.cuda.OutOfMemoryError:
                    if len(chunk) == 1:
                        raise
                    self.max_batch = max(1, size // 2)
                    torch.cuda.empty_cache()
                    continue
                per_image = (time.perf_counter() - t0) / len(chunk)
                for i, text in zip(chunk, texts, strict=True):
                    calls.put(i, text, per_image)
                    yield i, text, per_image
                start += len(chunk)
                bar.update(len(chunk))

    def predict(self, image_set: ImageSet, label_set: LabelSet, prompt: str | None,
                prompt_name: str) -> pd.DataFrame:
        prompt = prompt or generative_prompt(label_set, selection=self.config.generative_prompts)
        images = image_set.images()
        calls = look_up(self.cache, "hf", self.spec.model, prompt, [image_hash(im) for im in images], self.settings)
        answers = [h.response if h else None for h in calls.found]
        latency = [h.latency_s if h else np.nan for h in calls.found]
        for i, text, seconds in self.answer_all(images, calls, prompt):
            answers[i], latency[i] = text, seconds
        return answer_table(image_set, label_set, self.spec, prompt_name, answers, latency,
                            [None] * len(images), self.embedder, self.config.embedding_threshold)


def load_hf_backend(spec: ModelSpec, config: VLMConfig, cache=None, device: str = "cpu",
                    weights: str = "auto") -> HFBackend:
    """A ready backend for a local model id/folder; ``tiny-random-llava`` is built on the fly."""
    repo: str | Path = spec.model
    if spec.model == TINY_MODEL:
        if not config.random_weights_ok:
            raise ModelUnavailable("random weights are allowed only when vlm.random_weights_ok (smoke)")
        from emolib.paths import results_dir

        repo = results_dir("models") / TINY_MODEL
        if not (repo / "config.json").is_file():
            build_tiny_llava(repo)
    model, processor = load_generative(repo, device, config.hf_trust_remote_code, weights)
    backend = HFBackend(spec, model, processor, config, cache, device)
    try:  # a prompt layout that fails shows in the status table, not halfway through a run
        backend.chat_text("Which emotion?")
    except (TemplateError, ValueError, TypeError) as err:
        raise ModelUnavailable(f"{repo}: its chat template fails ({_first_line(err)})") from None
    return backend
