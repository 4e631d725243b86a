"""Mapping -> dataclass tree, driven by the type hints and field metadata alone (no table of class names).

Each annotation says what a value must be: a dataclass (a mapping of its fields, built recursively), ``list[T]``,
``dict[str, T]``, ``Optional[T]``, ``Literal[...]``, ``Any`` or a scalar; a field declared with
:class:`~.config_fields.Choices` is also checked against its registry, and a numeric one against its declared
:class:`~.config_fields.Bounds` (``bool`` is not a number here; ``None`` passes where the type allows it). Every
error names the dotted key (list items by index, ``methods.1.strategy``, the form ``--set`` takes), the value and
what was expected, and an unknown key names the closest valid one.
"""
from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import types
import typing
from typing import Any, Literal, Union

from .config_fields import FINITE, Bounds, bounds_of, choices_of
from .errors import ConfigError

__all__ = ["build", "build_field", "check_bounds", "join"]

_NONE = type(None)


def build(tp: Any, value: Any, where: str = "") -> Any:
    """``value`` checked against annotation ``tp`` and converted (dataclasses built, ints promoted to floats)."""
    if dataclasses.is_dataclass(tp):
        return _build_dataclass(tp, value, where)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Union or origin is types.UnionType:
        if value is None and _NONE in args:
            return None
        (inner,) = [a for a in args if a is not _NONE]  # only Optional[T] is a config type
        return build(inner, value, where)
    if origin is Literal:
        if any(type(value) is type(a) and value == a for a in args):
            return value
        raise ConfigError(f"config key '{where}' must be {_one_of(value, [str(a) for a in args])}, got {value!r}")
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"config key '{where}' must be a list, got {value!r}")
        return [build(args[0], item, f"{where}.{i}") for i, item in enumerate(value)] if args else value
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"config key '{where}' expects dict, got {value!r}")
        key_type, value_type = args or (Any, Any)
        for key in value:
            if key_type is not Any and not isinstance(key, key_type):
                raise ConfigError(f"config key '{where}' expects {key_type.__name__} keys, got the key {key!r}")
        return {key: build(value_type, item, join(where, str(key))) for key, item in value.items()}
    if tp is Any:
        return value
    return _scalar(tp, value, where)


def join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _build_dataclass(cls: type, values: Any, where: str) -> Any:
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"config key '{where}' must be a mapping, got {type(values).__name__}: {values!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted((key for key in values if key not in fields), key=str)
    if unknown:
        bad = str(unknown[0])
        close = difflib.get_close_matches(bad, list(fields), n=1)
        hint = f"; did you mean '{join(where, close[0])}'?" if close else ""
        raise ConfigError(
            f"unknown config key '{join(where, bad)}'{hint}; allowed keys in '{where or 'top level'}': "
            + ", ".join(fields)
        )
    kwargs = {name: build_field(cls, name, value, join(where, name)) for name, value in values.items()}
    return cls(**kwargs)


def build_field(cls: type, name: str, value: Any, key: str) -> Any:
    """``value`` built as field ``name`` of dataclass ``cls`` would be: its type, choices and range checked.

    Public so that a key held in a free mapping (a method's ``train`` overrides, a ``search`` value) is checked
    exactly like the section it overrides, under the key it was written at.
    """
    field, hint = _fields(cls)[name]
    built = build(hint, value, key)
    choices = choices_of(field)
    if choices is not None and built is not None and not choices.accepts(built):
        raise ConfigError(f"config key '{key}' must be {_closest(built, choices.allowed())}"
                          f"{choices.expected()}, got {built!r}")
    bounds = bounds_of(field)
    if bounds is not None:
        check_bounds(built, bounds, key, nullable=_NONE in typing.get_args(hint))
    return built


@functools.cache
def _fields(cls: type) -> dict[str, tuple[dataclasses.Field, Any]]:
    """Each field of ``cls`` with its resolved annotation (resolved once: the string annotations need an eval)."""
    hints = typing.get_type_hints(cls)
    return {f.name: (f, hints[f.name]) for f in dataclasses.fields(cls)}


def check_bounds(value: Any, bounds: Bounds, key: str, nullable: bool = False) -> None:
    """A number (each item of a list) within ``bounds``, or a ConfigError naming the key, the range and the value."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            check_bounds(item, bounds, f"{key}.{i}")
        return
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return  # the type check has the last word on non-numbers (null where allowed)
    if not bounds.accepts(value):
        expected = bounds.describe()
        if not math.isfinite(value) and expected != FINITE:
            expected = f"{FINITE} {expected}"  # "> 0" alone would read as if inf were fine
        null = " or null" if nullable else ""
        raise ConfigError(f"config key '{key}' must be {expected}{null}, got {value!r}")


def _one_of(value: Any, allowed: list[str]) -> str:
    return _closest(value, allowed) + "one of " + ", ".join(allowed)


def _closest(value: Any, allowed: list[str]) -> str:
    close = difflib.get_close_matches(str(value), allowed, n=1)
    return f"'{close[0]}' (the closest) or " if close else ""


def _scalar(tp: Any, value: Any, where: str) -> Any:
    """A leaf value: int -> float promotion, and PyYAML's string reading of ``3e-4`` (YAML 1.1 needs a dot)."""
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if tp is int and isinstance(value, bool):
        raise ConfigError(f"config key '{where}' expects an integer, got {value!r}")
    if tp in (int, float, str, bool, dict, list) and not isinstance(value, tp):
        raise ConfigError(f"config key '{where}' expects {tp.__name__}, got {value!r}")
    return value
