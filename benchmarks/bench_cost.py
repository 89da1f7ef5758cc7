"""Benchmark of the cost machinery: recorder overhead, FLOP counting, CNN inference scaling.

Run: ``.venv/bin/python benchmarks/bench_cost.py [profile]`` (default quick). Prints the
load average with every figure: on a shared CPU, wall times are inflated by other processes.
Outputs go to a temporary folder unless EMOLIB_RESULTS_DIR is set.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import torch


def main(profile_name: str = "quick") -> None:
    os.environ.setdefault("EMOLIB_RESULTS_DIR", tempfile.mkdtemp(prefix="bench_cost_"))
    from emolib.config import load_profile
    from emolib.cost.counting import model_cost_rows
    from emolib.cost.scaling import best_of_repeats, fit_scaling, measure_profile_scaling, scaling_targets
    from emolib.recorder import CostRecorder

    profile = load_profile(profile_name)
    print(f"load average at start: {os.getloadavg()}")
    rec = CostRecorder(tempfile.mkdtemp(), "bench")
    start = time.perf_counter()
    for i in range(50):
        with rec.phase("noop", items=i):
            pass
    print(f"recorder overhead: {1000 * (time.perf_counter() - start) / 50:.2f} ms per empty phase "
          f"(incl. atomic append of {len(rec.records())} records)")
    start = time.perf_counter()
    sizes = model_cost_rows(profile)
    seconds = time.perf_counter() - start
    print(f"params + FLOPs of {len(sizes)} models (meta device): {seconds:.1f} s")
    print(sizes[["model", "params", "flops_per_image", "note"]].to_string(index=False))
    targets = scaling_targets(profile)
    targets = targets[targets["family"] == "cnn"]
    start = time.perf_counter()
    measured = measure_profile_scaling(profile, targets)
    print(f"scaling of {len(targets)} CNNs at {profile.cost.scaling_sizes} x "
          f"{profile.cost.scaling_repeats} rounds, {profile.cost.scaling_threads} thread(s): "
          f"{time.perf_counter() - start:.1f} s; load during runs "
          f"{measured['load_1min'].min():.1f}-{measured['load_1min'].max():.1f}")
    best = best_of_repeats(measured)
    fits = fit_scaling(best).merge(fit_scaling(best, "cpu_s"), on=["model", "n_sizes", "sizes"],
                                   suffixes=("_wall", "_cpu"))
    cols = ["model", "sizes", "per_image_s_wall", "overhead_s_wall", "r2_wall", "per_image_s_cpu", "r2_cpu"]
    print(fits[cols].to_string(index=False))
    print(f"torch threads outside the measurement: {torch.get_num_threads()}; "
          f"load average at end: {os.getloadavg()}")


if __name__ == "__main__":
    main(*sys.argv[1:2])
