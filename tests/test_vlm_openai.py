"""OpenAI-compatible backend against a local Chat Completions server started by the test."""

from __future__ import annotations

import base64
import email.utils
import io
import json
import socket
import struct
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from smoke_stages import run_data

from emolib.config import (
    ConfigError,
    EndpointConfig,
    VLMConfig,
    build_config,
    load_profile,
    with_endpoint_models,
)
from emolib.data import make_synthetic_evoked, make_synthetic_faces
from emolib.predictions import validate_predictions, write_predictions
from emolib.prompts.analysis import compare_constrained, constrained_status
from emolib.prompts.sweep import NO_CONSTRAINT, _sweep_model, ask_variant, not_run_reason, run_prompt_sweep
from emolib.prompts.variants import make_variants
from emolib.recorder import CostRecorder
from emolib.vlm import ModelSpec, ModelUnavailable, ResponseCache, load_backend, status_table
from emolib.vlm.openai_api import MAX_RETRY_AFTER_S, OPENAI_URL, OpenAIBackend, image_data_url, retry_after_s
from emolib.vlm.parse import answer_table

KEY_ENV = "EMOLIB_TEST_OPENAI_KEY"
SECRET = "sk-test-DO-NOT-WRITE-7f3a9c"


GOOD = '{"prediction": "happy"}'
FAULTS = ("retry_after_date", "malformed", "no_choices", "null_content", 500, "timeout", "reset")


class FakeServer:
    """Speaks /v1/models (listing ``models``) and /v1/chat/completions. ``plan(n)`` is the fault
    switch of chat request n: 200 (a good answer, ``answer``), another status (with
    ``Retry-After: 0``), or a fault of ``FAULTS``: ``retry_after_date`` (503 with Retry-After
    as an HTTP date ``retry_after_s`` ahead), ``malformed`` (a 200 HTML page), ``no_choices``,
    ``null_content``, ``timeout`` (answers after ``hang_s``), ``reset`` (TCP RST, no answer).
    ``reply``: when set, a function of the request body that gives the answer instead of ``answer``."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s, self.requests, self.inflight, self.max_inflight = delay_s, [], 0, 0
        self.lock = threading.Lock()
        self.plan = lambda n: 200
        self.models, self.answer, self.hang_s, self.retry_after_s = ["fake-vlm"], GOOD, 2.0, 2.0
        self.reply = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep the test output quiet
                pass

            def _send(self, status: int, payload: dict | bytes, headers: dict | None = None) -> None:
                body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                for k, v in {"Content-Type": "application/json", **(headers or {})}.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:  # the client gave up (timeout fault)
                    pass

            def _reset(self) -> None:  # close with a TCP RST: the client sees a reset connection
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                self.wfile, self.close_connection = io.BytesIO(), True

            def do_GET(self) -> None:
                self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in server.models]})

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
                fault = server.plan(n)
                if fault == "reset":
                    return self._reset()
                if fault == "timeout":
                    time.sleep(server.hang_s)
                if fault == "retry_after_date":
                    date = email.utils.formatdate(time.time() + server.retry_after_s, usegmt=True)
                    return self._send(503, {"error": {"message": "busy"}}, {"Retry-After": date})
                if isinstance(fault, int) and fault != 200:
                    return self._send(fault, {"error": {"message": "try again"}}, {"Retry-After": "0"})
                content = None if fault == "null_content" else server.reply(body) if server.reply else server.answer
                choices = [] if fault == "no_choices" else [
                    {"index": 0, "finish_reason": "length" if content is None else "stop",
                     "message": {"role": "assistant", "content": content}}]
                if fault == "malformed":
                    return self._send(200, b"<html><body>502 Bad Gateway</body></html>", {"Content-Type": "text/html"})
                self._send(200, {"object": "chat.completion", "choices": choices})

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


def decode_data_url(url: str, image_format: str = "png") -> np.ndarray:
    assert url.startswith(f"data:image/{image_format};base64,")
    pil = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert pil.format == image_format.upper()
    return np.asarray(pil)


def test_request_carries_image_prompt_and_concurrency_is_bounded(server, faces, monkeypatch) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    backend = load_backend(ModelSpec("openai", "fake-vlm"), config_for(server))
    frame = validate_predictions(backend.predict(faces, faces.label_set, "Which emotion?", "base"))
    assert list(frame["parse_status"]) == ["json"] * 7 and set(frame["y_pred"]) == {3}  # happy
    assert len(server.requests) == 7 and 2 <= server.max_inflight <= 3
    sent = {req["body"]["messages"][0]["content"][0]["image_url"]["url"] for req in server.requests}
    for image in faces.images():
        assert any(np.array_equal(decode_data_url(u), image) for u in sent)  # PNG: lossless
    first = server.requests[0]
    content = first["body"]["messages"][0]["content"]  # the image before the text, as in the HF backend
    assert [part["type"] for part in content] == ["image_url", "text"]
    assert content[1] == {"type": "text", "text": "Which emotion?"}
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


def endpoint_config(server: FakeServer, **kw) -> VLMConfig:
    """A profile with one endpoint (EndpointConfig) for ``fake-vlm`` at the fake server."""
    endpoint = {"model": "fake-vlm", "base_url": server.url, "api_key_env": KEY_ENV, "concurrency": 1,
                **{k: kw.pop(k) for k in ("image_format", "image_max_side", "concurrency", "guided") if k in kw}}
    settings = {"max_retries": 0, "retry_base_s": 0.01, "request_timeout_s": 5.0, **kw}
    return VLMConfig(openai_models=("fake-vlm",), endpoints=(EndpointConfig(**endpoint),), **settings)


def test_every_server_fault_is_an_uncached_error_row_and_the_next_run_fills_it(server, tmp_path) -> None:
    faces = make_synthetic_faces(per_class=2, seed=3).split("private_test")  # 14 faces
    server.plan = lambda n: FAULTS[n] if n < len(FAULTS) else 200  # one request per face, in order
    server.hang_s = 3.0  # past the client's 1 s timeout, which good answers (50 ms) never reach
    cache = ResponseCache(tmp_path / "cache.sqlite")
    backend = load_backend("openai:fake-vlm", endpoint_config(server, request_timeout_s=1.0), cache=cache)
    frame = validate_predictions(backend.predict(faces, faces.label_set, "Which emotion?", "base"))
    errors = frame["parse_status"] == "error"
    assert list(errors) == [True] * 7 + [False] * 7
    assert (frame.loc[errors, "y_pred"] == -1).all() and set(frame.loc[~errors, "parse_status"]) == {"json"}
    assert frame.attrs["n_errors"] == backend.n_errors == 7
    reasons = list(frame.loc[errors, "raw_response"])
    assert reasons[0] == "error: HTTP 503" and reasons[4] == "error: HTTP 500"
    assert reasons[1] == "error: malformed response body (text/html, 41 bytes)"  # an HTML error page
    assert reasons[2].startswith("error: malformed response body")  # a 200 without choices
    assert reasons[3] == "error: NoneType content (finish_reason 'length')"
    assert reasons[5] == "error: ReadTimeout"
    assert reasons[6] in ("error: ReadError", "error: RemoteProtocolError")  # the reset connection
    assert len(cache) == 7  # only the answers: no failure is cached

    server.plan = lambda n: 200
    calls = len(server.requests)
    again = backend.predict(faces, faces.label_set, "Which emotion?", "base")
    assert len(server.requests) - calls == 7  # only the failed faces are asked again
    assert set(again["parse_status"]) == {"json"} and again.attrs["n_errors"] == backend.n_errors == 0
    assert len(cache) == 14
    cache.close()


def test_retry_after_as_an_http_date_is_waited_for(server, faces) -> None:
    server.plan = lambda n: "retry_after_date" if n == 0 else 200
    server.retry_after_s = 2.0  # an HTTP date has whole seconds: the wait is 1 to 2 s
    backend = load_backend("openai:fake-vlm", endpoint_config(server, max_retries=1, retry_base_s=30.0))
    t0 = time.perf_counter()
    frame = backend.predict(faces.subset([0]), faces.label_set, "Q", "base")
    waited = time.perf_counter() - t0
    assert list(frame["parse_status"]) == ["json"] and len(server.requests) == 2
    assert 0.9 < waited < 10  # the date, not retry_base_s (30 s)


def test_retry_after_header_values() -> None:
    now = time.time()
    assert retry_after_s("3") == 3.0 and retry_after_s("0") == 0.0
    assert retry_after_s(None) is None and retry_after_s("soon") is None
    assert retry_after_s(email.utils.formatdate(now - 60, usegmt=True)) == 0.0  # a date gone by
    assert 5 < retry_after_s(email.utils.formatdate(now + 10, usegmt=True)) <= 10
    assert retry_after_s("86400") == MAX_RETRY_AFTER_S


def test_a_server_that_does_not_serve_the_model_is_unavailable(server) -> None:
    server.models = ["Qwen/Qwen2-VL-7B-Instruct", "other"]
    with pytest.raises(ModelUnavailable, match=r"serves \['Qwen/Qwen2-VL-7B-Instruct', 'other'\], not fake-vlm"):
        load_backend("openai:fake-vlm", endpoint_config(server))
    table = status_table(replace(endpoint_config(server), clip_models=(), recorded=()))
    assert list(table["status"]) == ["unavailable"] and "not fake-vlm" in table["reason"].iloc[0]
    assert server.requests == []  # no chat request was made


def test_jpeg_and_longest_side_when_asked(server, faces) -> None:
    backend = load_backend("openai:fake-vlm", endpoint_config(server, image_format="jpeg", image_max_side=20))
    backend.predict(faces.subset([0, 1]), faces.label_set, "Q", "base")
    for req in server.requests:
        sent = decode_data_url(req["body"]["messages"][0]["content"][0]["image_url"]["url"], "jpeg")
        assert sent.shape[:2] == (20, 20)  # 48 x 48 faces, longest side 20
    wide = np.zeros((30, 90, 3), np.uint8)
    assert decode_data_url(image_data_url(wide, "jpeg", 45), "jpeg").shape == (15, 45, 3)  # aspect kept
    assert decode_data_url(image_data_url(wide, "png", 200)).shape == (30, 90, 3)  # never enlarged


def test_concurrency_is_per_endpoint(faces) -> None:
    server = FakeServer(delay_s=0.2)
    try:
        backend = load_backend("openai:fake-vlm", endpoint_config(server, concurrency=5))
        backend.predict(faces, faces.label_set, "Q", "base")
        assert 3 <= server.max_inflight <= 5
    finally:
        server.close()


def test_constrained_decoding_sends_the_label_words_and_is_cached_apart(server, faces, tmp_path) -> None:
    cache = ResponseCache(tmp_path / "cache.sqlite")
    backend = load_backend("openai:fake-vlm", endpoint_config(server, guided="choice"), cache=cache)
    server.answer = "happy"  # a choice-constrained answer is the bare word
    frame = backend.predict(faces.subset([0]), faces.label_set, "Q", "base")
    body = server.requests[-1]["body"]
    names = list(faces.label_set.names)
    assert body["structured_outputs"] == {"choice": names} and body["guided_choice"] == names
    assert "response_format" not in body and list(frame["y_pred"]) == [3]
    backend.guided = "json_schema"  # the same model, constrained to a JSON schema
    server.answer = GOOD
    backend.predict(faces.subset([0]), faces.label_set, "Q", "base")
    fmt = server.requests[-1]["body"]["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["schema"]["properties"]["prediction"]["enum"] == names
    backend.guided = "none"  # free answers: json_object mode, no constraint fields
    backend.predict(faces.subset([0]), faces.label_set, "Q", "base")
    free = server.requests[-1]["body"]
    assert free["response_format"] == {"type": "json_object"} and "guided_choice" not in free
    assert len(server.requests) == 3 and len(cache) == 3  # three settings, three cache entries
    cache.close()


def test_endpoints_in_a_profile() -> None:
    raw = {"openai_models": ["gpt-4o"], "endpoints": [
        {"model": "Qwen/Qwen2-VL-7B-Instruct", "base_url": "http://127.0.0.1:8000/v1", "api_key_env": "VLLM_KEY",
         "image_max_side": 448, "image_format": "jpeg", "concurrency": 16, "guided": "choice"}]}
    with pytest.raises(ConfigError, match=r"add the endpoint model\(s\) \['Qwen/Qwen2-VL-7B-Instruct'\]"):
        build_config(VLMConfig, raw)  # built by hand, the list must name them
    vlm = build_config(VLMConfig, with_endpoint_models({"vlm": raw})["vlm"])  # as load_profile reads a profile
    assert vlm.openai_models == ("gpt-4o", "Qwen/Qwen2-VL-7B-Instruct")  # endpoint models join the list
    qwen = vlm.endpoint("Qwen/Qwen2-VL-7B-Instruct")
    assert (qwen.concurrency, qwen.image_format, qwen.image_max_side, qwen.guided) == (16, "jpeg", 448, "choice")
    legacy = vlm.endpoint("gpt-4o")  # no endpoint: openai_base_url (null: OpenAI), as before
    assert legacy.base_url == "https://api.openai.com/v1" and legacy.concurrency == vlm.concurrency
    with pytest.raises(ConfigError, match="more than one endpoint"):
        VLMConfig(openai_models=("m",),
                  endpoints=(EndpointConfig("m", "http://a/v1"), EndpointConfig("m", "http://b/v1")))
    with pytest.raises(ConfigError, match="not one of"):
        build_config(EndpointConfig, {"model": "m", "base_url": "http://a/v1", "image_format": "webp"})
    with pytest.raises(ConfigError, match="http"):
        EndpointConfig("m", "127.0.0.1:8000/v1")
    paper = load_profile("paper", check_machine=False).vlm
    assert "gpt-4o" in paper.openai_models and paper.endpoint("gpt-4o").base_url == "https://api.openai.com/v1"


# ----------------------------------------------------------------------------- constrained variants
# fer7: angry disgust fear happy sad surprise neutral; face i has truth i
FREE_ANSWERS = ["This face clearly shows angry feelings here.",  # angry: right
                "The person in this picture seems lost in thought.",  # no label word: unparseable
                "I cannot tell what this person feels.",  # a refusal: unparseable
                "This face clearly shows happy feelings here.",  # happy: right
                "This face clearly shows happy feelings here.",  # happy: wrong (sad)
                "The person in this picture seems lost in thought.",  # unparseable
                "This face clearly shows neutral feelings here."]  # neutral: right
CONSTRAINED_PICKS = [0, 1, 3, 3, 4, 5, 6]  # index into the label words sent; wrong only on face 2


def guided_reply(faces):
    """A reply for FakeServer that honours constrained decoding as vLLM does: a label word taken
    from the request's own choice list or JSON-schema enum (per face, ``CONSTRAINED_PICKS``), and
    the face's free sentence (``FREE_ANSWERS``) when the request carries no constraint."""
    face_of = {image_data_url(im): i for i, im in enumerate(faces.images())}

    def reply(body: dict) -> str:
        i = face_of[body["messages"][0]["content"][0]["image_url"]["url"]]
        choice = body.get("structured_outputs", {}).get("choice") or body.get("guided_choice")
        if choice:
            return choice[CONSTRAINED_PICKS[i]]
        if body.get("response_format", {}).get("type") == "json_schema":
            words = body["response_format"]["json_schema"]["schema"]["properties"]["prediction"]["enum"]
            return json.dumps({"prediction": words[CONSTRAINED_PICKS[i]]})
        return FREE_ANSWERS[i]
    return reply


def test_constrained_variants_send_their_fields_parse_and_compare_by_hand(server, faces, tmp_path) -> None:
    server.reply = guided_reply(faces)
    cache = ResponseCache(tmp_path / "cache.sqlite")
    backend = load_backend("openai:fake-vlm", endpoint_config(server, concurrency=3), cache=cache)
    variants = make_variants(faces.label_set, ("base", "constrained_choice", "constrained_json"))
    assert [v.guided for v in variants] == ["none", "choice", "json_schema"]
    assert variants[0].text == variants[1].text == variants[2].text  # the base prompt, word for word
    frames = {}
    for v in variants:
        frames[v.name] = validate_predictions(ask_variant(backend, faces, v))
        assert backend.guided == "none"  # the constraint held for that variant's requests only
    names = list(faces.label_set.names)
    bodies = [r["body"] for r in server.requests]
    free, choice, schema = bodies[:7], bodies[7:14], bodies[14:]
    assert all(b["response_format"] == {"type": "json_object"} and "guided_choice" not in b
               and "structured_outputs" not in b for b in free)
    assert all(b["structured_outputs"] == {"choice": names} and b["guided_choice"] == names
               and "response_format" not in b for b in choice)
    assert all(b["response_format"]["type"] == "json_schema" and "guided_choice" not in b for b in schema)
    assert {b["messages"][0]["content"][1]["text"] for b in bodies} == {variants[0].text}
    assert list(frames["base"]["y_pred"]) == [0, -1, -1, 3, 3, -1, 6]
    assert list(frames["base"]["parse_status"]) == ["text_match", "unparseable", "unparseable", "text_match",
                                                    "text_match", "unparseable", "text_match"]
    for name, status in (("constrained_choice", "text_match"), ("constrained_json", "json")):
        assert list(frames[name]["y_pred"]) == CONSTRAINED_PICKS and set(frames[name]["parse_status"]) == {status}

    table = compare_constrained(pd.concat(frames.values(), ignore_index=True))
    assert list(table["prompt"]) == ["constrained_choice", "constrained_json"]
    for row in table.itertuples():
        assert (row.n, row.n_error) == (7, 0)
        assert row.accuracy_free == pytest.approx(3 / 7) and row.accuracy_constrained == pytest.approx(6 / 7)
        # per-class F1, one face per class: free 1, 0, 0, 2/3 (happy twice), 0, 0, 1; constrained 0 only for fear
        assert row.weighted_f1_free == pytest.approx(8 / 21) and row.weighted_f1_constrained == pytest.approx(17 / 21)
        assert row.changed == pytest.approx(4 / 7)  # faces 1, 2, 4, 5
        assert row.free_off_label == pytest.approx(3 / 7) and row.rescued == 1.0  # faces 1, 2, 5 all became labels
        assert row.kappa == pytest.approx(15 / 43)  # p_o = 3/7, p_e = (1 + 4 + 1) / 49

    # free and constrained answers are cached apart; the free ones under the key notebook 04 uses
    assert len(cache) == 21
    settings = {row[0] for row in cache._conn.execute("SELECT settings FROM responses")}
    assert len(settings) == 3 and sum('"guided"' in s for s in settings) == 2
    calls = len(server.requests)
    plain = load_backend("openai:fake-vlm", endpoint_config(server), cache=cache)  # as the VLM stage asks
    again = plain.predict(faces, faces.label_set, variants[0].text, "default")
    assert len(server.requests) == calls and list(again["raw_response"]) == FREE_ANSWERS
    for v in variants[1:]:
        assert list(ask_variant(plain, faces, v)["y_pred"]) == CONSTRAINED_PICKS
    assert len(server.requests) == calls  # a rerun of every variant makes no call
    cache.close()


class HFStandIn:
    """An in-process generative backend (as ``emolib.vlm.hf``): free answers, no constrained
    decoding; records the variants it was asked."""

    spec = ModelSpec("hf", "stand-in")
    embedder = None

    def __init__(self) -> None:
        self.asked: list[str] = []

    def predict(self, image_set, label_set, prompt, prompt_name):
        self.asked.append(prompt_name)
        n = len(image_set)
        return answer_table(image_set, label_set, self.spec, prompt_name, ['{"prediction": "joy"}'] * n,
                            [0.0] * n, [None] * n)


def test_backends_that_cannot_constrain_get_a_not_run_row_with_the_reason(server, tmp_path) -> None:
    profile = load_profile("smoke", **{"prompts.variants": ["base", "constrained_choice", "constrained_json"]})
    evoked = make_synthetic_evoked(1, seed=0)
    stand_in = HFStandIn()
    frames, not_run = _sweep_model(stand_in, profile, {"evoked": evoked}, CostRecorder(tmp_path, "prompts", 0.05))
    assert stand_in.asked == ["base"] and [f["prompt"].iloc[0] for f in frames] == ["base"]
    assert [(r["backend"], r["model"], r["prompt"], r["guided"]) for r in not_run] == [
        ("hf", "stand-in", "constrained_choice", "choice"), ("hf", "stand-in", "constrained_json", "json_schema")]
    assert {r["reason"] for r in not_run} == {NO_CONSTRAINT["hf"]} and "vLLM" in NO_CONSTRAINT["hf"]
    assert {r["dataset"] for r in not_run} == {"synthetic_evoked"}
    choice = make_variants(evoked.label_set, ("constrained_choice",))[0]
    with pytest.raises(ValueError, match="no constrained decoding"):  # never the free answer in its place
        ask_variant(stand_in, evoked, choice)
    assert stand_in.asked == ["base"]
    for backend in ("clip", "recorded"):
        stand_in.spec = ModelSpec(backend, "x")
        assert not_run_reason(stand_in, choice) == NO_CONSTRAINT[backend]
    # an endpoint constrained already has no free answers; OpenAI's API has no choice field
    fixed = load_backend("openai:fake-vlm", endpoint_config(server, guided="json_schema"))
    assert "no free answers to compare with" in not_run_reason(fixed, choice)
    openai = OpenAIBackend(ModelSpec("openai", "gpt-4o"), OPENAI_URL, None, VLMConfig())
    json_variant = make_variants(evoked.label_set, ("constrained_json",))[0]
    assert "no choice constraint" in not_run_reason(openai, choice) and not_run_reason(openai, json_variant) == ""
    assert server.requests == []


def test_the_sweep_runs_constrained_variants_and_keeps_its_not_run_rows(server) -> None:
    server.reply = lambda body: (body["guided_choice"][0] if "guided_choice" in body
                                 else "The scene in this picture leaves me without words.")

    def profile_with(guided: str):
        endpoint = {"model": "fake-vlm", "base_url": server.url, "api_key_env": KEY_ENV, "concurrency": 4,
                    "guided": guided}
        return load_profile("smoke", **{
            "vlm.clip_models": [], "vlm.clip_benchmark_models": [], "vlm.hf_models": [], "vlm.endpoints": [endpoint],
            "vlm.max_retries": 0,
            "prompts.variants": ["base", "constrained_choice"], "prompts.sample_size": 6})

    free = profile_with("none")
    run_data(free)
    swept = run_prompt_sweep(free)
    assert swept.not_run.empty and swept.variants.set_index("prompt")["guided"].to_dict() == {
        "base": "none", "constrained_choice": "choice"}
    pred = swept.predictions
    assert (pred.loc[pred.prompt == "base", "parse_status"] == "unparseable").all()
    assert (pred.loc[pred.prompt == "constrained_choice", "y_pred"] == 0).all()  # the first label word
    table = compare_constrained(pred)
    assert table[["n", "free_off_label", "rescued", "changed"]].values.tolist() == [[6, 1.0, 1.0, 1.0]]
    assert constrained_status(table, swept.not_run, free.prompts.variants) == \
        "Free vs constrained answers measured for `fake-vlm`."

    fixed = profile_with("choice")  # an endpoint constrained already: constrained_choice is not run
    first = run_prompt_sweep(fixed)
    again = run_prompt_sweep(fixed)  # read back from the store
    for result in (first, again):
        assert set(result.predictions.prompt) == {"base"}
        assert result.not_run[["model", "prompt", "guided"]].values.tolist() == [
            ["fake-vlm", "constrained_choice", "choice"]]
        assert "no free answers to compare with" in result.not_run.reason.item()
    line = constrained_status(compare_constrained(again.predictions), again.not_run, fixed.prompts.variants)
    assert line.startswith("Free vs constrained answers: not measured here (no model here can decode constrained")
