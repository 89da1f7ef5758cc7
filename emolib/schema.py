"""Typed, frozen configuration from plain data: every key and type checked, stable hashes.

``build_config(cls, raw)`` turns a mapping into the dataclass ``cls`` (nested dataclasses,
tuples, dicts, literals, unions), raising ``ConfigError`` with the key and the fix;
``to_dict`` turns it back into JSON-able data and ``config_hash`` hashes it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from pathlib import Path
from typing import Any, Literal


class ConfigError(ValueError):
    """A profile that cannot be used as written; the message names the file, key and fix."""


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
    values = {key: _coerce(hints[key], value, f"{where}: {key}") for key, value in raw.items()}
    try:
        return cls(**values)
    except TypeError as err:
        raise ConfigError(f"{where}: {err}") from err


def _coerce(hint: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
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
