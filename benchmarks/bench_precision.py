"""fp32 against bf16 autocast, per CNN of a profile, on the machine it runs on: training
images/s (augmentation, forward, backward, AdamW step: what ``emolib.train.loop`` does per
batch) and inference images/s (``predict_logits``), each at the given thread counts.

The training steps are ``emolib.train.throughput.training_rate``'s, the probe ``emolib plan``
estimates with. What ``cnn.precision: auto`` decides (``emolib.machine``) is printed first with its reason,
so the figures below can be read against it: ``auto`` reads the CPU's flags, never a timing.
The load average is printed beside every figure (the machine may be shared).

Run: ``.venv/bin/python benchmarks/bench_precision.py [--profile quick] [--threads 1 2]
[--models vgg19_bn] [--size 48] [--steps 12]``. Random uint8 images stand in for faces:
throughput does not depend on pixel values.
"""

from __future__ import annotations

import argparse
import os
import time
from dataclasses import replace

import numpy as np
import torch

from emolib.config import load_profile
from emolib.machine import describe_machine, plan_machine, read_machine
from emolib.train.loop import predict_logits
from emolib.train.stage import build_network, settings_for
from emolib.train.throughput import training_rate


def load() -> str:
    return "load " + " ".join(f"{v:.2f}" for v in os.getloadavg())


def infer_rate(model: torch.nn.Module, settings, x: torch.Tensor) -> float:
    """Inference images/s over ``x`` (after one warm-up batch)."""
    predict_logits(model, x[:256], settings)
    t0 = time.perf_counter()
    predict_logits(model, x, settings)
    return len(x) / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--models", nargs="*", default=None, help="default: the profile's cnn.models")
    parser.add_argument("--threads", nargs="*", type=int, default=None,
                        help="torch thread counts (default: 1 and every core this process may use)")
    parser.add_argument("--size", type=int, default=None, help="input size (default: cnn.input_size)")
    parser.add_argument("--steps", type=int, default=12, help="timed training batches per setting")
    parser.add_argument("--infer-images", type=int, default=2048)
    args = parser.parse_args()
    profile = load_profile(args.profile)
    machine = read_machine()
    print(describe_machine(machine))
    decisions = plan_machine(profile, machine)
    for line in decisions.lines():
        print("  " + line)
    cores = machine.cores
    threads = args.threads or sorted({1, cores})
    rng = np.random.default_rng(0)
    x = torch.as_tensor(rng.integers(0, 256, (4096, 48, 48), dtype=np.uint8))
    print(f"\n{'model':16} {'threads':>7} {'batch':>5} {'size':>4} {'precision':>9} "
          f"{'train img/s':>11} {'infer img/s':>11}  load (1, 5, 15 min)")
    for name in args.models or profile.cnn.models:
        base = settings_for(profile, name, 0, machine)
        size = args.size or base.input_size
        for n_threads in threads:
            torch.set_num_threads(n_threads)
            rates = {}
            for bf16 in (False, True):
                settings = replace(base, precision="bf16" if bf16 else "fp32", device="cpu", input_size=size,
                                   epoch_sizes=())
                torch.manual_seed(0)
                model = build_network(profile, name, 7).to(memory_format=torch.channels_last)
                rates[bf16] = (training_rate(model, settings, args.steps, warmup=2),
                               infer_rate(model, settings, x[:args.infer_images]))
                print(f"{name:16} {n_threads:>7} {settings.batch_size:>5} {size:>4} {'bf16' if bf16 else 'fp32':>9} "
                      f"{rates[bf16][0]:>11.1f} {rates[bf16][1]:>11.1f}  {load()}", flush=True)
            print(f"{'':16} {'':>7} bf16 / fp32: training {rates[True][0] / rates[False][0]:.2f}x, "
                  f"inference {rates[True][1] / rates[False][1]:.2f}x")


if __name__ == "__main__":
    main()
