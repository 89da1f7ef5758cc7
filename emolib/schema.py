"""Typed, frozen configuration from plain data: every key and type checked, stable hashes.

``build_config(cls, raw)`` turns a mapping into the dataclass ``cls`` (nested dataclasses,
tuples, dicts, literals, unions), raising ``ConfigError`` with the key and the fix;
``to_dict`` turns it back into JSON-able data and ``config_hash`` hashes it.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal


class ConfigError(ValueError):
    """A profile that cannot be used as written; the message names the file, key and fix."""


@dataclasses.dataclass(frozen=True)
class Bounds:
    """The interval a number may take; ``None`` leaves a side open-ended. A setting declares
    it as ``field(default=..., metadata=at_least(1))`` and ``build_config`` checks it (null,
    where a setting allows it, is always allowed)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # True: low itself is not allowed
    high_open: bool = False

    def admits(self, value: float) -> bool:
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def words(self) -> str:
        if self.high is None:
            return f"{'above' if self.low_open else 'at least'} {self.low}"
        if self.low is None:
            return f"{'below' if self.high_open else 'at most'} {self.high}"
        return f"in {'(' if self.low_open else '['}{self.low}, {self.high}{')' if self.high_open else ']'}"


def at_least(low: float) -> dict[str, Bounds]:
    """Field metadata: the number (or each number of a list or mapping) is ``low`` or more."""
    return {"bounds": Bounds(low=low)}


def within(low: float | None, high: float | None, low_open: bool = False, high_open: bool = False,
           ) -> dict[str, Bounds]:
    """Field metadata: the number (or each number of a list or mapping) lies in the interval."""
    return {"bounds": Bounds(low, high, low_open, high_open)}


def check_names(names: str | tuple[str, ...], known: tuple[str, ...] | dict, where: str) -> None:
    """ConfigError naming ``where``, the unknown name, the closest known one and all of them
    when a name of ``names`` is not in ``known`` (a registry of ``emolib.registry``)."""
    for name in (names,) if isinstance(names, str) else names:
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(f"{where}: unknown name {name!r}; {hint}known: {list(known)}")


def check_bounds(value: Any, bounds: Bounds, where: str) -> None:
    """ConfigError naming ``where`` when a number of ``value`` (a number, or a list or mapping
    of them; None and ``auto`` pass) lies outside ``bounds``."""
    if isinstance(value, dict):
        items = value.items()
    else:
        items = enumerate(value) if isinstance(value, tuple) else [(None, value)]
    for key, number in items:
        if isinstance(number, int | float) and not isinstance(number, bool) and not bounds.admits(number):
            at = where if key is None else f"{where}[{key}]" if isinstance(key, int) else f"{where}.{key}"
            raise ConfigError(f"{at}: {number!r} is out of range; it must be {bounds.words()}")


def expand_dotted(overrides: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, Any] = {}
    for key, value in overrides.items():
        node = nested
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return nested


def deep_merge(base: dict, extra: dict) -> dict:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def build_config(cls: type, raw: Any, where: str = "config") -> Any:
    """Turn a mapping into the dataclass ``cls``, checking every key and type."""
    if dataclasses.is_dataclass(raw) and isinstance(raw, cls):
        return raw
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping for {cls.__name__}, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {unknown} for {cls.__name__}; allowed: {sorted(names)}"
        )
    values = {key: _coerce(hints[key], value, key_path(where, key)) for key, value in raw.items()}
    for f in dataclasses.fields(cls):
        if "bounds" in f.metadata and f.name in values:
            check_bounds(values[f.name], f.metadata["bounds"], key_path(where, f.name))
    try:
        return cls(**values)
    except TypeError as err:
        raise ConfigError(f"{where}: {err}") from err


def key_path(where: str, key: str) -> str:
    """``"quick.yaml"`` + ``cnn`` -> ``"quick.yaml: cnn"``; ``"quick.yaml: cnn"`` + ``lr`` ->
    ``"quick.yaml: cnn.lr"``: the file, then the dotted key a user writes."""
    return f"{where}.{key}" if ": " in where else f"{where}: {key}"


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        others = [a for a in args if a is not type(None)]
        if len(others) == 1:  # X | None: X's own error ("expected float, got str 'fast'")
            return _coerce(others[0], value, where)
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(arg, value, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(f"{where}: {value!r} fits none of {hint}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        return tuple(_coerce(inner, item, f"{where}[{i}]") for i, item in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return {k: _coerce(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if dataclasses.is_dataclass(hint):
        return build_config(hint, value, where)
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint in (int, float) and isinstance(value, bool):
        raise ConfigError(f"{where}: expected {hint.__name__}, got the boolean {value!r}")
    if isinstance(hint, type) and not isinstance(value, hint):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {type(value).__name__} {value!r}")
    return value


def to_dict(config: Any) -> Any:
    """A config (or part of one) as plain JSON-able data; tuples become lists. A field declared
    with ``metadata={"omit_default": True}`` is left out while it holds its default, so adding
    an optional setting keeps the hashes (and stage folders) of configs that do not use it."""
    if dataclasses.is_dataclass(config):
        return {f.name: to_dict(getattr(config, f.name)) for f in dataclasses.fields(config)
                if not (f.metadata.get("omit_default") and getattr(config, f.name) == _default_of(f))}
    if isinstance(config, tuple | list):
        return [to_dict(v) for v in config]
    if isinstance(config, dict):
        return {str(k): to_dict(v) for k, v in sorted(config.items())}
    if isinstance(config, Path):
        return str(config)
    return config


def _default_of(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def config_hash(*parts: Any, length: int = 12) -> str:
    """Stable hash of config sections and extra values (order matters, dict order does not)."""
    canonical = json.dumps([to_dict(p) for p in parts], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:length]
