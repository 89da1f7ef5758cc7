"""Settings of the zero-shot VLM stage (notebook 04): models, endpoints, recorded answers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from emolib.config.checks import check_threads
from emolib.labels import get_label_set
from emolib.schema import ConfigError, at_least, within


@dataclass(frozen=True)
class EndpointConfig:
    """One OpenAI-compatible server (OpenAI, vLLM, SGLang, Ollama) and the model it serves.

    ``api_key_env`` names the environment variable that holds the key (never the key);
    ``image_max_side``: longer images are shrunk to it, aspect kept (null: sent as they are);
    ``concurrency``: requests in flight at once; ``guided``: constrained decoding (``choice``:
    vLLM's ``structured_outputs.choice``/``guided_choice`` over the label words;
    ``json_schema``: ``response_format`` json_schema whose one key takes a label word).
    """

    model: str
    base_url: str  # e.g. "http://127.0.0.1:8000/v1" (vLLM, SGLang) or "https://api.openai.com/v1"
    api_key_env: str = "OPENAI_API_KEY"
    image_max_side: int | None = field(default=None, metadata=at_least(1))
    image_format: Literal["png", "jpeg"] = "png"
    concurrency: int = field(default=4, metadata=at_least(1))
    guided: Literal["none", "choice", "json_schema"] = "none"

    def __post_init__(self) -> None:
        if not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(f"endpoint {self.model!r}: base_url {self.base_url!r} must start with http(s)://")
        if self.concurrency < 1 or (self.image_max_side is not None and self.image_max_side < 1):
            raise ConfigError(f"endpoint {self.model!r}: concurrency and image_max_side must be >= 1")


# what a recorded-answers file may hold (emolib.vlm.recorded_files), and how its answer is read
RECORDED_FILE_COLUMNS = ("image_id", "raw_answer", "ranked", "y_true")
RECORDED_ANSWER_MODES = ("raw", "first_ranked")


@dataclass(frozen=True)
class RecordedFileConfig:
    """One file of answers recorded elsewhere (``vlm.recorded_files``; format and join rules:
    ``emolib.vlm.recorded_files``). ``path`` is relative to the data root; ``answer``: ``raw``
    parses ``raw_answer``, ``first_ranked`` the first label of ``ranked``; ``columns`` maps a
    format column to the file's own name for it (``{image_id: name, y_true: gt}``)."""

    model: str
    set: str
    path: str
    label_set: str
    answer: Literal["raw", "first_ranked"] = "raw"
    columns: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        entry = f"vlm.recorded_files entry {{model: {self.model}, set: {self.set}, path: {self.path}}}"
        for key in ("model", "set"):  # both name the subset <set>_<model> and its file
            if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", getattr(self, key)):
                raise ConfigError(f"{entry}: {key} {getattr(self, key)!r} must be letters, digits, '.', '_' or '-'")
        if not self.path.strip():
            raise ConfigError(f"{entry}: path is empty; give the file (relative to EMOLIB_DATA_DIR)")
        try:
            get_label_set(self.label_set)
        except KeyError as err:
            raise ConfigError(f"{entry}: {err.args[0]}; name one of them or add the label set") from None
        unknown = sorted(set(self.columns) - set(RECORDED_FILE_COLUMNS))
        if unknown:
            raise ConfigError(f"{entry}: columns maps unknown format column(s) {unknown}; "
                              f"format columns: {list(RECORDED_FILE_COLUMNS)}")


@dataclass(frozen=True)
class VLMConfig:
    """Zero-shot vision-language models (notebook 04).

    OpenAI-compatible models: each of ``endpoints`` names its model and server (the models
    join ``openai_models``, the list of such models a profile asks for); a model of
    ``openai_models`` without an endpoint goes to ``openai_base_url`` (null: OpenAI) with
    ``api_key_env`` and ``concurrency``, as before endpoints existed. A repo may be in both
    ``hf_models`` and ``endpoints`` (vLLM serves it under its repo id): the same model through
    both backends, compared by ``emolib.vlm.agreement``.
    """

    clip_models: tuple[str, ...] = ("ViT-B-32/openai",)
    # models of clip_models also scored by LAION CLIP_benchmark's protocol (its FER-2013 templates
    # and class names, on the 7,178 faces of subset fer_kaggle_test), beside the published numbers
    # (emolib.vlm.published); out of the config hash while empty
    clip_benchmark_models: tuple[str, ...] = field(default=(), metadata={"omit_default": True})
    hf_models: tuple[str, ...] = ()
    openai_models: tuple[str, ...] = ()
    openai_base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    endpoints: tuple[EndpointConfig, ...] = ()  # one per OpenAI-compatible model (EndpointConfig)
    recorded: tuple[str, ...] = ("gpt4v",)  # shipped folders recorded/<model>/ (FER+, ArtPhoto, Abstract)
    # answers of any model on any set, one file each; out of the config hash while empty
    recorded_files: tuple[RecordedFileConfig, ...] = field(default=(), metadata={"omit_default": True})
    batch_size: int = field(default=32, metadata=at_least(1))
    max_new_tokens: int = field(default=64, metadata=at_least(1))
    temperature: float = field(default=0.0, metadata=within(0, 2))
    concurrency: int = field(default=4, metadata=at_least(1))
    # SBERT cosine needed to map a free answer to a label
    embedding_threshold: float = field(default=0.6, metadata=within(0, 1, low_open=True))
    # training images of the CLIP linear probe; null = all
    probe_train_size: int | None = field(default=2000, metadata=at_least(1))
    # inverse L2 strength of the probe's logistic regression
    probe_c: float = field(default=1.0, metadata=within(0, None, low_open=True))
    restored: bool = True  # also score the restored faces (restoration.selected) if available
    hf_trust_remote_code: bool = False  # run a cached model's own code (Phi-3.5-Vision needs it)
    request_timeout_s: float = field(default=60.0, metadata=within(0, None, low_open=True))
    max_retries: int = field(default=4, metadata=at_least(0))  # retries after the first attempt on 429/5xx/timeouts
    # backoff: base * 2**attempt (or the server's Retry-After)
    retry_base_s: float = field(default=1.0, metadata=at_least(0))
    json_mode: bool = True  # ask OpenAI-compatible servers for response_format json_object
    # torch's CPU threads for the VLM stages; auto: the cores this process may use; null = leave as is
    torch_threads: int | Literal["auto"] | None = None
    random_weights_ok: bool = False  # smoke only: random-weight stand-ins, flagged in every table
    random_image_size: int = field(default=64, metadata=at_least(16))  # input size of random-weight CLIP stand-ins
    random_context_length: int = field(default=32, metadata=at_least(8))  # text context of random-weight CLIP stand-ins
    # CLIP class words and templates per label set, by name from emolib/templates.yaml
    # `clip_prompts` (e.g. {fer7: clip_benchmark}); a set not named here uses its default there
    clip_prompts: dict[str, str] = field(default_factory=dict)
    # generative prompt per label set: a role (evoked | faces) or a prompt name of
    # emolib/templates.yaml `generative` (e.g. {myset: evoked}); a set not named here uses its
    # default there, and a label set of your own the role of its data sets (filled in by Profile);
    # out of the config hash while empty
    generative_prompts: dict[str, str] = field(default_factory=dict, metadata={"omit_default": True})

    def __post_init__(self) -> None:
        unlisted = [m for m in self.clip_benchmark_models if m not in self.clip_models]
        if unlisted:
            raise ConfigError(f"vlm.clip_benchmark_models: {unlisted} not in vlm.clip_models "
                              f"{list(self.clip_models)}; add them there or remove them here")
        twice = sorted({m for m in self.clip_benchmark_models if self.clip_benchmark_models.count(m) > 1})
        if twice:
            raise ConfigError(f"vlm.clip_benchmark_models: {twice} named more than once")
        if self.torch_threads is not None:
            check_threads(self.torch_threads, "vlm.torch_threads")
        pairs = [(f.model, f.set) for f in self.recorded_files]
        twice = sorted({p for p in pairs if pairs.count(p) > 1})
        if twice:
            raise ConfigError(f"vlm.recorded_files: (model, set) {twice} named by more than one entry")
        served = [e.model for e in self.endpoints]
        twice = sorted({m for m in served if served.count(m) > 1})
        if twice:
            raise ConfigError(f"vlm.endpoints: model(s) {twice} have more than one endpoint")
        unlisted = sorted(set(served) - set(self.openai_models))
        if unlisted:  # load_profile lists them (with_endpoint_models); a config built by hand must too
            raise ConfigError(f"vlm.openai_models: add the endpoint model(s) {unlisted} of vlm.endpoints")

    def endpoint(self, model: str) -> EndpointConfig:
        """The server of OpenAI-compatible ``model``: its endpoint, else the legacy settings."""
        for endpoint in self.endpoints:
            if endpoint.model == model:
                return endpoint
        return EndpointConfig(model=model, base_url=self.openai_base_url or "https://api.openai.com/v1",
                              api_key_env=self.api_key_env, concurrency=max(1, self.concurrency))
