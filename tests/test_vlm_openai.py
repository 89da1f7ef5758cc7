"""OpenAI-compatible backend against a local Chat Completions server started by the test."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from emolib.config import VLMConfig
from emolib.data import make_synthetic_faces
from emolib.predictions import validate_predictions, write_predictions
from emolib.vlm import ModelSpec, ModelUnavailable, ResponseCache, load_backend

KEY_ENV = "EMOLIB_TEST_OPENAI_KEY"
SECRET = "sk-test-DO-NOT-WRITE-7f3a9c"


class FakeServer:
    """Speaks /v1/models and /v1/chat/completions; ``plan(n)`` gives the status of request n."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s, self.requests, self.inflight, self.max_inflight = delay_s, [], 0, 0
        self.lock = threading.Lock()
        self.plan = lambda n: 200
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep the test output quiet
                pass

            def _send(self, status: int, payload: dict, headers: dict | None = None) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._send(200, {"data": [{"id": "fake-vlm"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    n = len(server.requests)
                    server.requests.append({"body": body, "auth": self.headers.get("Authorization")})
                    server.inflight += 1
                    server.max_inflight = max(server.max_inflight, server.inflight)
                time.sleep(server.delay_s)
                with server.lock:
                    server.inflight -= 1
                status = server.plan(n)
                if status != 200:
                    self._send(status, {"error": {"message": "try again"}}, {"Retry-After": "0"})
                    return
                self._send(200, {"choices": [{"message": {"role": "assistant",
                                                          "content": '{"prediction": "happy"}'}}]})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = FakeServer(delay_s=0.05)
    yield srv
    srv.close()


@pytest.fixture
def faces():
    return make_synthetic_faces(per_class=1, seed=3).split("private_test")


def config_for(server: FakeServer, **kw) -> VLMConfig:
    settings = {"concurrency": 3, "max_retries": 2, "retry_base_s": 0.01, "request_timeout_s": 5.0, **kw}
    return VLMConfig(openai_base_url=server.url, api_key_env=KEY_ENV, **settings)


def decode_data_url(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))


def test_request_carries_image_prompt_and_concurrency_is_bounded(server, faces, monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    backend = load_backend(ModelSpec("openai", "fake-vlm"), config_for(server))
    frame = validate_predictions(backend.predict(faces, faces.label_set, "Which emotion?", "base"))
    assert list(frame["parse_status"]) == ["json"] * 7 and set(frame["y_pred"]) == {3}  # happy
    assert len(server.requests) == 7 and 2 <= server.max_inflight <= 3
    sent = {req["body"]["messages"][0]["content"][1]["image_url"]["url"] for req in server.requests}
    for image in faces.images():
        assert any(np.array_equal(decode_data_url(u), image) for u in sent)
    first = server.requests[0]
    assert first["body"]["messages"][0]["content"][0] == {"type": "text", "text": "Which emotion?"}
    assert first["body"]["model"] == "fake-vlm" and first["auth"] == f"Bearer {SECRET}"
    assert first["body"]["response_format"] == {"type": "json_object"}


def test_429_is_retried(server, faces, monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    server.plan = lambda n: 429 if n < 2 else 200
    backend = load_backend(ModelSpec("openai", "fake-vlm"), config_for(server))
    frame = backend.predict(faces, faces.label_set, "Which emotion?", "base")
    assert list(frame["parse_status"]) == ["json"] * 7
    assert len(server.requests) == 7 + 2


def test_500_after_last_retry_is_an_error_not_a_prediction(server, faces, monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    server.plan = lambda n: 500
    backend = load_backend(ModelSpec("openai", "fake-vlm"), config_for(server, concurrency=2))
    frame = validate_predictions(backend.predict(faces.subset([0, 1]), faces.label_set, "Q", "base"))
    assert list(frame["parse_status"]) == ["error", "error"]
    assert list(frame["y_pred"]) == [-1, -1]
    assert set(frame["raw_response"]) == {"error: HTTP 500"}
    assert len(server.requests) == 2 * 3  # first attempt + max_retries, then it stops


def test_rerun_makes_zero_calls_and_the_key_is_in_no_file(server, faces, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    cache = ResponseCache(tmp_path / "cache.sqlite")
    backend = load_backend(ModelSpec("openai", "fake-vlm"), config_for(server), cache=cache)
    first = backend.predict(faces, faces.label_set, "Which emotion?", "base")
    calls = len(server.requests)
    second = backend.predict(faces, faces.label_set, "Which emotion?", "base")
    assert len(server.requests) == calls and backend.calls == calls
    assert list(first["raw_response"]) == list(second["raw_response"])
    write_predictions(tmp_path / "predictions.parquet", second)
    cache.close()
    files = [p for p in Path(tmp_path).rglob("*") if p.is_file()]
    assert len(files) >= 2
    for path in files:
        assert SECRET.encode() not in path.read_bytes(), path


def test_unavailable_without_key_or_endpoint(monkeypatch) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    with pytest.raises(ModelUnavailable, match=KEY_ENV):
        load_backend("openai:gpt-4o", VLMConfig(api_key_env=KEY_ENV))
    closed = FakeServer()
    url = closed.url
    closed.close()
    with pytest.raises(ModelUnavailable, match="unreachable"):
        load_backend("openai:fake-vlm", replace(VLMConfig(), openai_base_url=url))
