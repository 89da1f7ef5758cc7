"""Phase timing: every stage records what each phase cost, for notebook 06 to collect.

``with recorder.phase("infer", model="resnet50", items=n): ...`` measures wall time, process
CPU time, items/s, the peak resident memory seen during the phase (sampled by a background
thread), peak GPU memory (when there is a GPU) and energy where a counter can be read
(CPU package via RAPL, GPU via NVML; otherwise ``energy_note`` says why it was not
measured), and appends one record to ``<stage dir>/cost.jsonl``. A phase that raises is
recorded with ``status="failed"`` and its time, then the error propagates.

Phases nest: a phase opened inside another phase of the same cost file (in the same
thread) records the outer one as its ``parent_id``, so totals sum only the top level. The keyword arguments given
when a phase opens (``seed=0, split="private_test"``) are its ``tags``: together with
stage, phase and model they name *what* was measured; values set later on the handle
(``h.extra["tokens"] = ...``) are measurements. Appends are atomic and serialised by a
lock file, so processes writing the same stage do not lose each other's records.
"""

from __future__ import annotations

import contextvars
import fcntl
import functools
import json
import os
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from emolib.store import atomic_write

COST_FILE = "cost.jsonl"
RAPL_ROOT = Path("/sys/class/powercap")

# The phases open in this thread/task: (cost file, phase_id), innermost last.
_OPEN_PHASES: contextvars.ContextVar[tuple[tuple[str, str], ...]] = contextvars.ContextVar(
    "emolib_open_phases", default=()
)


@dataclass
class PhaseRecord:
    stage: str
    phase: str
    model: str | None
    items: int | None
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    peak_gpu_mb: float | None
    device: str
    status: str
    started_at: str
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)
    phase_id: str = ""
    parent_id: str | None = None
    energy_cpu_j: float | None = None
    energy_gpu_j: float | None = None
    energy_note: str = ""
    host: str = ""
    pid: int = 0

    @property
    def items_per_s(self) -> float | None:
        if not self.items or self.wall_s <= 0:
            return None
        return self.items / self.wall_s


@dataclass
class PhaseHandle:
    """Yielded inside a phase: set ``items`` (or ``extra``) once they are known."""

    items: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class _PeakRSS:
    """Samples this process's RSS in a thread; ``peak_mb`` is the largest value seen."""

    def __init__(self, interval_s: float) -> None:
        self._proc = psutil.Process(os.getpid())
        self._interval = interval_s
        self._stop = threading.Event()
        self.peak = self._proc.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.peak = max(self.peak, self._proc.memory_info().rss)

    def __enter__(self) -> _PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._proc.memory_info().rss)

    @property
    def peak_mb(self) -> float:
        return self.peak / 2**20


def _gpu_peak_reset() -> bool:
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
            return True
    except ImportError:
        pass
    return False


def _gpu_peak_mb() -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**20


# ----------------------------------------------------------------------------- energy
class RaplMeter:
    """CPU package energy from Linux powercap (``intel-rapl:N/energy_uj``), in joules.

    Counts the whole package, i.e. every process on the machine, not only this one. The
    counter wraps at ``max_energy_range_uj``; ``joules_since`` corrects one wrap per domain.
    """

    source = "rapl"

    def __init__(self, domains: list[Path]) -> None:
        self.domains = domains
        self.ranges = [_read_int(d / "max_energy_range_uj") or 2**63 for d in domains]

    def read_uj(self) -> list[int]:
        return [int((d / "energy_uj").read_text()) for d in self.domains]

    @staticmethod
    def joules_between(start: list[int], end: list[int], ranges: list[int]) -> float:
        total = 0
        for a, b, r in zip(start, end, ranges, strict=True):
            total += b - a if b >= a else b + r - a
        return total / 1e6


class NvmlMeter:
    """Total GPU energy from NVML (``nvmlDeviceGetTotalEnergyConsumption``, mJ), in joules."""

    source = "nvml"

    def __init__(self, pynvml: Any, handles: list[Any]) -> None:
        self._nvml = pynvml
        self.handles = handles

    def read_mj(self) -> list[int]:
        return [int(self._nvml.nvmlDeviceGetTotalEnergyConsumption(h)) for h in self.handles]


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def find_rapl_meter(root: Path = RAPL_ROOT) -> tuple[RaplMeter | None, str]:
    """A meter over the readable CPU package domains, or ``(None, why not)``."""
    if not root.is_dir():
        return None, f"CPU energy not measured: {root} absent (no RAPL exposed)"
    domains = sorted(p for p in root.glob("intel-rapl:*") if p.name.count(":") == 1)
    if not domains:
        return None, f"CPU energy not measured: no intel-rapl package domain under {root}"
    readable = [d for d in domains if _read_int(d / "energy_uj") is not None]
    if not readable:
        return None, "CPU energy not measured: RAPL energy_uj not readable (needs root)"
    return RaplMeter(readable), ""


def find_nvml_meter() -> tuple[NvmlMeter | None, str]:
    """A meter over every visible GPU, or ``(None, why not)``."""
    try:
        import pynvml
    except ImportError:
        return None, "GPU energy not measured: pynvml (nvidia-ml-py) not installed or no GPU"
    try:
        pynvml.nvmlInit()
        handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        if not handles:
            return None, "GPU energy not measured: no GPU"
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handles[0])
    except Exception as err:  # noqa: BLE001 - NVML raises its own error types
        return None, f"GPU energy not measured: NVML unusable ({type(err).__name__})"
    return NvmlMeter(pynvml, handles), ""


class EnergyProbe:
    """Reads every available counter at the start and end of a phase."""

    def __init__(self, rapl_root: Path = RAPL_ROOT) -> None:
        self.rapl, rapl_note = find_rapl_meter(rapl_root)
        self.nvml, nvml_note = find_nvml_meter()
        self.note = "; ".join(n for n in (rapl_note, nvml_note) if n)
        self._start: tuple[list[int] | None, list[int] | None] = (None, None)

    def start(self) -> None:
        self._start = (self.rapl.read_uj() if self.rapl else None,
                       self.nvml.read_mj() if self.nvml else None)

    def stop(self) -> tuple[float | None, float | None]:
        """(CPU joules, GPU joules) since ``start``; None where not measured."""
        cpu = gpu = None
        if self.rapl and self._start[0] is not None:
            cpu = RaplMeter.joules_between(self._start[0], self.rapl.read_uj(), self.rapl.ranges)
        if self.nvml and self._start[1] is not None:
            gpu = sum(b - a for a, b in zip(self._start[1], self.nvml.read_mj(), strict=True)) / 1e3
        return cpu, gpu


# ----------------------------------------------------------------------------- recorder
@functools.lru_cache(maxsize=1)
def describe_host() -> str:
    """``"<cpu model> x<logical cores>[, <gpu>]"``: the hardware a record was measured on."""
    from emolib.store import hardware_info

    info = hardware_info()
    text = f"{info['cpu']} x{info['cpu_cores_logical']}"
    return f"{text}, {info['gpu']}" if info.get("gpu") else text


class CostRecorder:
    """Appends phase records for one stage to ``<folder>/cost.jsonl``."""

    def __init__(self, folder: Path, stage: str, sample_interval_s: float = 0.05,
                 rapl_root: Path = RAPL_ROOT) -> None:
        self.path = Path(folder) / COST_FILE
        self.stage = stage
        self.sample_interval_s = sample_interval_s
        self.rapl_root = Path(rapl_root)
        self._host: str | None = None

    @property
    def host(self) -> str:
        if self._host is None:
            self._host = describe_host()
        return self._host

    @contextmanager
    def phase(self, phase: str, model: str | None = None, items: int | None = None,
              device: str = "cpu", **extra: Any) -> Iterator[PhaseHandle]:
        handle = PhaseHandle(items=items, extra=dict(extra))
        tags = dict(extra)
        phase_id = uuid.uuid4().hex[:12]
        parent_id = next((pid for f, pid in reversed(_OPEN_PHASES.get()) if f == str(self.path)),
                         None)
        token = _OPEN_PHASES.set((*_OPEN_PHASES.get(), (str(self.path), phase_id)))
        host, energy = self.host, EnergyProbe(self.rapl_root)
        started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        gpu = _gpu_peak_reset()
        status, error = "ok", None
        rss = _PeakRSS(self.sample_interval_s).__enter__()
        energy.start()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        try:
            yield handle
        except BaseException as err:
            status, error = "failed", f"{type(err).__name__}: {err}"
            raise
        finally:
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            energy_cpu, energy_gpu = energy.stop()
            rss.__exit__()
            _OPEN_PHASES.reset(token)
            self.append(PhaseRecord(
                stage=self.stage, phase=phase, model=model, items=handle.items,
                wall_s=wall, cpu_s=cpu, peak_rss_mb=rss.peak_mb,
                peak_gpu_mb=_gpu_peak_mb() if gpu else None,
                device=device, status=status, started_at=started, error=error,
                extra=handle.extra, tags=tags, phase_id=phase_id, parent_id=parent_id,
                energy_cpu_j=energy_cpu, energy_gpu_j=energy_gpu, energy_note=energy.note,
                host=host, pid=os.getpid(),
            ))

    def append(self, record: PhaseRecord) -> None:
        """Add one record; the file is rewritten atomically under a lock, so a crash never
        truncates it and two processes appending at once both keep their records."""
        line = json.dumps({**asdict(record), "items_per_s": record.items_per_s}, default=str)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(COST_FILE + ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            old = self.path.read_text() if self.path.is_file() else ""
            atomic_write(self.path, lambda tmp: tmp.write_text(old + line + "\n"))

    def records(self) -> list[dict[str, Any]]:
        return read_cost_records(self.path)


def read_cost_records(path: Path) -> list[dict[str, Any]]:
    """Every record of one ``cost.jsonl``, oldest first; [] if the file does not exist."""
    if not Path(path).is_file():
        return []
    records = []
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number} is not a JSON record: {err}") from err
    return records
