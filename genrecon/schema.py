"""Strict parsing of plain dicts (from YAML) into frozen dataclasses.

Every problem is collected, with the dotted path of the offending key, so the user sees them all at once:
unknown keys (with a "did you mean"), wrong types, out-of-range values and missing required keys.
Constraints live in the dataclass field metadata: ``ge``, ``gt``, ``le``, ``lt``, ``doc``, and ``item`` (a
dict of the same bounds applied to each element of a list). Cross-field rules go in an optional method
``problems(self) -> list[str]`` on the dataclass.

Example:
    >>> from dataclasses import dataclass, field
    >>> @dataclass(frozen=True)
    ... class Noise:
    ...     sigma: float = field(default=0.0, metadata={"ge": 0, "doc": "noise std"})
    >>> problems = []
    >>> parse(Noise, {"sigma": -1, "sgima": 2}, "noise", problems)
    Noise(sigma=-1.0)
    >>> problems[0]
    "noise: unknown key 'sgima' (did you mean 'sigma'?)"
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal, Union

from .errors import did_you_mean

MISSING = dataclasses.MISSING


def _type_name(tp: Any) -> str:
    if tp is type(None):
        return "null"
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return f"list of {_type_name(args[0])}" if args else "list"
    if origin is dict:
        return "mapping"
    if dataclasses.is_dataclass(tp):
        return "mapping"
    return getattr(tp, "__name__", str(tp))


def coerce(tp: Any, value: Any, where: str, problems: list[str]) -> Any:
    """Check ``value`` against the type ``tp``; return it converted (int -> float, list -> tuple).

    Numbers must be finite everywhere (``.nan`` and ``.inf`` are refused, inside untyped mappings too).
    """
    if isinstance(value, float) and not math.isfinite(value):
        problems.append(f"{where}: must be a finite number, got {value}")
        return value
    if tp is Any:
        check_finite(value, where, problems)
        return value
    origin = typing.get_origin(tp)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            problems.append(
                f"{where}: {value!r} is not one of {', '.join(map(repr, choices))}"
                f"{did_you_mean(str(value), [str(c) for c in choices])}"
            )
        return value
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is type(None):
                continue
            trial: list[str] = []
            out = coerce(option, value, where, trial)
            if not trial:
                return out
        problems.append(f"{where}: expected {_type_name(tp)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            problems.append(f"{where}: expected a mapping, got {value!r}")
            return None
        return parse(tp, value, where, problems)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            problems.append(f"{where}: expected {_type_name(tp)}, got {value!r}")
            return value
        args = typing.get_args(tp)
        item_tp = args[0] if args else Any
        return tuple(coerce(item_tp, v, f"{where}.{i}", problems) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            problems.append(f"{where}: expected a mapping, got {value!r}")
            return {}
        check_finite(value, where, problems)
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            problems.append(f"{where}: expected a finite number, got {value!r}")
            return value
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            problems.append(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            problems.append(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            problems.append(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):  # e.g. a torch module where YAML gives a number
        problems.append(f"{where}: expected {_type_name(tp)}, got {value!r}")
    return value


def check_finite(value: Any, where: str, problems: list[str]) -> None:
    """Report every non-finite float inside ``value`` (nested mappings and lists), with its dotted path."""
    if isinstance(value, float) and not math.isfinite(value):
        problems.append(f"{where}: must be a finite number, got {value}")
    elif isinstance(value, dict):
        for k, v in value.items():
            check_finite(v, f"{where}.{k}" if where else str(k), problems)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            check_finite(v, f"{where}.{i}", problems)


def check_range(value: Any, meta: typing.Mapping[str, Any], where: str, problems: list[str]) -> None:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return
    if "ge" in meta and not value >= meta["ge"]:
        problems.append(f"{where}: must be >= {meta['ge']}, got {value}")
    if "gt" in meta and not value > meta["gt"]:
        problems.append(f"{where}: must be > {meta['gt']}, got {value}")
    if "le" in meta and not value <= meta["le"]:
        problems.append(f"{where}: must be <= {meta['le']}, got {value}")
    if "lt" in meta and not value < meta["lt"]:
        problems.append(f"{where}: must be < {meta['lt']}, got {value}")


def parse(cls: type, data: dict[str, Any], where: str, problems: list[str]) -> Any:
    """Build dataclass ``cls`` from ``data``; append every problem (with its path) to ``problems``."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    before = len(problems)
    prefix = f"{where}: " if where else ""
    for key in data:
        if key not in fields:
            problems.append(f"{prefix}unknown key '{key}'{did_you_mean(str(key), fields)}")
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        path = f"{where}.{name}" if where else name
        if name in data:
            value = coerce(hints[name], data[name], path, problems)
            check_range(value, f.metadata, path, problems)
            if isinstance(value, tuple) and "item" in f.metadata:
                for i, v in enumerate(value):
                    check_range(v, f.metadata["item"], f"{path}.{i}", problems)
            kwargs[name] = value
        elif f.default is MISSING and f.default_factory is MISSING:  # type: ignore[misc]
            problems.append(f"{prefix}missing required key '{name}'")
    try:
        obj = cls(**kwargs)
    except TypeError:
        return None
    if hasattr(obj, "problems"):
        try:
            extra = obj.problems()
        except Exception:  # fields already reported invalid can break a cross-field rule; those come first
            if len(problems) == before:
                raise
            extra = []
        problems.extend(f"{prefix}{p}" for p in extra)
    return obj


def describe(cls: type) -> list[tuple[str, str, str, str]]:
    """(name, type, default, doc) rows for documentation and ``genrecon list``."""
    hints = typing.get_type_hints(cls)
    rows = []
    for f in dataclasses.fields(cls):
        if f.default is not MISSING:
            default = repr(f.default)
        elif f.default_factory is not MISSING:  # type: ignore[misc]
            default = repr(f.default_factory())  # type: ignore[misc]
        else:
            default = "required"
        rows.append((f.name, _type_name(hints[f.name]), default, f.metadata.get("doc", "")))
    return rows
