"""What differs between generative VLM families in transformers, kept out of ``hf.py``.

Dispatch is by the processor's class name (what ``AutoProcessor`` returns) or the config's
``model_type``; everything else takes the common path (chat template, one flat image list).

- Prompt layout: the processor's chat template (one image, then the text), except
  ``PLAIN_PROMPT`` families without one (PaliGemma: the processor itself lays out image
  tokens, BOS, text, newline) and ``TOKENIZER_TEMPLATE`` ones (Phi-3.5-Vision: the tokenizer's
  template around an ``<|image_1|>`` placeholder).
- BOS: templates that write the BOS token themselves (Idefics3, Gemma 3) would get a second
  one from a tokenizer that adds it; ``chat_text`` drops the template's copy.
- Images: ``NESTED_IMAGES`` processors take one list of images per prompt; ``ONE_TEXT``
  processors (Phi-3.5-Vision's own code) take one prompt per call, so each is encoded alone
  and the batch is left-padded by ``collate_left``.
- Loading: ``check_loadable`` turns what is known to fail into ``ModelUnavailable`` with the
  reason before any weight is read (Phi-3.5-Vision's own code on this transformers).
"""

from __future__ import annotations

import importlib
import importlib.util
import json
from pathlib import Path

import torch

from emolib.vlm.types import ModelUnavailable

NESTED_IMAGES = ("Idefics2Processor", "Idefics3Processor", "SmolVLMProcessor", "Gemma3Processor")
PLAIN_PROMPT = ("PaliGemmaProcessor",)
TOKENIZER_TEMPLATE = ("Phi3VProcessor",)
ONE_TEXT = ("Phi3VProcessor",)
CAUSAL_LM_TYPES = ("phi3_v",)  # remote code that registers only AutoModelForCausalLM
KNOWN_MODEL_TYPES = {"microsoft/Phi-3.5-vision-instruct": "phi3_v", "microsoft/Phi-3-vision-128k-instruct": "phi3_v"}
PHI3V_SERVE = ("serve it with vLLM (`vllm serve {repo} --trust-remote-code`; vLLM has its own Phi-3.5-Vision) and "
               "list it as openai_models: [{repo}] with vlm.openai_base_url: http://<host>:8000/v1")
# What Phi-3.5-Vision's modelling code (modeling_phi3_v.py) takes from transformers: imports,
# then the cache API its prepare_inputs_for_generation calls.
PHI3V_NEEDS = (("transformers.modeling_attn_mask_utils", "_prepare_4d_causal_attention_mask"),
               ("transformers.utils", "is_flash_attn_greater_or_equal_2_10"),
               ("transformers.models.clip.modeling_clip", "CLIPAttention"),
               ("transformers.cache_utils", "DynamicCache.seen_tokens"),
               ("transformers.cache_utils", "DynamicCache.get_max_length"))


def model_type(repo: str | Path) -> str | None:
    """``model_type`` of a local folder or a cached repo's config.json (else of a known repo id)."""
    from huggingface_hub import try_to_load_from_cache
    from huggingface_hub.errors import HFValidationError

    folder = Path(repo)
    if folder.is_dir():
        path = folder / "config.json"  # when missing, from_pretrained says what the folder lacks
        return json.loads(path.read_text()).get("model_type") if path.is_file() else None
    try:
        cached = try_to_load_from_cache(str(repo), "config.json")
    except HFValidationError as err:
        raise ModelUnavailable(f"{repo} is neither a model folder here nor a hub repo id ({err})") from None
    if not isinstance(cached, str):  # not cached (yet)
        return KNOWN_MODEL_TYPES.get(str(repo))
    return json.loads(Path(cached).read_text()).get("model_type")


def missing_from_transformers(needs: tuple[tuple[str, str], ...]) -> list[str]:
    """The ``module.attribute`` names of ``needs`` that the installed transformers lacks."""
    missing = []
    for module, attribute in needs:
        if importlib.util.find_spec(module) is None:
            missing.append(f"{module}.{attribute}")
            continue
        owner = importlib.import_module(module)
        for part in attribute.split("."):
            owner = getattr(owner, part, None)
        if owner is None:
            missing.append(f"{module}.{attribute}")
    return missing


def check_loadable(repo: str | Path, kind: str | None, trust_remote_code: bool) -> None:
    """Raise ``ModelUnavailable`` for what cannot load here, with the reason and what to do."""
    if kind != "phi3_v":
        return
    import transformers

    missing = missing_from_transformers(PHI3V_NEEDS)
    if missing:
        raise ModelUnavailable(
            f"{repo}: Phi-3.5-Vision runs on its own modelling code, which needs {', '.join(missing)}, "
            f"gone from the installed transformers {transformers.__version__} (that code was written for "
            f"transformers 4.4x, older than the 4.56 emolib needs); {PHI3V_SERVE.format(repo=repo)}")
    if not trust_remote_code:
        raise ModelUnavailable(f"{repo}: it runs on its own modelling code; set vlm.hf_trust_remote_code: true")


def model_class(kind: str | None):
    """The Auto class that loads this model type."""
    import transformers

    return transformers.AutoModelForCausalLM if kind in CAUSAL_LM_TYPES else transformers.AutoModelForImageTextToText


def load_kwargs(kind: str | None) -> dict:
    """Extra ``from_pretrained`` arguments of a model type."""
    if kind == "phi3_v" and importlib.util.find_spec("flash_attn") is None:
        return {"_attn_implementation": "eager"}  # its config asks for flash_attention_2
    return {}


def adds_bos(tokenizer) -> bool:
    """Whether ``tokenizer`` puts a BOS token in front of every text by itself."""
    if tokenizer.bos_token_id is None:
        return False
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return bool(ids) and ids[0] == tokenizer.bos_token_id


def chat_text(processor, prompt: str) -> str:
    """``prompt`` laid out as the model expects it, one image first; at most one BOS."""
    name = type(processor).__name__
    tokenizer = processor.tokenizer
    if name in PLAIN_PROMPT:
        return f"{processor.image_token}{prompt}"  # the processor adds BOS and the trailing newline
    if name in TOKENIZER_TEMPLATE:
        messages = [{"role": "user", "content": f"<|image_1|>\n{prompt}"}]
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    elif getattr(processor, "chat_template", None) is None:
        raise ModelUnavailable(f"{name} has no chat template and emolib knows no prompt layout for it")
    else:
        messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]}]
        text = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    bos = tokenizer.bos_token
    if bos and text.startswith(bos) and adds_bos(tokenizer):
        text = text[len(bos):]  # the tokenizer adds it again
    return text


def encode(processor, texts: list[str], images: list) -> dict:
    """Model inputs of one batch: ``texts[i]`` with ``images[i]`` (PIL), left-padded."""
    name = type(processor).__name__
    if name in ONE_TEXT:
        features = [processor(text=text, images=[image], return_tensors="pt")
                    for text, image in zip(texts, images, strict=True)]
        return collate_left(features, processor.tokenizer.pad_token_id)
    batch_images = [[image] for image in images] if name in NESTED_IMAGES else images
    return processor(text=texts, images=batch_images, padding=True, return_tensors="pt")


def collate_left(features: list, pad_id: int) -> dict:
    """One batch of per-prompt encodings: sequences left-padded, everything else concatenated."""
    from transformers import BatchFeature

    width = max(f["input_ids"].shape[-1] for f in features)
    data = {}
    for key in [k for k in features[0].keys() if k != "labels"]:
        parts = [f[key] for f in features]
        if all(p.shape == f["input_ids"].shape for p, f in zip(parts, features, strict=True)):  # per token
            value = pad_id if key == "input_ids" else 0  # attention mask, token types: 0 on padding
            parts = [torch.nn.functional.pad(p, (width - p.shape[-1], 0), value=value) for p in parts]
        data[key] = torch.cat(parts)
    return BatchFeature(data)
