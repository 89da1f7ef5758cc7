"""What this machine is, and what a profile's ``auto`` settings become on it.

``read_machine()`` reads the facts once per process: the cores this process may use
(``os.sched_getaffinity``), the CPU and whether it computes bf16 natively (AMX or
AVX512-BF16 as torch reports them; ``EMOLIB_NATIVE_BF16=0|1`` overrides the report, e.g. to
see what an AVX2-only machine would decide), the CUDA GPUs and Apple's MPS.
``plan_machine(profile, machine)`` turns the profile's device, CNN precision, threads and
workers into decisions, each with its reason. Decisions follow from the facts alone, never
from a timing, so the same machine always decides the same (same seed, same numbers).
Stages read the decisions, never the hardware; tests inject the facts.

``check_device(text)`` validates a device's spelling (at profile load, no torch needed);
``resolve_device(text)`` turns it into the device every stage uses and fails before any work
when the machine lacks it, with the fix. ``free_memory()`` empties the CUDA cache after a
model is dropped, so that one model at a time is resident.
"""

from __future__ import annotations

import functools
import gc
import os
import platform
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
NATIVE_BF16_ENV_VAR = "EMOLIB_NATIVE_BF16"  # 1 / 0: say the CPU does / does not compute bf16 natively
AUTO = "auto"
PRECISIONS = ("auto", "fp32", "bf16")  # what a profile may ask for (cnn.precision)


class DeviceError(RuntimeError):
    """A profile asks for a device this machine does not have, or spells one wrongly."""


@dataclass(frozen=True)
class Machine:
    """The facts a run decides from. ``cores``: the cores this process may use; ``native_bf16``
    and ``bf16_source``: whether (and by which instructions, or why not) the CPU computes bf16
    natively; ``cuda``: the CUDA devices' names, ``cuda_bf16``: whether they compute bf16,
    ``cuda_memory_gib``: their memory; ``assumed``: facts given for planning, not read here."""

    cores: int
    cpu: str
    cpu_capability: str  # torch's SIMD level: AVX2, AVX512, SVE256, ...
    native_bf16: bool
    bf16_source: str
    cuda: tuple[str, ...] = ()
    cuda_bf16: bool = False
    cuda_memory_gib: tuple[float, ...] = ()
    mps: bool = False
    assumed: str = ""


def _cpu_name() -> str:
    info = Path("/proc/cpuinfo")
    if info.is_file():
        for line in info.read_text(errors="replace").splitlines():
            if line.startswith(("model name", "Model name")):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _native_bf16(capability: str) -> tuple[bool, str]:
    """Whether torch will find native bf16 on this CPU, and by what: AMX or AVX512-BF16 on x86
    (torch's own CPU report, what oneDNN dispatches on), else the capability it lacks them at."""
    import torch

    override = os.environ.get(NATIVE_BF16_ENV_VAR)
    if override is not None:
        if override not in ("0", "1"):
            raise DeviceError(f"{NATIVE_BF16_ENV_VAR}={override!r}: use 1 (native bf16) or 0 (none), or unset it")
        return override == "1", f"{NATIVE_BF16_ENV_VAR}={override} (the CPU itself reports {capability})"
    if torch.cpu._is_amx_tile_supported():
        return True, "AMX"
    if torch.cpu._is_avx512_bf16_supported():
        return True, "AVX512-BF16"
    return False, capability


def read_machine() -> Machine:
    """This machine's facts, read once per process (``functools.cache``)."""
    return _read_machine()


@functools.cache
def _read_machine() -> Machine:
    import torch

    capability = torch.backends.cpu.get_cpu_capability()
    native, source = _native_bf16(capability)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    cuda: tuple[str, ...] = ()
    memory: tuple[float, ...] = ()
    if torch.cuda.is_available():
        cuda = tuple(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        memory = tuple(round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1) for i in range(len(cuda)))
    return Machine(cores=cores, cpu=_cpu_name(), cpu_capability=capability, native_bf16=native, bf16_source=source,
                   cuda=cuda, cuda_bf16=bool(cuda) and torch.cuda.is_bf16_supported(), cuda_memory_gib=memory,
                   mps=torch.backends.mps.is_available())


def assume_gpu(machine: Machine) -> Machine:
    """``machine`` with one bf16-capable CUDA GPU assumed when it has none: what ``emolib plan
    PROFILE --device cuda`` plans for on a login node (running still needs the GPU)."""
    if machine.cuda:
        return machine
    return replace(machine, cuda=("a CUDA GPU",), cuda_bf16=True, cuda_memory_gib=(),
                   assumed="planned for a CUDA GPU this machine does not have")


def describe_machine(machine: Machine) -> str:
    """One line: the CPU, its cores, its bf16 and the GPUs."""
    bf16 = f"native bf16 ({machine.bf16_source})" if machine.native_bf16 else f"no native bf16 ({machine.bf16_source})"
    memory = [f" ({m:g} GiB)" for m in machine.cuda_memory_gib] or [""] * len(machine.cuda)
    gpus = ", ".join(name + size for name, size in zip(machine.cuda, memory, strict=True))
    extra = f"; {machine.assumed}" if machine.assumed else ""
    return (f"{machine.cpu}: {machine.cores} core(s) for this process, {machine.cpu_capability}, {bf16}; "
            f"GPU: {gpus or ('Apple MPS' if machine.mps else 'none')}{extra}")


# ----------------------------------------------------------------------------- devices
def check_device(text: str, where: str = "device") -> str:
    """``text`` if it is one of auto, cpu, cuda, cuda:N, mps; else DeviceError with the fix."""
    if not isinstance(text, str) or not DEVICE_PATTERN.match(text):
        raise DeviceError(f"{where}: {text!r} is not a device; use auto, cpu, cuda, cuda:N or mps "
                          "(auto picks cuda when there is a GPU, else cpu)")
    return text


def resolve_device(text: str, where: str = "device", machine: Machine | None = None) -> str:
    """The concrete device for ``text`` on ``machine`` (default: this one): ``auto`` -> ``cuda``
    when a GPU is visible (else ``mps`` on Apple silicon, else ``cpu``). A device the machine
    lacks raises DeviceError saying what is there and to set ``device: auto``."""
    check_device(text, where)
    machine = machine or read_machine()
    if text == AUTO:
        return "cuda" if machine.cuda else "mps" if machine.mps else "cpu"
    if text.startswith("cuda"):
        index = int(text.partition(":")[2] or 0)
        if index >= len(machine.cuda):
            raise DeviceError(f"{where}: {text!r} asked for, but this machine has {len(machine.cuda)} CUDA "
                              "device(s); set `device: auto` in the profile (or pass overrides={'device': 'auto'}); "
                              "`emolib plan PROFILE --device cuda` plans for a GPU on any machine")
    if text == "mps" and not machine.mps:
        raise DeviceError(f"{where}: 'mps' asked for, but this machine has no Apple GPU; set `device: auto`")
    return text


def free_memory() -> None:
    """Collect garbage and empty the CUDA cache (a no-op on CPU)."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ----------------------------------------------------------------------------- decisions
@dataclass(frozen=True)
class Decision:
    """One setting as decided for this machine: what, its value, and why."""

    step: str
    setting: str
    value: str
    reason: str


@dataclass(frozen=True)
class MachinePlan:
    """A profile's hardware settings resolved on one machine (``plan_machine``)."""

    machine: Machine
    device: str
    precision: dict[str, str]  # CNN -> fp32 | bf16 | fp16 (fp16: CUDA without bf16, with a grad scaler)
    cnn_threads: int  # torch threads of the notebook's process (and of the epochs after the workers)
    cnn_workers: int  # CNNs trained at once in worker processes; 1: none
    worker_threads: int
    restoration_threads: int  # Real-ESRGAN ncnn instances side by side
    vlm_threads: int | None  # torch threads of the VLM stages; None: left as torch set them
    cost_threads: int  # torch threads while notebook 06 times inference
    decisions: tuple[Decision, ...]

    def lines(self) -> list[str]:
        """``step setting: value (reason)``, one line per decision."""
        return [f"{d.step} {d.setting}: {d.value} ({d.reason})" for d in self.decisions]

    def records(self) -> list[dict[str, str]]:
        return [{"step": d.step, "setting": d.setting, "value": d.value, "reason": d.reason} for d in self.decisions]

    def precision_words(self, model: str) -> str:
        """``fp32 on this CPU``, ``bf16 on this CPU``, ``bf16 mixed precision on CUDA``: what a
        reader sees beside a CNN's numbers."""
        precision = self.precision[model]
        if self.device == "cpu":
            return f"{precision} on this CPU"
        return f"{precision} mixed precision on {self.device}" if precision != "fp32" else f"fp32 on {self.device}"


def plan_machine(profile: Any, machine: Machine | None = None) -> MachinePlan:
    """The decisions for ``profile`` (an ``emolib.config.Profile``) on ``machine`` (default:
    this one). Raises DeviceError when the profile asks for what the machine lacks."""
    machine = machine or read_machine()
    device = resolve_device(profile.device, "device", machine)
    decisions = [Decision("all", "device", device, _device_reason(profile.device, device, machine))]
    precision = {}
    for name in profile.cnn.models:
        asked = profile.cnn.precision_of(name)
        precision[name], reason = _precision(asked, device, machine)
        decisions.append(Decision("cnn", f"precision {name}", precision[name], reason))
    threads, workers, per_worker, why = _cnn_workers(profile, device, machine)
    decisions += [Decision("cnn", "threads", str(threads), _threads_reason(profile.cnn.threads, machine)),
                  Decision("cnn", "workers", f"{workers} x {per_worker} thread(s)" if workers > 1 else "none", why)]
    restoration = _restoration_threads(profile.restoration, machine)
    decisions.append(Decision("restoration", "Real-ESRGAN instances", str(restoration[0]), restoration[1]))
    vlm = profile.vlm.torch_threads
    vlm_threads = machine.cores if vlm == AUTO else vlm
    decisions.append(Decision("vlm", "threads", "as torch sets them" if vlm_threads is None else str(vlm_threads),
                              "vlm.torch_threads: null" if vlm is None else _threads_reason(vlm, machine)))
    cost = machine.cores if profile.cost.scaling_threads == AUTO else profile.cost.scaling_threads
    decisions.append(Decision("cost", "threads", str(cost), _threads_reason(profile.cost.scaling_threads, machine)))
    return MachinePlan(machine, device, precision, threads, workers, per_worker, restoration[0], vlm_threads, cost,
                       tuple(decisions))


def _device_reason(asked: str, device: str, machine: Machine) -> str:
    if asked != AUTO:
        return f"device: {asked} in the profile" + (f"; {machine.assumed}" if machine.assumed else "")
    if device == "cuda":
        return f"auto: {len(machine.cuda)} CUDA GPU(s), {machine.cuda[0]}" + (f"; {machine.assumed}" if machine.assumed
                                                                             else "")
    return "auto: Apple MPS" if device == "mps" else "auto: no GPU on this machine"


def _precision(asked: str, device: str, machine: Machine) -> tuple[str, str]:
    """fp32 | bf16 | fp16 for one CNN and why. CPU: bf16 autocast only where the CPU computes
    bf16 natively (elsewhere it is emulated, ~10x slower than fp32); CUDA: mixed precision."""
    if device.startswith("cuda"):
        if asked == "fp32":
            return "fp32", "fp32 in the profile"
        if machine.cuda_bf16:
            return "bf16", f"{asked}: mixed precision, the GPU computes bf16"
        if asked == "bf16":
            raise DeviceError(f"cnn precision bf16 asked for, but {machine.cuda[0]} has no bf16; use auto (fp16)")
        return "fp16", "auto: mixed precision in fp16 with a gradient scaler, the GPU has no bf16"
    if device == "mps":
        if asked == "bf16":
            raise DeviceError("cnn precision bf16 is not supported on mps here; use auto or fp32")
        return "fp32", f"{asked}: fp32 on Apple MPS"
    has = "computes bf16 natively" if machine.native_bf16 else "has no native bf16"
    cpu = f"this CPU {has} ({machine.bf16_source})"
    if asked == AUTO:
        return ("bf16", f"auto: bf16 autocast, {cpu}") if machine.native_bf16 else ("fp32", f"auto: fp32, {cpu}")
    if asked == "bf16" and not machine.native_bf16:
        return "bf16", f"bf16 in the profile although {cpu}: expect it several times slower than fp32"
    return asked, f"{asked} in the profile; {cpu}"


def _threads_reason(asked: int | str, machine: Machine) -> str:
    if asked == AUTO:
        return f"auto: the {machine.cores} core(s) this process may use"
    extra = f", more than the {machine.cores} core(s) this process may use" if asked > machine.cores else ""
    return f"{asked} in the profile{extra}"


def _cnn_workers(profile: Any, device: str, machine: Machine) -> tuple[int, int, int, str]:
    """(threads, workers, threads per worker, why). On a CPU with 2+ cores, ``auto`` trains
    as many CNNs at once as there are jobs, up to one per core, each with its share of the
    cores (two 1-thread runs do more work per second than one 2-thread run on 2 cores). On a
    GPU no CPU workers: one process drives the GPU."""
    cfg = profile.cnn
    threads = machine.cores if cfg.threads == AUTO else cfg.threads
    jobs = len(cfg.models) * len(cfg.seeds)
    if device != "cpu":
        asked = "" if cfg.parallel in (AUTO, 1) else f" (cnn.parallel: {cfg.parallel} applies to a CPU only)"
        return threads, 1, threads, f"one process drives the GPU ({device}){asked}"
    if cfg.parallel == AUTO:
        workers = max(1, min(jobs, threads))
        why = (f"auto: {jobs} training job(s) on {threads} thread(s): one model at a time" if workers == 1 else
               f"auto: {jobs} training jobs on {threads} threads, {workers} at once, {threads // workers} thread(s) "
               "each (1-thread runs side by side do more work per second than one run on every thread)")
    else:
        workers = max(1, min(cfg.parallel, jobs))
        why = f"cnn.parallel: {cfg.parallel} in the profile" + (f", {jobs} job(s)" if workers < cfg.parallel else "")
    return threads, workers, max(1, threads // workers), why


def _restoration_threads(cfg: Any, machine: Machine) -> tuple[int, str]:
    asked = cfg.realesrgan_threads
    if asked != AUTO:
        return asked, _threads_reason(asked, machine)
    if cfg.realesrgan_gpuid >= 0:
        return 1, "auto: one instance drives the Vulkan GPU"
    # measured on 2 cores (issue 22): two instances side by side restored 15.7 faces/s, one 24.3
    return 1, "auto: one ncnn instance (instances side by side were slower than one on a CPU)"
