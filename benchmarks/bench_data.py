"""Benchmark: load all of FER-2013 from the Kaggle zip, and audit it.

Prints seconds and peak memory (RSS) of emolib's loader against a plain loop of zipfile +
Pillow, each in a fresh subprocess so the peaks do not mix, then the audit's time.
Run: EMOLIB_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_data.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

DATA = Path(os.environ.get("EMOLIB_DATA_DIR", "data")) / "fer2013" / "fer2013.zip"

PLAIN = """
import io, resource, time, zipfile, numpy as np
from PIL import Image
t = time.perf_counter()
with zipfile.ZipFile({path!r}) as zf:
    names = [n for n in zf.namelist() if n.endswith('.jpg')]
    pixels = np.stack([np.asarray(Image.open(io.BytesIO(zf.read(n))).convert('L')) for n in names])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print({{"seconds": time.perf_counter() - t, "n": len(pixels), "peak_rss_mb": peak}})
"""

EMOLIB = """
import resource, time
from emolib.data import load_fer2013
t = time.perf_counter()
faces = load_fer2013({path!r}, workers={workers})
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print({{"seconds": time.perf_counter() - t, "n": len(faces), "peak_rss_mb": peak}})
"""

BASELINE = """
import resource, numpy, PIL, zipfile, pandas
print({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
"""

AUDIT = """
import time
from emolib.data import load_fer2013
from emolib.data.audit import audit_summary
faces = load_fer2013({path!r})
t = time.perf_counter()
summary = audit_summary(faces, threshold=4)
print({{"seconds": time.perf_counter() - t, "checks": dict(zip(summary["check"], summary["count"].astype(int)))}})
"""


def run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return eval(out.stdout.strip().splitlines()[-1])  # our own child's dict literal


def main() -> None:
    print(f"FER-2013 zip: {DATA}  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    base = run(BASELINE)["peak_rss_mb"]
    print(f"interpreter + numpy/PIL/pandas alone: {base:.0f} MB RSS")
    rows = [("plain zipfile + Pillow loop", run(PLAIN.format(path=str(DATA))))]
    for workers in (1, 2):
        rows.append((f"emolib load_fer2013 (workers={workers})", run(EMOLIB.format(path=str(DATA), workers=workers))))
    for name, r in rows:
        print(f"{name:40s} {r['n']:6d} images  {r['seconds']:6.2f} s  peak RSS {r['peak_rss_mb']:6.0f} MB")
    audit = run(AUDIT.format(path=str(DATA)))
    print(f"audit (exact + pHash near duplicates, threshold 4) over all images: {audit['seconds']:.2f} s")
    print(json.dumps(audit["checks"], indent=1))


if __name__ == "__main__":
    main()
