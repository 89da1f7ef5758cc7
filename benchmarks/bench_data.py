"""Benchmark: load all of FER-2013 from the Kaggle zip, and audit it; then every layout.

Prints seconds and peak memory (RSS) of emolib's loader against a plain loop of zipfile +
Pillow, each in a fresh subprocess so the peaks do not mix, then the audit's time. Then
the load time of every FER-2013 layout (Kaggle zip, Kaggle folder, fer2013.csv,
icml_face_data.csv, torchvision train.csv + test.csv), all built in a temp folder from the
zip's 35,887 faces: cold (decoding, cache=False) and from the decoded-array cache, in wall
and CPU seconds (CPU: all threads; on a shared machine wall time also counts others' jobs).
Run: EMOLIB_DATA_DIR=../shared/data .venv/bin/python benchmarks/bench_data.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import zipfile
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
print({{"wall_s": time.perf_counter() - t, "n": len(pixels), "peak_rss_mb": peak}})
"""

EMOLIB = """
import resource, time
from emolib.data import load_fer2013
t = time.perf_counter()
faces = load_fer2013({path!r}, workers={workers}, cache=False)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print({{"wall_s": time.perf_counter() - t, "n": len(faces), "peak_rss_mb": peak}})
"""

BASELINE = """
import resource, numpy, PIL, zipfile, pandas
print({"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})
"""

AUDIT = """
import time
from emolib.data import load_fer2013
from emolib.data.audit import audit_summary
faces = load_fer2013({path!r}, cache=False)
t = time.perf_counter()
summary = audit_summary(faces, threshold=4)
print({{"wall_s": time.perf_counter() - t, "checks": dict(zip(summary["check"], summary["count"].astype(int)))}})
"""


LAYOUT = """
import resource, time
from emolib.data import load_fer2013
times = {{}}
for label, cache in (("cold", False), ("writes cache", True), ("cached", True)):
    wall, cpu = time.perf_counter(), time.process_time()
    faces = load_fer2013({path!r}, cache=cache)
    times[label] = (time.perf_counter() - wall, time.process_time() - cpu)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print({{"n": len(faces), "times": times, "peak_rss_mb": peak}})
"""


def run(code: str, env: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, **(env or {})})
    return eval(out.stdout.strip().splitlines()[-1])  # our own child's dict literal


def build_layouts(root: Path) -> dict[str, Path]:
    """Every FER-2013 layout of the zip's faces under ``root`` (about 1.3 GB)."""
    from emolib.data.fer2013 import load_fer2013
    from emolib.data.fer_csv import format_pixel_strings, write_fer_csv

    with zipfile.ZipFile(DATA) as zf:
        zf.extractall(root / "kaggle")
    faces = load_fer2013(DATA, cache=False)
    write_fer_csv(faces, root / "fer2013.csv")
    write_fer_csv(faces, root / "icml_face_data.csv", form="icml")
    tv = root / "torchvision" / "fer2013"
    tv.mkdir(parents=True)
    strings = format_pixel_strings(faces.pixels)
    train = faces.splits == "train"
    with open(tv / "train.csv", "w") as handle:
        handle.write("emotion,pixels\n")
        handle.writelines(f"{y},{p}\n" for y, p, t in zip(faces.labels, strings, train, strict=True) if t)
    with open(tv / "test.csv", "w") as handle:
        handle.write("pixels\n")
        handle.writelines(f"{p}\n" for p, t in zip(strings, train, strict=True) if not t)
    return {"kaggle_zip": DATA, "kaggle_folder": root / "kaggle", "fer_csv": root / "fer2013.csv",
            "icml_csv": root / "icml_face_data.csv", "torchvision": root / "torchvision"}


def bench_layouts() -> None:
    with tempfile.TemporaryDirectory(prefix="emolib_bench_") as tmp:
        layouts = build_layouts(Path(tmp))
        env = {"EMOLIB_RESULTS_DIR": str(Path(tmp) / "out")}  # a fresh decoded-array cache
        print(f"\n{'layout':15s} {'images':>6s}  {'cold: wall / CPU s':>19s}  {'cold + write':>13s}  "
              f"{'cached: wall / CPU s':>21s}  peak RSS")
        for layout, path in layouts.items():
            r = run(LAYOUT.format(path=str(path)), env)
            (cw, cc), (ww, _), (hw, hc) = r["times"]["cold"], r["times"]["writes cache"], r["times"]["cached"]
            print(f"{layout:15s} {r['n']:6d}  {cw:8.2f} / {cc:6.2f}  {ww:11.2f} s  {hw:9.2f} / {hc:6.2f}"
                  f"        {r['peak_rss_mb']:6.0f} MB")


def main() -> None:
    print(f"FER-2013 zip: {DATA}  (load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    base = run(BASELINE)["peak_rss_mb"]
    print(f"interpreter + numpy/PIL/pandas alone: {base:.0f} MB RSS")
    rows = [("plain zipfile + Pillow loop", run(PLAIN.format(path=str(DATA))))]
    for workers in (1, 2):
        rows.append((f"emolib load_fer2013 (workers={workers})", run(EMOLIB.format(path=str(DATA), workers=workers))))
    for name, r in rows:
        print(f"{name:40s} {r['n']:6d} images  {r['wall_s']:6.2f} s  peak RSS {r['peak_rss_mb']:6.0f} MB")
    audit = run(AUDIT.format(path=str(DATA)))
    print(f"audit (exact + pHash near duplicates, threshold 4) over all images: {audit['wall_s']:.2f} s")
    print(json.dumps(audit["checks"], indent=1))
    bench_layouts()


if __name__ == "__main__":
    main()
