"""The raw side of a config: shipped presets, ``extends:``, and ``--set`` overrides, all on plain mappings.

Nothing here knows the schema; :func:`audio_ticl.benchmark.config.load_config` builds and validates the result.
"""
from __future__ import annotations

import copy
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

__all__ = ["PRESET_PACKAGE", "list_presets", "load_raw", "deep_merge", "apply_override"]

PRESET_PACKAGE = "audio_ticl.benchmark.presets"


def list_presets(package: str = PRESET_PACKAGE) -> dict[str, str]:
    """Shipped preset names and their one-line descriptions (``ticl run``'s, or those of ``package``)."""
    out = {}
    for entry in sorted(resources.files(package).iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml"):
            raw = yaml.safe_load(entry.read_text()) or {}
            description = str(raw.get("description", "")).strip()
            if isinstance(raw.get("smoke"), dict):
                description += " [--smoke: a tiny CPU variant]"
            out[entry.name[: -len(".yaml")]] = description
    return out


def load_raw(preset: str | None = None, config_file: Path | None = None, package: str = PRESET_PACKAGE) -> dict:
    """The raw mapping of a preset or a YAML file (a file may ``extends: PRESET`` to start from one); ``package``
    holds the presets (``ticl run``'s by default)."""
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        base = raw.pop("extends", None)
        own_name = raw.get("name", path.stem)  # a file's own name, never the preset it extends
        raw = deep_merge(load_raw(base, package=package), raw) if base else raw
        raw["name"] = own_name
        return raw
    name = preset or "default"
    presets = list_presets(package)
    if name not in presets:
        raise ConfigError(f"unknown preset '{name}'; available presets: {', '.join(presets)}")
    raw = yaml.safe_load(resources.files(package).joinpath(f"{name}.yaml").read_text()) or {}
    base = raw.pop("extends", None)
    own_name = raw.get("name", name)  # the preset's own name, never the one it extends
    raw = deep_merge(load_raw(base, package=package), raw) if base else raw
    raw["name"] = own_name
    return raw


def deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_override(raw: dict, assignment: str) -> None:
    """Apply one ``dotted.key=value`` (value parsed as YAML; list items addressed by index or method name)."""
    if "=" not in assignment:
        raise ConfigError(f"--set expects key=value, got '{assignment}'")
    dotted, text = assignment.split("=", 1)
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    dotted = dotted.strip()
    parts = dotted.split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        node = _descend(node, part, ".".join(parts[: i + 1]), dotted)
    last = parts[-1]
    if isinstance(node, list):
        node[_list_index(node, last, dotted)] = value
    else:
        node[last] = value


def _descend(node: dict | list, part: str, where: str, dotted: str) -> dict | list:
    """The section ``part`` of ``node`` (created when absent); a value there is an error naming it, since setting a
    key inside a number or a string has no meaning."""
    if isinstance(node, list):
        child = node[_list_index(node, part, where)]
    else:
        if node.get(part) is None:  # absent, or an empty YAML section (`model:`), which the builder reads as {}
            node[part] = {}
        child = node[part]
    if not isinstance(child, (dict, list)):
        raise ConfigError(f"--set {dotted}: config key '{where}' holds the value {child!r}, not a section, so it has "
                          f"no key '{dotted[len(where) + 1:]}'")
    return child


def _list_index(items: list, part: str, where: str) -> int:
    if part.isdigit() and int(part) < len(items):
        return int(part)
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == part:
            return i
    names = [str(item.get("name", i)) if isinstance(item, dict) else str(i) for i, item in enumerate(items)]
    raise ConfigError(f"--set: no list item '{part}' at '{where}'; items: {', '.join(names)}")
