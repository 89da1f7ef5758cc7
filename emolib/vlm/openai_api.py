"""Any OpenAI-compatible Chat Completions endpoint: GPT-4o, vLLM, SGLang, Ollama.

Images go as base64 PNG data URLs beside the prompt text in one user message. Requests run
``VLMConfig.concurrency`` at a time; a 429, a 5xx, a timeout or a dropped connection is
retried up to ``max_retries`` times with exponential backoff (``retry_base_s * 2**attempt``,
or the server's ``Retry-After``). A call that still fails is recorded as ``parse_status
"error"`` (not a prediction, not cached, retried by the next run).

The API key is read from the environment variable ``VLMConfig.api_key_env`` only, sent in
the Authorization header, and never written to a table, a cache, a log or an error text.
"""

from __future__ import annotations

import base64
import io
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pandas as pd
from PIL import Image
from tqdm.auto import tqdm

from emolib.config import VLMConfig
from emolib.data import ImageSet, image_hash
from emolib.labels import LabelSet
from emolib.vlm.base import ModelSpec, ModelUnavailable, answer_table
from emolib.vlm.cache import cache_key
from emolib.vlm.parse import lazy_embedder
from emolib.vlm.templates import generative_prompt

OPENAI_URL = "https://api.openai.com/v1"
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


def image_data_url(image: np.ndarray) -> str:
    """uint8 image -> ``data:image/png;base64,...``."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


class OpenAIBackend:
    """Chat Completions client with bounded concurrency, retries and a response cache."""

    def __init__(self, spec: ModelSpec, base_url: str, api_key: str | None, config: VLMConfig,
                 cache=None) -> None:
        self.spec, self.base_url, self.config, self.cache = spec, base_url.rstrip("/"), config, cache
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.Client(headers=headers, timeout=config.request_timeout_s,
                                   limits=httpx.Limits(max_connections=max(1, config.concurrency)))
        self.embedder = lazy_embedder()
        self.calls = 0
        self._lock = threading.Lock()

    @property
    def settings(self) -> dict:
        c = self.config
        return {"temperature": c.temperature, "max_tokens": c.max_new_tokens, "json_mode": c.json_mode}

    def request_body(self, prompt: str, image: np.ndarray) -> dict:
        body = {
            "model": self.spec.model,
            "messages": [{"role": "user", "content": [
                {"type": "text", "text": prompt},
                {"type": "image_url", "image_url": {"url": image_data_url(image)}},
            ]}],
            "temperature": self.config.temperature,
            "max_tokens": self.config.max_new_tokens,
        }
        if self.config.json_mode:
            body["response_format"] = {"type": "json_object"}
        return body

    def call(self, body: dict) -> tuple[str | None, float, str | None]:
        """(answer, latency_s, error): one request with retries; error text has no secrets."""
        error = None
        for attempt in range(self.config.max_retries + 1):
            with self._lock:
                self.calls += 1
            t0 = time.perf_counter()
            wait = self.config.retry_base_s * 2**attempt
            try:
                response = self.client.post(f"{self.base_url}/chat/completions", json=body)
            except httpx.TransportError as err:  # timeouts, refused or dropped connections
                error = f"error: {type(err).__name__}"
            else:
                if response.status_code == 200:
                    text = response.json()["choices"][0]["message"]["content"]
                    return text, time.perf_counter() - t0, None
                error = f"error: HTTP {response.status_code}"
                if response.status_code not in RETRY_STATUS:
                    return None, time.perf_counter() - t0, error
                wait = float(response.headers.get("retry-after", wait))
            if attempt < self.config.max_retries:
                time.sleep(wait)
        return None, float("nan"), error

    def answer(self, image: np.ndarray, prompt: str) -> tuple[str | None, float, str | None]:
        """One image's answer, from the cache or the endpoint (cached when it succeeded)."""
        key = cache_key("openai", f"{self.base_url}|{self.spec.model}", prompt, image_hash(image), self.settings)
        hit = self.cache.get(key) if self.cache is not None else None
        if hit is not None:
            return hit.response, hit.latency_s, None
        text, latency, error = self.call(self.request_body(prompt, image))
        if error is None and self.cache is not None:
            self.cache.put(key, text, latency, "openai", self.spec.model, image_hash(image), prompt, self.settings)
        return text, latency, error

    def predict(self, image_set: ImageSet, label_set: LabelSet, prompt: str | None,
                variant: str) -> pd.DataFrame:
        prompt = prompt or generative_prompt(label_set)
        images = image_set.images()
        with ThreadPoolExecutor(max_workers=max(1, self.config.concurrency)) as pool:
            results = list(tqdm(pool.map(lambda im: self.answer(im, prompt), images), total=len(images),
                                desc=f"openai {self.spec.model}", leave=False))
        answers, latency, errors = (list(x) for x in zip(*results, strict=True)) if results else ([], [], [])
        return answer_table(image_set, label_set, self.spec, variant, answers, latency, errors,
                            self.embedder, self.config.embedding_threshold)


def load_openai_backend(spec: ModelSpec, config: VLMConfig, cache=None, device: str = "cpu") -> OpenAIBackend:
    """A client for ``spec.model`` at ``config.openai_base_url`` (default: OpenAI), checked by
    listing ``/models``; ModelUnavailable when the key is missing or the endpoint unreachable."""
    base_url = config.openai_base_url or OPENAI_URL
    api_key = os.environ.get(config.api_key_env)
    if base_url == OPENAI_URL and not api_key:
        raise ModelUnavailable(f"no API key: environment variable {config.api_key_env} is not set")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        probe = httpx.get(f"{base_url.rstrip('/')}/models", headers=headers, timeout=10)
    except httpx.TransportError as err:
        raise ModelUnavailable(f"endpoint {base_url} unreachable ({type(err).__name__})") from None
    if probe.status_code in (401, 403):
        raise ModelUnavailable(f"endpoint {base_url} refused the key in {config.api_key_env} "
                               f"(HTTP {probe.status_code})")
    return OpenAIBackend(spec, base_url, api_key, config, cache)
