"""VLM throughput: emolib's CLIP zero-shot vs a plain per-image open_clip loop, and the
OpenAI-compatible backend at concurrency 1 vs 8 against a local server with 200 ms latency.

Run: ``.venv/bin/python benchmarks/bench_vlm.py [--images 64] [--threads 2] 2>/dev/null``
(stderr holds progress bars). Random CLIP weights (no weights here) cost the same compute as
trained ones. Prints images/s and ratios with the machine's load average (timings on a shared
machine are inflated by others' load). Three CLIP figures: the plain loop (per image: encode
the image and the 7 class prompts), a per-image loop with text features computed once (what
batching alone adds), and emolib (6-template ensemble computed once, images in batches).
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import torch

from emolib.config import VLMConfig
from emolib.data import make_synthetic_faces
from emolib.labels import get_label_set
from emolib.vlm.clip import ClipBackend, to_pil
from emolib.vlm.openai_api import OpenAIBackend
from emolib.vlm.types import ModelSpec


def plain_clip_loop(model, preprocess, tokenizer, images: list[np.ndarray], classes: tuple[str, ...]) -> np.ndarray:
    """The README-style loop: per image, encode the image and the class prompts, softmax."""
    out = []
    with torch.inference_mode():
        for image in images:
            pixels = preprocess(to_pil(image)).unsqueeze(0)
            text = tokenizer([f"a photo of a {c} looking face." for c in classes])
            img = torch.nn.functional.normalize(model.encode_image(pixels), dim=-1)
            txt = torch.nn.functional.normalize(model.encode_text(text), dim=-1)
            out.append(torch.softmax(100.0 * img @ txt.T, dim=-1)[0].numpy())
    return np.stack(out)


def per_image_cached_text(backend: ClipBackend, images: list[np.ndarray], text: torch.Tensor) -> np.ndarray:
    """Per-image image encoding with text features computed once: isolates batching."""
    with torch.inference_mode():
        return np.concatenate([backend.scores(backend.image_features([im]), text) for im in images])


def bench_clip(n_images: int, arch: str, batch_size: int) -> dict:
    import open_clip

    faces = make_synthetic_faces(per_class=max(1, n_images // 7 + 1), seed=0).split("private_test")
    faces = faces.subset(np.arange(min(n_images, len(faces))))
    fer7 = get_label_set("fer7")
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(arch, pretrained=None)
    model.eval()
    tokenizer = open_clip.get_tokenizer(arch)
    images = faces.images()
    plain_clip_loop(model, preprocess, tokenizer, images[:2], fer7.names)  # warm-up
    t0 = time.perf_counter()
    plain_clip_loop(model, preprocess, tokenizer, images, fer7.names)
    plain = len(images) / (time.perf_counter() - t0)
    backend = ClipBackend(ModelSpec("clip", f"{arch}/random"), model, preprocess, tokenizer,
                          VLMConfig(batch_size=batch_size))
    t0 = time.perf_counter()  # includes the 6-template x 7-class text features, computed once
    backend.predict(faces, fer7, None, "bench")
    ours = len(images) / (time.perf_counter() - t0)
    text = backend.text_features(fer7, ("a photo of a {c} looking face.",))
    t0 = time.perf_counter()
    per_image_cached_text(backend, images, text)
    cached_text = len(images) / (time.perf_counter() - t0)
    return {"arch": arch, "images": len(images), "batch_size": batch_size,
            "plain_per_image_img_s": round(plain, 2), "per_image_text_cached_img_s": round(cached_text, 2),
            "emolib_img_s": round(ours, 2), "ratio_vs_plain": round(ours / plain, 2),
            "ratio_vs_per_image_text_cached": round(ours / cached_text, 2)}


class SlowServer:
    """Chat Completions stand-in that answers after ``delay_s``."""

    def __init__(self, delay_s: float) -> None:
        delay = delay_s

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                self._reply({"data": [{"id": "bench"}]})

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(delay)
                self._reply({"choices": [{"message": {"content": '{"prediction": "happy"}'}}]})

            def _reply(self, payload: dict) -> None:
                body = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def bench_openai(n_images: int, delay_s: float) -> dict:
    faces = make_synthetic_faces(per_class=max(1, n_images // 7 + 1), seed=1).split("private_test")
    faces = faces.subset(np.arange(min(n_images, len(faces))))
    server = SlowServer(delay_s)
    rates = {}
    try:
        for concurrency in (1, 8):
            config = VLMConfig(openai_base_url=server.url, concurrency=concurrency, max_retries=0)
            backend = OpenAIBackend(ModelSpec("openai", "bench"), server.url, None, config)
            t0 = time.perf_counter()
            frame = backend.predict(faces, faces.label_set, "Which emotion?", "bench")
            rates[concurrency] = len(frame) / (time.perf_counter() - t0)
    finally:
        server.close()
    return {"images": len(faces), "latency_s": delay_s, "c1_img_s": round(rates[1], 2),
            "c8_img_s": round(rates[8], 2), "ratio": round(rates[8] / rates[1], 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--arch", default="ViT-B-32")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--openai-images", type=int, default=40)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("load average before:", os.getloadavg(), "threads:", args.threads)
    print("clip:", bench_clip(args.images, args.arch, args.batch_size))
    print("openai:", bench_openai(args.openai_images, 0.2))
    print("load average after:", os.getloadavg())


if __name__ == "__main__":
    main()
