"""Restoration throughput on this machine, and the cost of a warm (all-cached) run.

For each backend: images/s restoring faces one call per image vs one batched call, and for
Real-ESRGAN also two ncnn instances in two threads; GFPGAN runs a random-weight network of
the real architecture (same cost as the released weights, which are not on this machine).
Then a cold and a warm ``restore_imageset`` over ``--warm-n`` faces (target: warm < 2 s).

    EMOLIB_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_restore.py [--n 48]

Timings on a shared machine are inflated by other load: the load average is printed.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from emolib.config import Profile, RestorationConfig
from emolib.data import ImageSet, make_synthetic_faces, read_image
from emolib.paths import RESULTS_ENV_VAR, data_root
from emolib.restore import ClassicalRestorer, RealESRGANRestorer, restore_imageset
from emolib.restore.gfpgan import GFPGANRestorer, build_gfpgan_net
from emolib.restore.realesrgan import realesrgan_status


def load_real_faces(n: int) -> np.ndarray:
    """``n`` FER-2013 PrivateTest faces (n, 48, 48) uint8, or synthetic ones without the data."""
    archive = data_root() / "fer2013" / "fer2013.zip"
    if not archive.is_file():
        print(f"no FER-2013 at {archive}: synthetic faces")
        return make_synthetic_faces(max(1, n // 21 + 1), seed=0).pixels[:n]
    names = sorted(m for m in zipfile.ZipFile(archive).namelist() if "PrivateTest_" in m)
    return np.stack([read_image(f"{archive}::{m}") for m in names[:n]])


def time_restorer(restorer, faces: np.ndarray, mode: str) -> float:
    """Images per second: ``single`` (one call per face) or ``batch`` (one call)."""
    restorer.restore_images(list(faces[:1]))  # warm-up: model load, first-call overhead
    t0 = time.perf_counter()
    if mode == "single":
        for face in faces:
            restorer.restore_images([face])
    else:
        restorer.restore_images(list(faces))
    return len(faces) / (time.perf_counter() - t0)


def bench_backends(faces: np.ndarray, n_slow: int, size: int) -> pd.DataFrame:
    rows = []

    def add(backend: str, mode: str, restorer, n: int) -> None:
        ips = time_restorer(restorer, faces[:n], mode)
        rows.append({"backend": backend, "mode": mode, "images": n, "images_per_s": ips,
                     "ms_per_image": 1000 / ips})
        print(rows[-1], flush=True)

    for backend in ("bicubic", "lanczos", "lanczos-unsharp"):
        for mode in ("single", "batch"):
            add(backend, mode, ClassicalRestorer(backend, size), len(faces))
    for backend in ("realesrgan-animevideov3-x2", "realesrgan-animevideov3-x4", "realesrgan-x4"):
        if not realesrgan_status(backend)[0]:
            print(f"{backend}: unavailable ({realesrgan_status(backend)[1]})")
            continue
        n = n_slow if backend == "realesrgan-x4" else len(faces)
        add(backend, "batch", RealESRGANRestorer(backend, size), n)
        add(backend, "batch, 2 threads", RealESRGANRestorer(backend, size, threads=2), n)
    net = build_gfpgan_net()
    gfpgan = GFPGANRestorer("gfpgan-v1.4", size, net=net, weights_id="random")
    add("gfpgan-v1.4 (random weights)", "single", gfpgan, n_slow)
    add("gfpgan-v1.4 (random weights)", "batch", gfpgan, n_slow)
    return pd.DataFrame(rows)


def bench_warm_cache(faces: np.ndarray, size: int) -> dict[str, float]:
    """Cold then warm ``restore_imageset`` (bicubic) over ``faces`` in a temporary results dir."""
    with tempfile.TemporaryDirectory() as tmp:
        os.environ[RESULTS_ENV_VAR] = tmp
        profile = Profile(name="bench", restoration=RestorationConfig(output_size=size))
        n = len(faces)
        image_set = ImageSet(name="bench", label_set_name="fer7", ids=np.arange(n).astype(str),
                             splits=np.full(n, "private_test", dtype=object),
                             labels=np.zeros(n, np.int64), pixels=faces)
        t0 = time.perf_counter()
        restore_imageset(image_set, "bicubic", profile, progress=False)
        cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        restore_imageset(image_set, "bicubic", profile, progress=False)
        warm = time.perf_counter() - t0
        files = list(Path(tmp).rglob("*.npy"))
    return {"images": n, "cold_s": cold, "warm_s": warm, "cache_files": len(files)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=48, help="faces for the fast backends")
    parser.add_argument("--n-slow", type=int, default=4, help="faces for x4plus and GFPGAN")
    parser.add_argument("--warm-n", type=int, default=1000, help="faces for the cache benchmark")
    parser.add_argument("--size", type=int, default=96, help="output size (px)")
    parser.add_argument("--cache-only", action="store_true", help="only the warm-cache benchmark")
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"load average before: {os.getloadavg()}, cores: {os.cpu_count()}")
    faces = load_real_faces(max(args.n, args.warm_n))
    if not args.cache_only:
        table = bench_backends(faces[:args.n], args.n_slow, args.size)
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print("warm cache:", bench_warm_cache(faces[:args.warm_n], args.size))
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
