"""CLIP zero-shot (and linear-probe features) through open_clip, or transformers CLIP/SigLIP.

Model names (the part after ``clip:``):

- ``<arch>/<pretrained tag>``, e.g. ``ViT-B-32/openai``, ``ViT-L-14/laion2b_s32b_b82k``:
  open_clip, weights only from the local cache (never downloaded here), built as the tag
  defines it (``build_open_clip``: QuickGELU for OpenAI's weights, the tag's mean/std,
  interpolation, resize mode and context length; a mismatch is a ValueError, not a warning).
- ``<arch>/<path to a .pt/.bin/.safetensors file>``: open_clip with local weights and the
  arch's own settings (OpenAI weights need the ``-quickgelu`` arch, e.g. ``ViT-B-32-quickgelu``).
- ``<arch>/random``: random weights (``VLMConfig.random_weights_ok`` only; smoke tests),
  drawn from ``RANDOM_WEIGHTS_SEED`` (two runs predict the same) and flagged "random
  weights — measures nothing" wherever its numbers appear.
- ``transformers:<repo or folder>``: a Hugging Face CLIP/SigLIP model (``AutoModel`` with
  ``get_image_features``/``get_text_features``), from the local cache only.

Zero-shot: the text embedding of a class is the mean of the unit text embeddings of all
(template, class word) pairs, normalised again; text features are computed once per
(label set, templates, words). Images are encoded in batches of ``VLMConfig.batch_size``.
Scores are ``softmax(logit_scale * cos)`` over classes, one row per image.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from emolib.config import VLMConfig
from emolib.data import ImageSet, image_hash
from emolib.labels import LabelSet
from emolib.predictions import image_columns, make_predictions
from emolib.quiet import progress_bar, quiet_logging
from emolib.templates import check_clip_prompts, class_words, clip_prompts_for, clip_templates
from emolib.vlm.cache import look_up
from emolib.vlm.types import ModelSpec, ModelUnavailable

WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
RANDOM_WEIGHTS_SEED = 0  # random-weight stand-ins: same weights, same predictions, every run


def to_pil(image: np.ndarray) -> Image.Image:
    """uint8 (H, W) or (H, W, 3) -> RGB PIL image (grey faces are repeated over 3 channels)."""
    return Image.fromarray(image).convert("RGB")


def cached_pretrained_file(arch: str, tag: str, weights: str = "auto") -> str:
    """Local file of open_clip weights ``arch``/``tag``, downloaded on first use when online
    (``emolib.vlm.fetch``); ModelUnavailable, naming the fetch command, if it cannot be had."""
    from emolib.vlm.fetch import open_clip_file

    return open_clip_file(arch, tag, weights)


def tag_settings(arch: str, tag: str) -> dict:
    """What open_clip's pretrained tag ``arch``/``tag`` defines: activation (``quick_gelu`` |
    ``gelu``), mean, std, interpolation, resize_mode, context_length (defaults: the arch's)."""
    import open_clip
    from open_clip.constants import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    cfg, arch_cfg = open_clip.get_pretrained_cfg(arch, tag), open_clip.get_model_config(arch) or {}
    if not cfg:
        raise ModelUnavailable(f"open_clip has no pretrained tag {tag!r} for {arch!r}")
    quick = bool(cfg.get("quick_gelu") or arch_cfg.get("quick_gelu"))
    return {"activation": "quick_gelu" if quick else "gelu",
            "mean": tuple(cfg.get("mean", OPENAI_DATASET_MEAN)), "std": tuple(cfg.get("std", OPENAI_DATASET_STD)),
            "interpolation": cfg.get("interpolation", "bicubic"), "resize_mode": cfg.get("resize_mode", "shortest"),
            "context_length": cfg.get("context_length", arch_cfg.get("text_cfg", {}).get("context_length", 77))}


def built_settings(model, preprocess) -> dict:
    """The same keys as ``tag_settings``, read from a built model's modules and transforms."""
    from open_clip.transform import ResizeKeepRatio
    from open_clip.transformer import QuickGELU
    from torchvision import transforms as T

    steps = preprocess.transforms
    norm = next(t for t in steps if isinstance(t, T.Normalize))
    resize = next(t for t in steps if isinstance(t, T.Resize | ResizeKeepRatio))
    mode = ("longest" if isinstance(resize, ResizeKeepRatio)
            else "shortest" if any(isinstance(t, T.CenterCrop) for t in steps) else "squash")
    acts = sorted({"quick_gelu" if isinstance(m, QuickGELU) else "gelu"
                   for m in model.modules() if isinstance(m, QuickGELU | torch.nn.GELU)})
    activation = "+".join(acts) or "none"  # "gelu+quick_gelu": a mixed build, always a mismatch
    return {"activation": activation, "mean": tuple(norm.mean), "std": tuple(norm.std),
            "interpolation": T.InterpolationMode(resize.interpolation).value, "resize_mode": mode,
            "context_length": model.context_length}


def check_tag_settings(arch: str, tag: str, model, preprocess) -> None:
    """ValueError naming every setting where a built model differs from its tag's."""
    want, got = tag_settings(arch, tag), built_settings(model, preprocess)
    diff = {k: (want[k], got[k]) for k in want
            if (not np.allclose(want[k], got[k]) if k in ("mean", "std") else want[k] != got[k])}
    if diff:
        raise ValueError(f"{arch}/{tag} built unlike its tag ({{setting: (tag, built)}}): {diff}")


def build_open_clip(arch: str, tag: str, pretrained: str | None, device: str = "cpu"):
    """(model, preprocess) of ``arch`` with the activation, preprocessing and context length
    of pretrained tag ``tag``, weights from the file ``pretrained`` (None: random, no download).
    Loading weights from a file would otherwise give the arch's defaults (GELU, OpenAI mean/std)."""
    import open_clip

    want = tag_settings(arch, tag)
    model, _, preprocess = open_clip.create_model_and_transforms(
        arch, pretrained=pretrained, device=device, force_quick_gelu=want["activation"] == "quick_gelu",
        force_context_length=want["context_length"], image_mean=want["mean"], image_std=want["std"],
        image_interpolation=want["interpolation"], image_resize_mode=want["resize_mode"])
    check_tag_settings(arch, tag, model, preprocess)
    return model.eval(), preprocess


def build_random_clip(arch: str, config: VLMConfig, device: str = "cpu"):
    """(model, preprocess) with random weights drawn from a fixed seed: two builds are identical.
    The caller's torch random state is left as it was."""
    import open_clip

    with torch.random.fork_rng(devices=[]), quiet_logging():  # initialised on the CPU, then moved
        torch.manual_seed(RANDOM_WEIGHTS_SEED)
        # Random weights measure nothing, so shrink input and context to keep smoke runs fast.
        model, _, preprocess = open_clip.create_model_and_transforms(
            arch, pretrained=None, device=device, force_image_size=config.random_image_size,
            force_context_length=config.random_context_length)
    return model.eval(), preprocess


def _open_clip_model(arch: str, weights: str, config: VLMConfig, device: str, mode: str = "auto"):
    import open_clip

    if arch not in open_clip.list_models():
        raise ModelUnavailable(f"open_clip has no architecture {arch!r}")
    if weights == "random":
        if not config.random_weights_ok:
            raise ModelUnavailable("random weights are allowed only when vlm.random_weights_ok (smoke)")
        model, preprocess = build_random_clip(arch, config, device)
    elif weights.endswith(WEIGHT_SUFFIXES):
        if not Path(weights).is_file():
            raise ModelUnavailable(f"weights file {weights} does not exist")
        # No tag to read settings from: OpenAI weights need the "-quickgelu" architecture name.
        model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=weights, device=device)
        model = model.eval()
    else:
        model, preprocess = build_open_clip(arch, weights, cached_pretrained_file(arch, weights, mode), device)
    return model, preprocess, open_clip.get_tokenizer(arch, context_length=model.context_length)


class _TransformersClip(torch.nn.Module):
    """A transformers CLIP/SigLIP model behind open_clip's encode_image/encode_text."""

    def __init__(self, model, processor) -> None:
        super().__init__()
        self.model, self.processor = model, processor
        scale = getattr(model, "logit_scale", None)
        self.logit_scale = scale if scale is not None else torch.nn.Parameter(torch.tensor(np.log(100.0)))

    def encode_image(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return _as_tensor(self.model.get_image_features(pixel_values=pixel_values))

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        tokens = self.processor.tokenizer(texts, padding="max_length", truncation=True, return_tensors="pt")
        return _as_tensor(self.model.get_text_features(**tokens.to(self.model.device)))


def _as_tensor(out) -> torch.Tensor:
    return out if isinstance(out, torch.Tensor) else out.pooler_output


def _transformers_model(repo: str, device: str, mode: str = "auto"):
    from transformers import AutoModel, AutoProcessor

    from emolib.vlm.fetch import hf_local_only

    try:
        processor = AutoProcessor.from_pretrained(repo, local_files_only=hf_local_only(repo, mode))  # fetched first
        model = AutoModel.from_pretrained(repo, local_files_only=True).to(device).eval()
    except (OSError, ValueError) as err:
        raise ModelUnavailable(f"{repo} is not in the local Hugging Face cache: {str(err)[:160]}") from err
    wrapped = _TransformersClip(model, processor)
    preprocess = lambda img: processor(images=img, return_tensors="pt")["pixel_values"][0]  # noqa: E731
    return wrapped, preprocess, lambda texts: list(texts)


class ClipBackend:
    """Zero-shot CLIP over any label set; ``text_encodes`` counts text-feature computations."""

    def __init__(self, spec: ModelSpec, model, preprocess, tokenizer, config: VLMConfig,
                 cache=None, device: str = "cpu") -> None:
        self.spec, self.model, self.preprocess, self.tokenizer = spec, model, preprocess, tokenizer
        self.config, self.cache, self.device = config, cache, device
        check_clip_prompts(config.clip_prompts)  # an unknown choice fails before any image is encoded
        self._text: dict[tuple, torch.Tensor] = {}
        self.text_encodes = 0
        self.image_encodes = 0

    def prompts_for(self, label_set: LabelSet) -> str:
        """Name of the CLIP prompts (templates.yaml) this backend uses for ``label_set``."""
        return clip_prompts_for(label_set, self.config.clip_prompts)

    @torch.inference_mode()
    def text_features(self, label_set: LabelSet, templates: tuple[str, ...],
                      prompts: str | None = None) -> torch.Tensor:
        """(k, d) unit class embeddings, averaged over templates and the class words of the CLIP
        prompts ``prompts`` (default: the profile's for ``label_set``); memoised."""
        words = class_words(label_set, prompts or self.prompts_for(label_set))
        key = (label_set.names, templates, words)
        if key not in self._text:
            self.text_encodes += 1
            rows = []
            for class_words_ in words:
                texts = [t.replace("{c}", w) for w in class_words_ for t in templates]
                tokens = self.tokenizer(texts)
                if isinstance(tokens, torch.Tensor):
                    tokens = tokens.to(self.device)
                emb = self.model.encode_text(tokens).float()
                emb = torch.nn.functional.normalize(emb, dim=-1).mean(dim=0)
                rows.append(torch.nn.functional.normalize(emb, dim=0))
            self._text[key] = torch.stack(rows)
        return self._text[key]

    @torch.inference_mode()
    def image_features(self, images: list[np.ndarray], progress: bool | None = None) -> np.ndarray:
        """(n, d) unit image embeddings, encoded in batches of ``config.batch_size``."""
        out = []
        batches = range(0, len(images), self.config.batch_size)
        for start in progress_bar(batches, progress, desc=f"clip {self.spec.model}", leave=False):
            chunk = images[start:start + self.config.batch_size]
            pixels = torch.stack([self.preprocess(to_pil(im)) for im in chunk]).to(self.device)
            emb = self.model.encode_image(pixels).float()
            self.image_encodes += len(chunk)
            out.append(torch.nn.functional.normalize(emb, dim=-1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)

    def scores(self, features: np.ndarray, text: torch.Tensor) -> np.ndarray:
        """(n, k) softmax over classes of ``logit_scale * cos(image, class)``."""
        scale = float(self.model.logit_scale.detach().exp())
        logits = scale * torch.from_numpy(features) @ text.cpu().T
        return torch.softmax(logits, dim=-1).numpy()

    def predict(self, image_set: ImageSet, label_set: LabelSet, prompt: str | tuple[str, ...] | None,
                prompt_name: str) -> pd.DataFrame:
        """Predictions of ``image_set`` over ``label_set``: ``prompt`` is a template or a tuple of
        templates (None: the templates of the profile's CLIP prompts), with the class words of
        the profile's CLIP prompts; ``prompt_name`` goes into the ``prompt`` column."""
        prompts = self.prompts_for(label_set)
        templates = clip_templates(label_set, prompts=prompts) if prompt is None else (
            (prompt,) if isinstance(prompt, str) else tuple(prompt))
        return self._predict(image_set, label_set, templates, prompts, prompt_name)

    def predict_prompts(self, image_set: ImageSet, label_set: LabelSet, prompts: str,
                        prompt_name: str) -> pd.DataFrame:
        """Predictions with the templates and class words of the CLIP prompts ``prompts`` of
        templates.yaml (``clip_benchmark``, say), whatever the profile chose for ``label_set``."""
        return self._predict(image_set, label_set, clip_templates(label_set, prompts=prompts), prompts, prompt_name)

    def _predict(self, image_set: ImageSet, label_set: LabelSet, templates: tuple[str, ...], prompts: str,
                 prompt_name: str) -> pd.DataFrame:
        """One row per image; cached per (model, templates and class words, image)."""
        text = self.text_features(label_set, templates, prompts)
        prompt_text = json.dumps([templates, class_words(label_set, prompts)])
        images = image_set.images()
        calls = look_up(self.cache, "clip", self.spec.model, prompt_text, [image_hash(im) for im in images],
                        {"zero_shot": 1})
        scores = np.zeros((len(images), len(label_set)))
        latency = np.zeros(len(images))
        for i, hit in enumerate(calls.found):
            if hit is not None:
                scores[i], latency[i] = json.loads(hit.response), hit.latency_s
        if todo := calls.todo:
            t0 = time.perf_counter()
            new = self.scores(self.image_features([images[i] for i in todo]), text)
            per_image = (time.perf_counter() - t0) / len(todo)
            for j, i in enumerate(todo):
                scores[i], latency[i] = new[j], per_image
                calls.put(i, json.dumps(new[j].tolist()), per_image)
        return make_predictions(
            **image_columns(image_set) | {"label_set": label_set.name},
            y_pred=scores.argmax(axis=1), scores=list(scores), model=self.spec.model, backend="clip",
            prompt=prompt_name, seed=0, parse_status="scored", latency_s=latency)


def load_clip_backend(spec: ModelSpec, config: VLMConfig, cache=None, device: str = "cpu",
                      weights: str = "auto") -> ClipBackend:
    """A ready CLIP backend for ``spec.model`` (see module docstring); ModelUnavailable if not."""
    if spec.model.startswith("transformers:"):
        model, preprocess, tokenizer = _transformers_model(spec.model.split(":", 1)[1], device, weights)
    else:
        arch, sep, tag = spec.model.partition("/")
        if not sep:
            raise ModelUnavailable(f"clip model {spec.model!r} must be '<arch>/<pretrained tag>'")
        model, preprocess, tokenizer = _open_clip_model(arch, tag, config, device, weights)
    return ClipBackend(spec, model, preprocess, tokenizer, config, cache, device)
