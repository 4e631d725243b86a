"""Where the rows of a table ran under different configs. Rows of one ``ticl table`` are compared as if only the
method differed; a row from a folder with other data, features or epochs breaks that silently. Each row's resolved
config (its method folder's ``config.yaml``) is compared with the others', leaving out what is meant to differ per
row: the method itself, its seed, and the ``train`` keys that the method sets or searches."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from audio_ticl.benchmark.checkpoint import plain_config
from audio_ticl.benchmark.run_folder import read_config

__all__ = ["row_config", "config_notes"]

#: top-level keys that differ between rows by design
PER_ROW = ("methods", "seed", "seeds", "name", "description", "logging")


def _config_file(folder: Path) -> Path | None:
    """The method folder's own config, or its first seed's (multi-seed folders keep one per seed)."""
    for path in (folder / "config.yaml", *sorted(folder.glob("seed[0-9]*/config.yaml"))):
        if path.is_file():
            return path
    return None


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for key, inner in value.items():
            out |= _flatten(inner, f"{prefix}{key}.")
        return out
    return {prefix.rstrip("."): value}


def row_config(folder: Path) -> dict[str, Any] | None:
    """A method folder's config as dotted keys, less what is meant to differ per row (None: no config file,
    e.g. a run made before configs were kept)."""
    path = _config_file(folder)
    if path is None:
        return None
    config = plain_config(read_config(path))
    method = (config.get("methods") or [{}])[0]
    own_train = set(method.get("train") or {}) | {key.split(".", 1)[1] for key in method.get("search") or {}
                                                  if key.startswith("train.")}
    flat = _flatten({k: v for k, v in config.items() if k not in PER_ROW})
    return {k: v for k, v in flat.items() if not (k.startswith("train.") and k.split(".", 1)[1] in own_train)}


def config_notes(rows: Sequence[tuple[str, Path]], limit: int = 8) -> list[str]:
    """A caution naming the keys at which the rows' configs differ, with each row's value; none if they agree."""
    configs = {label: row_config(folder) for label, folder in rows}
    known = {label: c for label, c in configs.items() if c is not None}
    if len(known) < 2:
        return []
    keys = sorted(set().union(*known.values()))
    differing = [k for k in keys if len({repr(c.get(k)) for c in known.values()}) > 1]
    if not differing:
        return []
    parts = []
    for key in differing[:limit]:
        groups: dict[str, list[str]] = {}
        for label, config in known.items():
            groups.setdefault(repr(config.get(key, "(unset)")), []).append(label)
        parts.append(f"{key} (" + "; ".join(f"{value}: {', '.join(labels)}" for value, labels in groups.items()) + ")")
    more = len(differing) - limit
    return [
        "Caution: the rows ran under configs that differ at " + ", ".join(parts)
        + (f" and {more} more keys" if more > 0 else "")
        + ": a difference between these rows may come from these keys, not only from the methods."
    ]
