"""Fake servers the tests start on 127.0.0.1 (no network)."""

from __future__ import annotations

import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


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


def free_port() -> int:
    """A port nothing listens on now (a server started on it later is 'an endpoint that came up')."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
