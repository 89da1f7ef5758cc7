"""Energy counters for a timed phase: the CPU package through RAPL (``/sys/class/powercap``)
and NVIDIA GPUs through NVML. ``EnergyProbe`` reads both where they exist; where they do not,
its ``note`` says why, and the recorder writes "not measured" instead of a number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

RAPL_ROOT = Path("/sys/class/powercap")


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
    except pynvml.NVMLError as err:  # no driver, no GPU, or a GPU without an energy counter
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
