"""Any OpenAI-compatible Chat Completions endpoint: OpenAI, vLLM, SGLang, Ollama.

Each model is served by one endpoint (``VLMConfig.endpoint(model)``, an ``EndpointConfig``),
checked at load time: ``GET {base_url}/models`` must list the model. One user message per
image: the image first (a PNG or JPEG data URL, shrunk to ``image_max_side`` when longer),
then the prompt text, as the HF backend orders them. Requests run ``endpoint.concurrency`` at
a time.

Faults never crash a run. A 408/409/429/5xx, a timeout or a refused/reset connection is
retried up to ``max_retries`` times after ``retry_base_s * 2**attempt`` seconds, or the
server's ``Retry-After`` (seconds or an HTTP date, at most ``MAX_RETRY_AFTER_S``). Another
status, a 200 whose body is not a chat completion, or a null ``content`` is not retried in
this run. A call that fails is an error row (``parse_status "error"``, ``y_pred -1``, the
reason in ``raw_response``), is never cached, and so is asked again by the next run; the
frame's ``attrs["n_errors"]`` and the backend's ``n_errors`` count them (a stage that finds
error rows is incomplete).

Constrained decoding (``EndpointConfig.guided``, or ``backend.guided`` per run): ``choice``
sends the label words as vLLM's ``structured_outputs.choice`` and, for vLLM before 0.12,
``guided_choice``; ``json_schema`` sends ``response_format`` with a JSON schema whose one key
``prediction`` takes a label word (OpenAI, vLLM and SGLang accept it). The prompt sweep's
``constrained_*`` variants set ``backend.guided`` for their own requests on an endpoint whose
answers are otherwise free; ``guided_refusal`` says why an endpoint cannot take a mode.

The API key is read from the environment variable ``endpoint.api_key_env`` only, sent in
the Authorization header, and never written to a table, a cache, a log or an error text.
"""

from __future__ import annotations

import base64
import email.utils
import functools
import io
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

import httpx
import numpy as np
import pandas as pd
from PIL import Image

from emolib.config import EndpointConfig, VLMConfig
from emolib.data import ImageSet, image_hash
from emolib.labels import LabelSet
from emolib.quiet import progress_bar
from emolib.templates import generative_prompt
from emolib.vlm.cache import look_up
from emolib.vlm.embed import lazy_embedder
from emolib.vlm.parse import answer_table
from emolib.vlm.types import ModelSpec, ModelUnavailable

OPENAI_URL = "https://api.openai.com/v1"
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}
MAX_RETRY_AFTER_S = 120.0  # a server asking for longer is waited on this long at most
Answer = tuple[str | None, float, str | None]  # (answer text, latency_s, error text)


def image_data_url(image: np.ndarray, image_format: str = "png", max_side: int | None = None) -> str:
    """uint8 (H, W) or (H, W, 3) image -> ``data:image/<png|jpeg>;base64,...``, its longest
    side shrunk to ``max_side`` (aspect kept) when it is longer."""
    pil = Image.fromarray(image)
    if max_side is not None and max(pil.size) > max_side:
        scale = max_side / max(pil.size)
        pil = pil.resize((max(1, round(pil.width * scale)), max(1, round(pil.height * scale))),
                         Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    pil.save(buffer, format="JPEG", quality=95) if image_format == "jpeg" else pil.save(buffer, format="PNG")
    return f"data:image/{image_format};base64," + base64.b64encode(buffer.getvalue()).decode()


def retry_after_s(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay seconds or an HTTP date); None
    when absent or unreadable. Never negative, never above ``MAX_RETRY_AFTER_S``."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def completion_text(response: httpx.Response) -> tuple[str | None, str | None]:
    """(content, error) of a 200 chat completion; a malformed body or null content is an error."""
    try:
        choice = response.json()["choices"][0]
        content = choice["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        # type and size only: a body's text could echo the request, key included
        kind = response.headers.get("content-type", "no content type")
        return None, f"error: malformed response body ({kind}, {len(response.content)} bytes)"
    if not isinstance(content, str):
        return None, f"error: {type(content).__name__} content (finish_reason {choice.get('finish_reason')!r})"
    return content, None


def guided_fields(guided: str, words: tuple[str, ...]) -> dict:
    """Request fields that constrain the answer to one of ``words`` (see module docstring)."""
    if guided == "choice":
        return {"structured_outputs": {"choice": list(words)}, "guided_choice": list(words)}
    if guided == "json_schema":
        schema = {"type": "object", "properties": {"prediction": {"type": "string", "enum": list(words)}},
                  "required": ["prediction"], "additionalProperties": False}
        return {"response_format": {"type": "json_schema",
                                    "json_schema": {"name": "emotion", "schema": schema, "strict": True}}}
    return {}


def _count_errors(predict):
    """Puts the number of error rows of ``predict``'s frame in ``attrs`` and ``self.n_errors``."""
    @functools.wraps(predict)
    def wrapper(self, *args, **kwargs) -> pd.DataFrame:
        frame = predict(self, *args, **kwargs)
        self.n_errors = int((frame["parse_status"] == "error").sum())
        frame.attrs["n_errors"] = self.n_errors
        return frame
    return wrapper


class OpenAIBackend:
    """Chat Completions client of one endpoint: bounded concurrency, retries, a response cache.

    ``calls`` counts HTTP requests (retries included); ``n_errors`` the error rows of the last
    ``predict``; ``guided`` (none | choice | json_schema) starts as the endpoint's.
    """

    def __init__(self, spec: ModelSpec, base_url: str, api_key: str | None, config: VLMConfig,
                 cache=None, endpoint: EndpointConfig | None = None) -> None:
        self.spec, self.base_url, self.config, self.cache = spec, base_url.rstrip("/"), config, cache
        self.endpoint = endpoint or replace(config.endpoint(spec.model), base_url=self.base_url)
        self.guided = self.endpoint.guided
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(headers=headers, timeout=config.request_timeout_s,
                                   limits=httpx.Limits(max_connections=self.endpoint.concurrency))
        self.embedder = lazy_embedder()
        self.calls = 0
        self.n_errors = 0
        self._lock = threading.Lock()

    def guided_refusal(self, guided: str) -> str:
        """Why this endpoint cannot answer a variant under ``guided`` besides its free answers
        ('' when it can): an endpoint constrained already has no free answers to compare with,
        and OpenAI's own API knows ``json_schema`` but not vLLM's ``choice``."""
        if self.endpoint.guided != "none":
            return (f"endpoint guided: {self.endpoint.guided} constrains every answer of {self.spec.model}, so there "
                    "are no free answers to compare with; set guided: none on its vlm.endpoints entry")
        if guided == "choice" and self.base_url == OPENAI_URL:
            return "OpenAI's API has no choice constraint (a vLLM/SGLang field); constrained_json runs there"
        return ""

    @property
    def settings(self) -> dict:
        """Generation settings of the cache key; the endpoint's only where not the default, so
        answers cached before they existed stay valid."""
        c, e = self.config, self.endpoint
        out = {"temperature": c.temperature, "max_tokens": c.max_new_tokens, "json_mode": c.json_mode}
        extra = {"image_format": e.image_format, "image_max_side": e.image_max_side, "guided": self.guided}
        return out | {k: v for k, v in extra.items() if v not in ("png", None, "none")}

    def request_body(self, prompt: str, image: np.ndarray, words: tuple[str, ...] = ()) -> dict:
        """The chat request: one user message, the image before the text; ``words`` are the
        label words a ``guided`` request is constrained to."""
        url = image_data_url(image, self.endpoint.image_format, self.endpoint.image_max_side)
        body = {
            "model": self.spec.model,
            "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": url}},
                {"type": "text", "text": prompt},
            ]}],
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_new_tokens,
        }
        if self.config.json_mode and self.guided == "none":
            body["response_format"] = {"type": "json_object"}
        return body | guided_fields(self.guided, words)

    def call(self, body: dict) -> Answer:
        """One request with retries; never raises on a server fault (see module docstring)."""
        error = None
        for attempt in range(self.config.max_retries + 1):
            with self._lock:
                self.calls += 1
            t0 = time.perf_counter()
            wait = self.config.retry_base_s * 2**attempt
            try:
                response = self.client.post(f"{self.base_url}/chat/completions", json=body)
            except httpx.RequestError as err:  # timeouts, refused or reset connections, bad encodings
                error = f"error: {type(err).__name__}"
            else:
                if response.status_code == 200:
                    text, error = completion_text(response)
                    return text, (time.perf_counter() - t0 if error is None else float("nan")), error
                error = f"error: HTTP {response.status_code}"
                if response.status_code not in RETRY_STATUS:
                    return None, float("nan"), error
                after = retry_after_s(response.headers.get("retry-after"))
                wait = wait if after is None else after
            if attempt < self.config.max_retries:
                time.sleep(wait)
        return None, float("nan"), error

    def answer(self, image: np.ndarray, prompt: str, words: tuple[str, ...] = ()) -> Answer:
        """One image's answer, from the cache or the endpoint (cached only when it succeeded)."""
        calls = look_up(self.cache, "openai", self.spec.model, prompt, [image_hash(image)], self.settings,
                        key_model=f"{self.base_url}|{self.spec.model}")
        if (hit := calls.found[0]) is not None:
            return hit.response, hit.latency_s, None
        text, latency, error = self.call(self.request_body(prompt, image, words))
        if error is None:
            calls.put(0, text, latency)
        return text, latency, error

    @_count_errors
    def predict(self, image_set: ImageSet, label_set: LabelSet, prompt: str | None,
                prompt_name: str) -> pd.DataFrame:
        prompt = prompt or generative_prompt(label_set, selection=self.config.generative_prompts)
        images = image_set.images()
        words = tuple(label_set.names)
        with ThreadPoolExecutor(max_workers=self.endpoint.concurrency) as pool:
            results = list(progress_bar(pool.map(lambda im: self.answer(im, prompt, words), images), total=len(images),
                                desc=f"openai {self.spec.model}", leave=False))
        answers, latency, errors = (list(x) for x in zip(*results, strict=True)) if results else ([], [], [])
        return answer_table(image_set, label_set, self.spec, prompt_name, answers, latency, errors,
                            self.embedder, self.config.embedding_threshold)


def model_ids(payload) -> list[str]:
    """The model ids of a ``GET /models`` body (``{"data": [{"id": ...}, ...]}``)."""
    return [str(m["id"]) for m in payload["data"]]


def load_openai_backend(spec: ModelSpec, config: VLMConfig, cache=None, device: str = "cpu") -> OpenAIBackend:
    """A client for ``spec.model`` at its endpoint (``config.endpoint``), checked by listing
    ``/models``; ModelUnavailable when the key is missing, the endpoint unreachable or
    refusing, or the server does not serve the model."""
    endpoint = config.endpoint(spec.model)
    base_url = endpoint.base_url.rstrip("/")
    api_key = os.environ.get(endpoint.api_key_env)
    if base_url == OPENAI_URL and not api_key:
        raise ModelUnavailable(f"no API key: environment variable {endpoint.api_key_env} is not set")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        probe = httpx.get(f"{base_url}/models", headers=headers, timeout=min(10.0, config.request_timeout_s))
    except httpx.RequestError as err:
        raise ModelUnavailable(f"endpoint {base_url} unreachable ({type(err).__name__})") from None
    if probe.status_code in (401, 403):
        raise ModelUnavailable(f"endpoint {base_url} refused the key in {endpoint.api_key_env} "
                               f"(HTTP {probe.status_code})")
    if probe.status_code != 200:
        raise ModelUnavailable(f"endpoint {base_url} answered HTTP {probe.status_code} to GET /models")
    try:
        served = model_ids(probe.json())
    except (ValueError, KeyError, TypeError):
        raise ModelUnavailable(f"endpoint {base_url}: GET /models is not an OpenAI model list") from None
    if spec.model not in served:
        shown = f"{served[:10]}" if len(served) <= 10 else f"{served[:10]} and {len(served) - 10} more"
        raise ModelUnavailable(f"server {base_url} serves {shown}, not {spec.model}")
    return OpenAIBackend(spec, base_url, api_key, config, cache, endpoint)
