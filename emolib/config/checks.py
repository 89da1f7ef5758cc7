"""Checks shared by the settings of several stages."""

from __future__ import annotations

from emolib.machine import AUTO
from emolib.schema import ConfigError


def check_threads(value: int | str, where: str) -> None:
    """ConfigError unless ``value`` is ``auto`` or a count of at least 1."""
    if value != AUTO and value < 1:
        raise ConfigError(f"{where}: {value!r} must be at least 1, or auto (sized from this machine's cores)")
