"""Training throughput: the emolib pipeline (uint8 tensors in memory, batched augmentation on
tensors, channels_last) against torchvision ImageFolder + DataLoader (PNG files, per-image PIL
transforms) on the same model, batch and input size; then accuracy per CPU minute of each
model from the cost records of the last quick-profile run (if there is one).

Run: ``EMOLIB_DATA_DIR=<data root> .venv/bin/python benchmarks/bench_train.py``
(``--synthetic`` uses synthetic faces). Prints the load average beside every figure: the
machine is shared, so absolute numbers are pessimistic; the ratio is measured in one run.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import datasets, transforms

from emolib.train.augment import augment_batch
from emolib.train.models import build_model


def load_images(n: int, synthetic: bool) -> tuple[np.ndarray, np.ndarray]:
    """n uint8 (48, 48) training faces and labels."""
    if synthetic:
        from emolib.data import make_synthetic_faces

        faces = make_synthetic_faces(per_class=n // 21 + 1, seed=0).split("train")
    else:
        from emolib.config import load_profile
        from emolib.data import load_faces

        faces = load_faces(load_profile("quick")).split("train")
    return np.asarray(faces.pixels[:n]), faces.labels[:n].astype(np.int64)


def write_image_folder(pixels: np.ndarray, labels: np.ndarray, root: Path) -> Path:
    for i, (img, y) in enumerate(zip(pixels, labels, strict=True)):
        folder = root / f"class_{y}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(folder / f"{i:06d}.png")
    return root


def train_steps(model, optimizer, batches, steps: int, bf16: bool) -> float:
    """Images per second over ``steps`` training steps (after two warm-up steps)."""
    done, t0 = 0, None
    for i, (x, y) in enumerate(batches):
        if i == 2:
            t0, done = time.perf_counter(), 0
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(x)
        loss = F.cross_entropy(logits.float(), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        done += len(y)
        if i + 1 >= steps + 2:
            break
    return done / (time.perf_counter() - t0)


def emolib_batches(pixels: np.ndarray, labels: np.ndarray, batch: int, size: int):
    x, y, gen = torch.as_tensor(pixels), torch.as_tensor(labels), torch.Generator().manual_seed(0)
    while True:
        order = torch.randperm(len(x), generator=gen)
        for s in range(0, len(x) - batch + 1, batch):
            idx = order[s:s + batch]
            yield augment_batch(x[idx], size, 1, gen, 0.25), y[idx]


def imagefolder_batches(root: Path, batch: int, size: int, workers: int):
    tf = transforms.Compose([
        transforms.Grayscale(1), transforms.RandomAffine(10, translate=(0.1, 0.1)),
        transforms.RandomHorizontalFlip(), transforms.Resize(size), transforms.ToTensor(),
        transforms.Normalize([0.5], [0.25]), transforms.RandomErasing(p=0.25)])
    loader = torch.utils.data.DataLoader(datasets.ImageFolder(str(root), tf), batch_size=batch,
                                         shuffle=True, num_workers=workers, drop_last=True)
    while True:
        for x, y in loader:
            yield x.contiguous(memory_format=torch.channels_last), y


def input_only(batches, steps: int, batch: int) -> float:
    """Images per second of the input pipeline alone (no model): its share of a step."""
    next(batches)
    t0 = time.perf_counter()
    for _ in range(steps):
        next(batches)
    return steps * batch / (time.perf_counter() - t0)


def compare_pipelines(name: str, width: float, n: int, batch: int, size: int, steps: int,
                      synthetic: bool, workers: int, bf16: bool) -> dict[str, float]:
    """Training images/s with each pipeline, and each pipeline's images/s alone."""
    pixels, labels = load_images(n, synthetic)
    with tempfile.TemporaryDirectory() as tmp:
        root = write_image_folder(pixels, labels, Path(tmp))
        out = {}
        for label, make in (("emolib", lambda: emolib_batches(pixels, labels, batch, size)),
                            ("imagefolder", lambda: imagefolder_batches(root, batch, size, workers))):
            torch.manual_seed(0)
            model = build_model(name, 7, 1, width=width).to(memory_format=torch.channels_last)
            opt = torch.optim.AdamW(model.parameters(), 1e-3)
            out[label] = train_steps(model, opt, make(), steps, bf16)
            out[f"{label}_input_only"] = input_only(make(), steps, batch)
    return out


def report(rates: dict[str, float], batch: int) -> None:
    """Per batch: the model's share (forward, backward, step) and each pipeline's input share,
    and the most any input pipeline could gain (Amdahl: the model's time stays)."""
    ms = {k: 1000 * batch / v for k, v in rates.items()}
    model_ms = ms["emolib"] - ms["emolib_input_only"]
    print(f"per batch of {batch}: model step ~{model_ms:.0f} ms; input: emolib {ms['emolib_input_only']:.1f} ms, "
          f"ImageFolder+DataLoader {ms['imagefolder_input_only']:.1f} ms")
    print(f"ceiling of any input-side speed-up over ImageFolder: "
          f"{ms['imagefolder'] / model_ms:.2f}x (a free input pipeline); emolib reaches "
          f"{rates['emolib'] / rates['imagefolder']:.2f}x")


def accuracy_per_minute() -> None:
    """Accuracy per CPU minute of each model from the last quick run's stage outputs (the
    table notebooks 03 and 06 read: ``emolib.cost.collect.training_table``)."""
    from emolib import catalog
    from emolib.config import load_profile
    from emolib.cost import collect

    profile = load_profile("quick")
    if not catalog.predictions_path(profile, "cnn").is_file():
        print("no quick-profile CNN predictions yet: run notebook 03 for quick first")
        return
    predictions = catalog.on_subset(catalog.read_stage_predictions(profile, "cnn"), profile, "fer_private")
    accuracy = predictions[predictions["restoration"] == "none"].assign(
        correct=lambda f: f["y_true"] == f["y_pred"]).groupby("model", as_index=False)["correct"].mean()
    table = collect.training_table(collect.collect_cost_records(profile)).merge(accuracy, on="model")
    table["acc_points_per_cpu_min"] = 100 * table["correct"] / (table["train_cpu_s"] / 60)
    print(table.to_string(index=False))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="vgg19_bn")
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--images", type=int, default=1536)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--synthetic", action="store_true")
    parser.add_argument("--fp32", action="store_true", help="no bf16 autocast (quick trains VGG in bf16)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    print(f"load average before: {os.getloadavg()}")
    rates = compare_pipelines(args.model, args.width, args.images, args.batch, args.size,
                              args.steps, args.synthetic, args.workers, not args.fp32)
    print(f"{args.model} (width {args.width}) {args.size}px batch {args.batch}: "
          f"emolib {rates['emolib']:.1f} img/s, ImageFolder+DataLoader(workers={args.workers}) "
          f"{rates['imagefolder']:.1f} img/s, ratio {rates['emolib'] / rates['imagefolder']:.2f}x "
          f"({'fp32' if args.fp32 else 'bf16 autocast'})")
    report(rates, args.batch)
    print(f"load average after: {os.getloadavg()}")
    accuracy_per_minute()


if __name__ == "__main__":
    main()
