"""The one device resolver of the study: ``auto | cpu | cuda | cuda:N | mps``.

``check_device(text)`` validates the spelling (at profile load, no torch needed);
``resolve_device(text)`` turns it into the device every stage uses and fails before any
work when the machine lacks it, with the fix. ``free_memory()`` empties the CUDA cache
after a model is dropped, so that one model at a time is resident.
"""

from __future__ import annotations

import gc
import re

DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


class DeviceError(RuntimeError):
    """A profile asks for a device this machine does not have, or spells one wrongly."""


def check_device(text: str, where: str = "device") -> str:
    """``text`` if it is one of auto, cpu, cuda, cuda:N, mps; else DeviceError with the fix."""
    if not isinstance(text, str) or not DEVICE_PATTERN.match(text):
        raise DeviceError(f"{where}: {text!r} is not a device; use auto, cpu, cuda, cuda:N or mps "
                          "(auto picks cuda when there is a GPU, else cpu)")
    return text


def resolve_device(text: str, where: str = "device") -> str:
    """The concrete device for ``text`` on this machine: ``auto`` -> ``cuda`` when a GPU is
    visible (else ``mps`` on Apple silicon, else ``cpu``). A device the machine lacks raises
    DeviceError saying what is there and to set ``device: auto``."""
    import torch

    check_device(text, where)
    if text == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "mps" if torch.backends.mps.is_available() else "cpu"
    if text.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(text.partition(":")[2] or 0)
        if index >= count:
            raise DeviceError(f"{where}: {text!r} asked for, but this machine has {count} CUDA device(s) "
                              f"(torch {torch.__version__}, CUDA build {torch.version.cuda}); "
                              "set `device: auto` in the profile (or pass overrides={'device': 'auto'})")
    if text == "mps" and not torch.backends.mps.is_available():
        raise DeviceError(f"{where}: 'mps' asked for, but this machine has no Apple GPU; set `device: auto`")
    return text


def free_memory() -> None:
    """Collect garbage and empty the CUDA cache (a no-op on CPU)."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
