"""Fake servers the tests start on 127.0.0.1 (no network)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import numpy as np
from PIL import Image


class FirstLabelServer:
    """/v1/models and /v1/chat/completions: answers the first label of the prompt's [..] list
    in JSON, or the free word "joyful" when the prompt lists none. Counts chat requests."""

    def __init__(self, port: int = 0) -> None:
        self.requests = 0
        self.prompts: list[str] = []  # every prompt text asked, in order
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
                server.prompts.append(text)
                listed = re.search(r"\[([^\]]*)\]", text)
                word = listed.group(1).split(",")[0].strip() if listed else "joyful"
                self._send({"choices": [{"message": {"role": "assistant",
                                                     "content": json.dumps({"prediction": word})}}]})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.timeout = 5
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def decode_data_url(url: str) -> np.ndarray:
    """The uint8 (H, W) or (H, W, 3) image of a ``data:image/<png|jpeg>;base64,...`` URL."""
    head, _, payload = url.partition(",")
    if not (head.startswith("data:image/") and head.endswith(";base64")):
        raise ValueError(f"not a base64 image data URL: {head[:40]!r}")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(payload))))


class HFChatServer:
    """An OpenAI-compatible server of one model, as vLLM serves a repo under its name:
    ``GET /v1/models`` lists ``backend.spec.model``; ``POST /v1/chat/completions`` decodes the
    request's image (its data URL), applies ``alter`` to it (None: as sent) and answers with
    ``backend.generate([image], prompt)``, emolib's own in-process HF code path, under the
    request's ``max_tokens`` and ``temperature``, one request at a time. A model it does not
    serve gets HTTP 404, as from vLLM. ``images``: every image answered (after ``alter``), in
    the order answered; ``serving`` False: ``/v1/models`` lists nothing (the model went away).
    ``backend``: an ``emolib.vlm.hf.HFBackend`` (``load_backend("hf:<folder>", config)``)."""

    def __init__(self, backend, alter: Callable[[np.ndarray], np.ndarray] | None = None) -> None:
        self.backend, self.alter, self.serving = backend, alter, True
        self.images: list[np.ndarray] = []
        self.lock = threading.Lock()  # one generation at a time, as the model is not thread-safe
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _send(self, status: int, payload: dict) -> None:
                body = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                served = [server.backend.spec.model] if server.serving else []
                self._send(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in served]})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if body["model"] != server.backend.spec.model:
                    return self._send(404, {"error": {"message": f"model {body['model']} does not exist"}})
                self._send(200, {"object": "chat.completion", "choices": [
                    {"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": server.answer(body)}}]})

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)  # a free port
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, body: dict) -> str:
        """The model's answer to one chat request (one user message: an image, then the text)."""
        parts = body["messages"][0]["content"]
        image = decode_data_url(next(p["image_url"]["url"] for p in parts if p["type"] == "image_url"))
        prompt = next(p["text"] for p in parts if p["type"] == "text")
        image = image if self.alter is None else self.alter(image)
        with self.lock:
            self.images.append(image)
            self.backend.config = replace(self.backend.config, max_new_tokens=body["max_tokens"],
                                          temperature=body["temperature"])
            return self.backend.generate([image], prompt)[0]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def free_port() -> int:
    """A port nothing listens on now (a server started on it later is 'an endpoint that came up')."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class FakeHub:
    """The hub's file API, as huggingface_hub and ``emolib fetch`` use it: ``GET /api/models/
    <repo>/revision/<rev>?blobs=true``, ``HEAD``/``GET /<repo>/resolve/<rev>/<file>`` (Range;
    LFS files redirect to a second "CDN" server, another origin). ``cuts[file]``: the next GETs
    of that file stop after so many body bytes with a TCP reset. ``served[file]``: body bytes
    sent; ``log``: (server, method, path, Range, Authorization) of every request."""

    def __init__(self, token: str = "") -> None:
        self.token = token  # what a gated repo accepts
        self.repos: dict[str, tuple[str, dict[str, bytes], bool]] = {}
        self.cuts: dict[str, list[int]] = {}
        self.served: Counter = Counter()
        self.log: list[tuple] = []
        self.reset_delay_s = 0.2
        self.servers = [ThreadingHTTPServer(("127.0.0.1", 0), self.handler(role)) for role in ("hub", "cdn")]
        for server in self.servers:
            threading.Thread(target=server.serve_forever, daemon=True).start()
        self.endpoint, self.cdn = (f"http://127.0.0.1:{s.server_address[1]}" for s in self.servers)

    def add(self, repo: str, files: dict[str, bytes], gated: bool = False) -> None:
        self.repos[repo] = (hashlib.sha1(repo.encode()).hexdigest(), files, gated)

    def blob(self, sha256: str) -> tuple[str, bytes]:
        return next((n, d) for _, files, _ in self.repos.values() for n, d in files.items()
                    if hashlib.sha256(d).hexdigest() == sha256)

    def handler(self, role: str):
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_HEAD(self) -> None:
                self.do_GET()

            def do_GET(self) -> None:
                path = urlsplit(self.path).path
                fake.log.append((role, self.command, path, self.headers.get("Range"),
                                 self.headers.get("Authorization")))
                if m := re.fullmatch(r"/api/models/(.+)/revision/[^/]+", path):
                    return self.info(m[1])
                if m := re.fullmatch(r"/([^/]+/[^/]+)/resolve/[^/]+/(.+)", path):
                    return self.resolve(m[1], m[2])
                if m := re.fullmatch(r"/cdn/([0-9a-f]{64})", path):
                    return self.body(*fake.blob(m[1]), {})
                self.reply(404, {})

            def allowed(self, repo: str) -> bool:
                if repo not in fake.repos:
                    self.reply(404, {})
                    return False
                if fake.repos[repo][2] and self.headers.get("Authorization") != f"Bearer {fake.token}":
                    self.reply(401, {})
                    return False
                return True

            def info(self, repo: str) -> None:
                if self.allowed(repo):
                    commit, files, _ = fake.repos[repo]
                    self.reply(200, {"id": repo, "sha": commit, "siblings": [sibling(n, d) for n, d in files.items()]})

            def resolve(self, repo: str, name: str) -> None:
                if not self.allowed(repo):
                    return
                commit, files, _ = fake.repos[repo]
                data = files[name]
                headers = {"X-Repo-Commit": commit, "ETag": f'"{git_sha1(data)}"'}
                if not is_lfs(name):
                    return self.body(name, data, headers)
                sha = hashlib.sha256(data).hexdigest()
                self.reply(302, {}, {**headers, "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": str(len(data)),
                                     "Location": f"{fake.cdn}/cdn/{sha}"})

            def body(self, name: str, data: bytes, headers: dict) -> None:
                start = int(m[1]) if (m := re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))) else 0
                self.send_response(206 if start else 200)
                for key, value in {**headers, "Accept-Ranges": "bytes", "Content-Length": str(len(data) - start),
                                   **({"Content-Range": f"bytes {start}-{len(data) - 1}/{len(data)}"}
                                      if start else {})}.items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command == "HEAD":
                    return
                cut = fake.cuts.get(name, []).pop(0) if fake.cuts.get(name) else None
                end = len(data) if cut is None else min(len(data), start + cut)
                for pos in range(start, end, 1 << 16):
                    self.wfile.write(data[pos:min(pos + (1 << 16), end)])
                    fake.served[name] += min(1 << 16, end - pos)
                if cut is not None:  # a TCP reset, as a flaky network ends a transfer
                    time.sleep(fake.reset_delay_s)  # let the client read what was sent: a reset drops unread bytes
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True

            def reply(self, status: int, payload: dict, headers: dict | None = None) -> None:
                body = json.dumps(payload).encode() if status != 302 else b""
                self.send_response(status)
                for key, value in {"Content-Type": "application/json", "Content-Length": str(len(body)),
                                   **(headers or {})}.items():
                    self.send_header(key, value)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

        return Handler

    def close(self) -> None:
        for server in self.servers:
            server.shutdown()
            server.server_close()


def is_lfs(name: str) -> bool:
    return name.endswith(".safetensors")


def sibling(name: str, data: bytes) -> dict:
    lfs = {"lfs": {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}}
    return {"rfilename": name, "size": len(data), "blobId": git_sha1(data), **(lfs if is_lfs(name) else {})}
