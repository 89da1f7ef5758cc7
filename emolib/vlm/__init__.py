"""Zero-shot vision-language models behind one interface (``types``; the registry of backends:
``backends.LOADERS``).

Backends: ``clip`` (open_clip / transformers CLIP), ``hf`` (local generative VLMs),
``openai`` (OpenAI-compatible endpoints), ``recorded`` (answers recorded elsewhere). Answers
are parsed by ``parse.parse_answer`` and cached by ``cache.ResponseCache``. Importing this
package loads neither torch nor transformers; each backend module does when first used.
"""

from emolib.templates import class_words, clip_templates, generative_prompt, load_templates
from emolib.vlm.backends import load_backend, model_specs, predict, status_table
from emolib.vlm.cache import ResponseCache, cache_path
from emolib.vlm.parse import ParsedAnswer, parse_answer
from emolib.vlm.types import ModelSpec, ModelUnavailable

__all__ = [
    "ModelSpec", "ModelUnavailable", "ParsedAnswer", "ResponseCache", "cache_path", "class_words",
    "clip_templates", "generative_prompt", "load_backend", "load_templates", "model_specs",
    "parse_answer", "predict", "status_table",
]
