"""Phase timing: every stage records what each phase cost, for notebook 06 to collect.

``with recorder.phase("infer", model="resnet50", items=n): ...`` measures wall time, process
CPU time, items/s, the peak resident memory seen during the phase (sampled by a background
thread), peak GPU memory (when there is a GPU) and energy where a counter can be read
(CPU package via RAPL, GPU via NVML; otherwise ``energy_note`` says why it was not
measured), and appends one record to ``<stage dir>/cost.jsonl``. A phase that raises is
recorded with ``status="failed"`` and its time (``"interrupted"`` for a stopped kernel,
``KeyboardInterrupt``), then the error propagates.

Phases nest: a phase opened inside another phase of the same cost file (in the same
thread) records the outer one as its ``parent_id``, so totals sum only the top level. The keyword arguments given
when a phase opens (``seed=0, split="private_test"``) are its ``tags``: together with
stage, phase and model they name *what* was measured; values set later on the handle
(``h.extra["tokens"] = ...``) are measurements. Appends are atomic and serialised by a
lock file, so processes writing the same stage do not lose each other's records.

A phase that is killed (a kernel restart, SIGKILL, a power cut) cannot write its record, so
every open phase keeps a marker ``.open/<phase_id>.json`` beside the cost file, rewritten
every ``heartbeat_s`` seconds (and whenever the caller calls ``handle.beat()``) with the
time and items so far. ``read_cost_records`` returns the marker of a phase whose process is
gone as a record with ``status="interrupted"``: the time a killed attempt spent is counted,
up to its last heartbeat, and a resumed phase adds its own record beside it.
"""

from __future__ import annotations

import contextvars
import fcntl
import functools
import json
import os
import platform
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

from emolib.energy import RAPL_ROOT, EnergyProbe
from emolib.store import atomic_write

COST_FILE = "cost.jsonl"
OPEN_DIR = ".open"  # markers of phases still running (or killed while running)

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
    """Yielded inside a phase: set ``items`` (or ``extra``) once they are known; ``beat()``
    saves the progress so far (a killed phase is then counted up to here)."""

    items: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    beat: Any = field(default=lambda: None, repr=False)


class _Periodic:
    """Calls ``tick`` every ``interval_s`` seconds in a thread, from ``__enter__`` until ``__exit__``."""

    def __init__(self, tick: Any, interval_s: float) -> None:
        self._tick, self._interval = tick, interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._tick()

    def __enter__(self) -> _Periodic:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


class _PeakRSS(_Periodic):
    """Samples this process's RSS in a thread; ``peak`` is the largest value seen (bytes)."""

    def __init__(self, interval_s: float) -> None:
        self._proc = psutil.Process(os.getpid())
        self.peak = self._proc.memory_info().rss
        super().__init__(self._sample, interval_s)

    def _sample(self) -> None:
        self.peak = max(self.peak, self._proc.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self._sample()  # the last value, after the last tick

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
                 rapl_root: Path = RAPL_ROOT, heartbeat_s: float = 10.0) -> None:
        self.path = Path(folder) / COST_FILE
        self.stage = stage
        self.sample_interval_s = sample_interval_s
        self.heartbeat_s = heartbeat_s
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
        marker = self.path.parent / OPEN_DIR / f"{phase_id}.json"

        def record(status: str, error: str | None = None, energy_j=(None, None)) -> PhaseRecord:
            return PhaseRecord(
                stage=self.stage, phase=phase, model=model, items=handle.items,
                wall_s=time.perf_counter() - wall0, cpu_s=time.process_time() - cpu0,
                peak_rss_mb=rss.peak_mb, peak_gpu_mb=_gpu_peak_mb() if gpu else None,
                device=device, status=status, started_at=started, error=error,
                extra=dict(handle.extra), tags=tags, phase_id=phase_id, parent_id=parent_id,
                energy_cpu_j=energy_j[0], energy_gpu_j=energy_j[1], energy_note=energy.note,
                host=host, pid=os.getpid())

        def beat() -> None:
            line = json.dumps({**asdict(record("interrupted")), "node": platform.node()}, default=str)
            atomic_write(marker, lambda tmp: tmp.write_text(line))

        handle.beat = beat
        beat()
        heartbeat = _Periodic(beat, self.heartbeat_s).__enter__()
        try:
            yield handle
        except KeyboardInterrupt:  # a stopped kernel: the work done so far is kept, like a kill
            status, error = "interrupted", "KeyboardInterrupt"
            raise
        except BaseException as err:
            status, error = "failed", f"{type(err).__name__}: {err}"
            raise
        finally:
            heartbeat.__exit__()
            energy_j = energy.stop()
            rss.__exit__()
            _OPEN_PHASES.reset(token)
            self.append(record(status, error, energy_j))
            marker.unlink(missing_ok=True)

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
    """Every record of one ``cost.jsonl``, oldest first, then the phases of that folder that
    were killed while open (``status="interrupted"``, time up to their last heartbeat);
    [] if there is neither."""
    path = Path(path)
    records = []
    lines = path.read_text().splitlines() if path.is_file() else []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number} is not a JSON record: {err}") from err
    return records + interrupted_records(path.parent)


def interrupted_records(folder: Path) -> list[dict[str, Any]]:
    """The open-phase markers of ``folder`` whose process is gone (on this machine: its pid
    no longer runs; from another machine: always), oldest first."""
    found = []
    for marker in sorted((Path(folder) / OPEN_DIR).glob("*.json")):
        try:
            rec = json.loads(marker.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{marker} is not a JSON record: {err}; delete it") from err
        alive = rec.get("node") == platform.node() and psutil.pid_exists(int(rec.get("pid") or 0))
        if not alive:
            found.append(rec)
    return sorted(found, key=lambda r: r.get("started_at") or "")
