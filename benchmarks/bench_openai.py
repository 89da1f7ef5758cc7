"""OpenAI-compatible backend throughput: answers/s against a local fake server that takes
200 ms per request, at endpoint concurrency 1, 8 and 32 (loopback only, nothing cached).

Run: ``.venv/bin/python benchmarks/bench_openai.py [--latency 0.2] [--min-requests 32] 2>/dev/null``
(stderr holds progress bars). Each level sends ``max(min_requests, 4 * concurrency)`` requests
(four waves at the higher levels) through ``load_backend`` (the /models probe included, not
timed). Prints one JSON line per level: answers/s, the ideal ``concurrency / latency`` and
their ratio (the client's overhead), with the machine's load average.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from emolib.config import EndpointConfig, VLMConfig
from emolib.data import make_synthetic_faces
from emolib.vlm import load_backend

MODEL = "bench-vlm"


class SlowServer:
    """/v1/models and /v1/chat/completions answering after ``latency_s`` (HTTP/1.1 keep-alive,
    a listen backlog deep enough for every concurrent connection)."""

    def __init__(self, latency_s: float) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self._reply({"object": "list", "data": [{"id": MODEL, "object": "model"}]})

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(latency_s)
                self._reply({"choices": [{"index": 0, "finish_reason": "stop",
                                          "message": {"role": "assistant", "content": '{"prediction": "happy"}'}}]})

            def _reply(self, payload: dict) -> None:
                body = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(ThreadingHTTPServer):
            request_queue_size = 256  # socketserver's 5 would drop SYNs at 32 connections
            daemon_threads = True

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def bench_level(url: str, concurrency: int, n_requests: int, latency_s: float) -> dict:
    """answers/s of one endpoint at ``concurrency`` over ``n_requests`` distinct faces."""
    faces = make_synthetic_faces(per_class=n_requests // 7 + 1, seed=0).split("private_test")
    faces = faces.subset(np.arange(n_requests))
    endpoint = EndpointConfig(model=MODEL, base_url=url, api_key_env="EMOLIB_BENCH_NO_KEY", concurrency=concurrency)
    backend = load_backend(f"openai:{MODEL}", VLMConfig(openai_models=(MODEL,), endpoints=(endpoint,), max_retries=0,
                                                          request_timeout_s=30.0))
    t0 = time.perf_counter()
    frame = backend.predict(faces, faces.label_set, "Which emotion?", "bench")
    wall_s = time.perf_counter() - t0
    assert (frame["parse_status"] == "json").all() and backend.calls == n_requests
    rate, ideal = n_requests / wall_s, concurrency / latency_s
    return {"concurrency": concurrency, "requests": n_requests, "wall_s": round(wall_s, 2),
            "answers_per_s": round(rate, 1), "ideal_per_s": round(ideal, 1), "of_ideal": round(rate / ideal, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.2, help="server seconds per request")
    parser.add_argument("--min-requests", type=int, default=32)
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()
    server = SlowServer(args.latency)
    try:
        rows = [bench_level(server.url, c, max(args.min_requests, 4 * c), args.latency) for c in args.levels]
    finally:
        server.close()
    print(json.dumps({"latency_s": args.latency, "load_average": [round(x, 2) for x in os.getloadavg()],
                      "cpus": os.cpu_count()}))
    for row in rows:
        print(json.dumps(row))
    base = rows[0]["answers_per_s"]
    print(json.dumps({"speedup_vs_first_level": {r["concurrency"]: round(r["answers_per_s"] / base, 2) for r in rows}}))


if __name__ == "__main__":
    main()
