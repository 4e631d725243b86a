"""The sweep file (YAML), read into typed records. Every mistake is a :class:`ConfigError` naming the file and the key,
at load time, so that a typo in an axis never surfaces hours into a grid.

.. code-block:: yaml

    base: {preset: fsdd-cpu, set: {train.epochs: 3}}   # or base: fsdd-cpu, or base: {config: my.yaml}
    axes:
      method: [finetune, aicl-gsa]
      seed: [0, 1, 2]
      set.model.init: [random, upstream]              # any --set key, as set.<dotted.key>
    exclude:
      - {method: finetune, set.model.init: random}
    resources: {cpus: 2, gpus: 0.5}
    retries: 2

A config file (in ``base.config`` or as a ``preset`` axis value) is taken relative to the sweep file's folder, and
so is a ``data_root`` value; ``set`` values are passed on as they are, exactly like ``ticl run --set KEY=VALUE``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..config_load import list_presets
from ..errors import ConfigError

__all__ = ["AXES", "SET_PREFIX", "Axis", "Base", "Resources", "Sweep", "load_sweep", "source_of", "yaml_text"]

#: the axes a sweep may span besides ``set.<dotted.key>``
AXES = ("preset", "data_root", "method", "seed")
SET_PREFIX = "set."
TOP_KEYS = ("base", "axes", "exclude", "resources", "retries")
BASE_KEYS = ("preset", "config", "smoke", "set")
RESOURCE_KEYS = ("cpus", "gpus")
DEFAULT_RETRIES = 2


def yaml_text(value: Any) -> str:
    """``value`` as the YAML text that ``--set KEY=TEXT`` parses back to it (flow style, one line)."""
    text = yaml.safe_dump(value, default_flow_style=True, width=10**9, sort_keys=False).strip()
    return text.removesuffix("...").strip() if not isinstance(value, (dict, list)) else text


@dataclass(frozen=True)
class Base:
    """What every cell starts from: a preset or a config file, its ``--smoke`` variant, and ``--set`` overrides."""

    preset: str | None = None
    config: Path | None = None
    smoke: bool = False
    #: ``key=value`` overrides, in the file's order, applied before any axis
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Axis:
    """One dimension of the grid: its name (``preset``, ``data_root``, ``method``, ``seed`` or ``set.<key>``) and
    its values, in the file's order."""

    name: str
    values: tuple[Any, ...]

    @property
    def set_key(self) -> str | None:
        """The dotted config key of a ``set.<key>`` axis (None for the named axes)."""
        return self.name[len(SET_PREFIX):] if self.name.startswith(SET_PREFIX) else None

    @property
    def label(self) -> str:
        """How cell ids and table rows name the axis: ``set.model.init`` is ``model.init``."""
        return self.set_key or self.name


@dataclass(frozen=True)
class Resources:
    """What Ray reserves for each cell; ``gpus`` may be a fraction (0.5: two cells share a GPU)."""

    cpus: float = 1
    gpus: float = 0


@dataclass(frozen=True)
class Sweep:
    path: Path
    #: the file's mapping as written (kept in ``OUT/sweep.yaml``)
    raw: dict
    base: Base
    axes: tuple[Axis, ...]
    #: partial assignments (axis name -> value); a cell matching every key of one of them is left out
    exclude: tuple[dict[str, Any], ...] = ()
    resources: Resources = field(default_factory=Resources)
    #: how often Ray runs a cell again whose worker died (a failing ``ticl run`` is not retried)
    retries: int = DEFAULT_RETRIES

    @property
    def folder(self) -> Path:
        return self.path.parent


class _Reader:
    """Errors that name the sweep file and the key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def error(self, key: str, message: str) -> ConfigError:
        return ConfigError(f"sweep file {self.path}: key '{key}' {message}")

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...]) -> dict:
        if not isinstance(value, dict):
            raise self.error(key, f"must be a mapping, got {value!r}")
        for name in value:
            if name not in allowed:
                raise self.error(f"{key}.{name}" if key else str(name),
                                 f"is unknown; allowed: {', '.join(allowed)}")
        return value

    def number(self, value: Any, key: str, minimum: float, strict: bool) -> float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not ok or value < minimum or (strict and value == minimum):
            raise self.error(key, f"must be a number {'>' if strict else '>='} {minimum:g}, got {value!r}")
        return value


def source_of(text: str, folder: Path) -> tuple[str | None, Path | None]:
    """(preset, config file) named by ``text``: a ``.yaml`` / ``.yml`` name or a path is a file, taken relative to
    ``folder``; anything else is a shipped preset."""
    if text.endswith((".yaml", ".yml")) or "/" in text or "\\" in text:
        path = Path(text).expanduser()
        return None, (path if path.is_absolute() else folder / path).resolve()
    return text, None


def _check_source(reader: _Reader, text: Any, key: str, folder: Path) -> tuple[str | None, Path | None]:
    if not isinstance(text, str) or not text:
        raise reader.error(key, f"must be a preset name or a config file, got {text!r}")
    preset, config = source_of(text, folder)
    if config is not None and not config.is_file():
        raise reader.error(key, f"names the config file {config}, which does not exist")
    if preset is not None and preset not in list_presets():
        raise reader.error(key, f"names the unknown preset '{preset}'; presets: {', '.join(list_presets())}")
    return preset, config


def _overrides(reader: _Reader, value: Any, key: str) -> tuple[str, ...]:
    """``set:`` as a mapping (dotted key -> value) or a list of ``key=value`` strings: each one ``--set``."""
    if value is None:
        return ()
    if isinstance(value, dict):
        out = []
        for dotted, item in value.items():
            if not isinstance(dotted, str) or not dotted.strip() or "=" in dotted:
                raise reader.error(f"{key}.{dotted}", "must be a dotted config key such as train.epochs")
            out.append(f"{dotted.strip()}={yaml_text(item)}")
        return tuple(out)
    if isinstance(value, list) and all(isinstance(v, str) and "=" in v for v in value):
        return tuple(value)
    raise reader.error(key, f"must map dotted config keys to values (or list key=value strings), got {value!r}")


def _base(reader: _Reader, value: Any, folder: Path) -> Base:
    if value is None:
        return Base()
    if isinstance(value, str):
        preset, config = _check_source(reader, value, "base", folder)
        return Base(preset, config)
    value = reader.mapping(value, "base", BASE_KEYS)
    if "preset" in value and "config" in value:
        raise reader.error("base", "may name a preset or a config file, not both")
    preset = config = None
    if "preset" in value:
        preset, config = _check_source(reader, value["preset"], "base.preset", folder)
    if "config" in value:
        if not isinstance(value["config"], str) or not value["config"]:
            raise reader.error("base.config", f"must be a config file path, got {value['config']!r}")
        path = Path(value["config"]).expanduser()
        config = path if path.is_absolute() else (folder / path).resolve()
        if not config.is_file():
            raise reader.error("base.config", f"names the config file {config}, which does not exist")
    smoke = value.get("smoke", False)
    if not isinstance(smoke, bool):
        raise reader.error("base.smoke", f"must be true or false, got {smoke!r}")
    return Base(preset, config, smoke, _overrides(reader, value.get("set"), "base.set"))


def _axis(reader: _Reader, name: Any, values: Any, folder: Path) -> Axis:
    key = f"axes.{name}"
    if not isinstance(name, str) or not (name in AXES or (name.startswith(SET_PREFIX) and name[len(SET_PREFIX):])):
        raise reader.error(key, f"is not an axis; axes: {', '.join(AXES)}, or set.<dotted.key> for any --set key")
    if not isinstance(values, list) or not values:
        raise reader.error(key, f"must be a non-empty list of values, got {values!r}")
    for i, value in enumerate(values):
        where = f"{key}[{i}]"
        if name == "preset":
            _check_source(reader, value, where, folder)
        elif name in ("data_root", "method") and (not isinstance(value, str) or not value):
            raise reader.error(where, f"must be a non-empty string, got {value!r}")
        elif name == "seed" and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
            raise reader.error(where, f"must be an integer >= 0, got {value!r}")
        if value in values[:i]:
            raise reader.error(where, f"repeats the value {value!r}")
    return Axis(name, tuple(values))


def _exclude(reader: _Reader, value: Any, axes: tuple[Axis, ...]) -> tuple[dict[str, Any], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise reader.error("exclude", f"must be a list of partial assignments (axis: value), got {value!r}")
    by_name = {a.name: a for a in axes}
    out = []
    for i, entry in enumerate(value):
        if not isinstance(entry, dict) or not entry:
            raise reader.error(f"exclude[{i}]", f"must be a non-empty mapping of axis to value, got {entry!r}")
        for name, item in entry.items():
            if name not in by_name:
                raise reader.error(f"exclude[{i}].{name}", f"is not an axis of this sweep; axes: {', '.join(by_name)}")
            if item not in by_name[name].values:
                raise reader.error(f"exclude[{i}].{name}", f"is {item!r}, which is not a value of the axis "
                                   f"(values: {', '.join(map(repr, by_name[name].values))})")
        out.append(dict(entry))
    return tuple(out)


def load_sweep(path: Path) -> Sweep:
    """Read and check a sweep file (see the module docstring)."""
    path = Path(path)
    reader = _Reader(path)
    if not path.is_file():
        raise ConfigError(f"sweep file not found: {path}")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"sweep file {path} is not valid YAML: {exc}") from None
    raw = reader.mapping(raw if raw is not None else {}, "", TOP_KEYS)
    folder = path.resolve().parent
    base = _base(reader, raw.get("base"), folder)
    axes_raw = raw.get("axes") or {}
    if not isinstance(axes_raw, dict):
        raise reader.error("axes", f"must map axis names to lists of values, got {axes_raw!r}")
    axes = tuple(_axis(reader, name, values, folder) for name, values in axes_raw.items())
    if base.preset is None and base.config is None and "preset" not in axes_raw:
        raise reader.error("base", "must name a preset or a config file (or the sweep needs a 'preset' axis)")
    resources = reader.mapping(raw.get("resources") or {}, "resources", RESOURCE_KEYS)
    cpus = reader.number(resources.get("cpus", Resources.cpus), "resources.cpus", 0, strict=True)
    gpus = reader.number(resources.get("gpus", Resources.gpus), "resources.gpus", 0, strict=False)
    retries = raw.get("retries", DEFAULT_RETRIES)
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise reader.error("retries", f"must be an integer >= 0, got {retries!r}")
    return Sweep(path.resolve(), raw, base, axes, _exclude(reader, raw.get("exclude"), axes),
                 Resources(cpus, gpus), retries)
