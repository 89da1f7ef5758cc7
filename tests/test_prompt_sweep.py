"""The prompt sweep end to end: a tiny random-weight local VLM and the OpenAI-compatible
backend against a local server (127.0.0.1) that favours the first listed label; the response
cache makes a rerun call-free and lets an interrupted sweep resume. The sweep's images are
drawn from notebook 01's evaluation subsets, so the data stage runs first (``smoke_stages``)."""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from smoke_stages import run_data

from emolib import catalog
from emolib.config import load_profile
from emolib.predictions import validate_predictions
from emolib.prompts.analysis import fine_grained_rate, first_position_test, position_bias, variant_orders
from emolib.prompts.sweep import run_prompt_sweep


class FirstLabelServer:
    """/v1/models and /v1/chat/completions: answers the first label of the prompt's [..] list
    in JSON, or the free word "joyful" when the prompt lists none. Counts chat requests."""

    def __init__(self) -> None:
        self.requests = 0
        self.fail_first = 0  # the first n chat requests get HTTP 400 (not retried: an error row)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, payload: dict) -> None:
                body = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._send({"data": [{"id": "first-label"}]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests += 1
                if server.requests <= server.fail_first:
                    body = b'{"error": {"message": "bad request"}}'
                    self.send_response(400)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                parts = body["messages"][0]["content"]  # the image comes first, then the prompt
                text = next(part["text"] for part in parts if part["type"] == "text")
                listed = re.search(r"\[([^\]]*)\]", text)
                word = listed.group(1).split(",")[0].strip() if listed else "joyful"
                self._send({"choices": [{"message": {"role": "assistant",
                                                     "content": json.dumps({"prediction": word})}}]})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.timeout = 5
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = FirstLabelServer()
    yield s
    s.close()


def sweep_profile(url: str, variants: list[str], hf: bool = True):
    profile = load_profile("smoke", **{
        "vlm.clip_models": [], "vlm.hf_models": ["tiny-random-llava"] if hf else [],
        "vlm.openai_models": ["first-label"], "vlm.openai_base_url": url, "vlm.concurrency": 2,
        "vlm.request_timeout_s": 10.0, "vlm.max_retries": 0, "vlm.max_new_tokens": 4,
        "prompts.variants": variants, "prompts.sample_size": 12, "prompts.n_permutations": 3,
        "prompts.order_sample_size": 2})
    run_data(profile)  # notebook 01: the evaluation subsets the sweep draws from
    return profile


def test_sweep_end_to_end_rerun_is_call_free(server):
    kinds = ["base", "permuted", "order4", "persona_positive"]
    first = run_prompt_sweep(sweep_profile(server.url, kinds), keep_backends=True)
    pred = validate_predictions(first.predictions)
    assert set(first.status["status"]) == {"available"}
    per_model = pred.groupby("model").size().to_dict()
    expected = 12 * 5 + 2 * 24  # base + 3 permutations + persona on 12 images; 24 orders on 2
    assert per_model == {"tiny-random-llava": expected, "first-label": expected}
    assert server.requests == expected
    assert first.backends["hf:tiny-random-llava"].generate_calls > 0
    assert first.store.is_complete() and (first.store.dir / "cost.jsonl").is_file()
    # the sweep's images are named subsets drawn from notebook 01's Emotion6 evaluation subset
    profile = sweep_profile(server.url, kinds)
    pool = set(catalog.subset_ids(profile, catalog.emotion6_eval_name(profile)))
    sample, order4 = (set(catalog.subset_ids(profile, n)) for n in ("emotion6_sweep_12", "emotion6_sweep_order4_2"))
    assert len(sample) == 12 and len(order4) == 2 and sample <= pool and order4 <= pool
    full = pred[~pred.prompt.str.startswith("order4_")]
    assert set(full.subset) == {"emotion6_sweep_12"} and set(full.image_id) == sample
    assert set(pred.loc[pred.prompt.str.startswith("order4_"), "image_id"]) == order4
    assert full.groupby(["model", "prompt"]).size().eq(12).all()  # every variant on the same 12 images
    assert set(pred.restoration) == {"none"} and set(pred.seed) == {0}

    # The server always answers the first listed label: the position curve must show it.
    api = pred[pred.model == "first-label"]
    curve = position_bias(api, variant_orders(first.variants, "permuted_"))
    assert curve.loc[curve.position == 1, "pred_rate"].item() == 1.0
    test = first_position_test(api, variant_orders(first.variants, "order4_"))
    assert test.first_rate.item() == 1.0 and test.excess.item() == 0.75

    again = run_prompt_sweep(sweep_profile(server.url, kinds), force=True, keep_backends=True)  # a rerun: all cached
    assert server.requests == expected
    assert again.backends["hf:tiny-random-llava"].generate_calls == 0
    assert again.predictions.sort_values(["model", "prompt", "image_id"]).y_pred.tolist() == \
        pred.sort_values(["model", "prompt", "image_id"]).y_pred.tolist()


def test_interrupted_sweep_resumes_and_no_labels_maps_free_answers(server):
    done = run_prompt_sweep(sweep_profile(server.url, ["base"], hf=False))  # "interrupted" after base
    assert server.requests == 12
    more = run_prompt_sweep(sweep_profile(server.url, ["base", "no_labels"], hf=False))
    assert server.requests == 24  # only the 12 new no_labels answers were asked
    assert done.store.dir != more.store.dir
    free = more.predictions[more.predictions.prompt == "no_labels"]
    assert (free.y_pred == 3).all() and set(free.parse_status) == {"json"}  # joyful -> joy (emotion6)
    rate = fine_grained_rate(free.raw_response, frozenset({"joyful"}))
    assert rate["fine_grained_rate"] == 0.0 and rate["n"] == 12


def test_failed_calls_leave_the_sweep_partial_and_only_they_are_retried(server):
    server.fail_first = 5
    profile = sweep_profile(server.url, ["base", "persona_negative"], hf=False)
    broken = run_prompt_sweep(profile)
    assert server.requests == 24 and (broken.predictions.parse_status == "error").sum() == 5
    assert (broken.predictions.loc[broken.predictions.parse_status == "error", "y_pred"] == -1).all()
    assert not broken.store.is_complete() and any("retries them" in n for n in broken.notes)
    fixed = run_prompt_sweep(profile)
    assert server.requests == 29  # only the 5 failed answers were asked again
    assert fixed.store.is_complete() and (fixed.predictions.parse_status != "error").all()
