"""One run folder, one config: the checks that keep a run folder, a resumed method and a table from mixing configs.

A run folder's ``config.yaml`` is the config its methods ran under. A second ``ticl run`` into the same folder may
rerun or resume those methods under the same config, run a subset of them (``--methods``), or, with
``--add-methods``, add methods that the folder does not have yet; anything else would leave a folder whose
``config.yaml`` and ``table.md`` claim one config for results of two, so it is refused, naming the keys that differ.
A resumed method is held to its checkpoint's config the same way.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from audio_ticl.benchmark.checkpoint import plain_config
from audio_ticl.benchmark.errors import CheckpointError, ConfigError

__all__ = ["NEUTRAL_KEYS", "differences", "describe", "read_config", "merged_run_config", "check_resumed_config",
           "check_search_source"]

#: keys that do not change a result's numbers: they may differ between a run and its resume or rerun (so may the
#: whole `logging` section: TensorBoard and W&B only read the numbers)
NEUTRAL_KEYS = frozenset({"train.threads", "description"})
CONFIG = "config.yaml"


def differences(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, old value, new value) wherever ``old`` and ``new`` differ, neutral keys left out."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new), key=str):
            found += differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return found
    key = prefix.rstrip(".")
    return [] if old == new or _neutral(key) else [(key, old, new)]


def _neutral(key: str) -> bool:
    """A key whose value changes no number: threads, the description, and where results are logged."""
    return key in NEUTRAL_KEYS or key.endswith(".train.threads") or key.split(".", 1)[0] == "logging"


def describe(found: list[tuple[str, Any, Any]], limit: int = 8) -> str:
    """``key (old -> new)`` for the first ``limit`` differences, and how many more."""
    shown = [f"{key} ({old!r} -> {new!r})" for key, old, new in found[:limit]]
    more = len(found) - limit
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def read_config(path: Path) -> dict:
    """A run or method folder's ``config.yaml``."""
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read the run folder's config ({type(exc).__name__}: {exc})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected the run folder's config (a mapping), got {type(data).__name__}")
    return data


def _without_methods(config: dict) -> dict:
    return {key: value for key, value in config.items() if key != "methods"}


def merged_run_config(out_dir: Path, new: dict, add_methods: bool = False) -> dict:
    """The config to write to ``out_dir/config.yaml`` for a run of ``new``: ``new`` itself in a fresh folder; in a
    folder that has one, the folder's methods plus any new ones, after checking that every other key, and every
    method both configs name, is the same. ``ConfigError`` names the folder and the keys that differ."""
    path = Path(out_dir) / CONFIG
    new = plain_config(new)
    if not path.is_file():
        return new
    old = plain_config(read_config(path))
    rest = differences(_without_methods(old), _without_methods(new))
    if rest:
        raise ConfigError(
            f"run folder {out_dir} holds a run of another config, which differs at {describe(rest)}; choose another "
            "--out (a run folder holds one config, so that its table compares like with like)"
        )
    old_methods = {m["name"]: m for m in old.get("methods", [])}
    added = []
    for method in new.get("methods", []):
        before = old_methods.get(method["name"])
        if before is None:
            added.append(method)
            continue
        changed = differences(before, method, f"methods.{method['name']}.")
        if changed:
            raise ConfigError(
                f"run folder {out_dir}: method '{method['name']}' ran there under another config, which differs at "
                f"{describe(changed)}; give the changed method another name, or choose another --out"
            )
    if added and not add_methods:
        names, them = ", ".join(m["name"] for m in added), "them" if len(added) > 1 else "it"
        raise ConfigError(
            f"run folder {out_dir} has no method {names}: pass --add-methods to add {them} to this folder's run (the "
            "rest of the config is the same), or choose another --out"
        )
    return old | {"methods": [*old.get("methods", []), *added]}


def check_resumed_config(saved: dict, resolved: dict, where: str) -> None:
    """Refuse to continue a checkpoint (or to keep a finished method) written under another config."""
    if not saved:
        return
    changed = differences(plain_config(saved), plain_config(resolved))
    if changed:
        raise CheckpointError(
            f"{where} was written under another config, which differs at {describe(changed)}; resume with the config "
            "that started it, or run without --resume into another --out"
        )


#: keys a search may be shared across: a seed cell applies the search that ran under the search seed
SEARCH_SHARED = frozenset({"seed", "seeds", "methods"})


def check_search_source(folder: Path, new: dict) -> None:
    """Refuse ``--search-from folder`` unless the folder's run has this config, seeds aside: the same data, model,
    training, tuning protocol, and the same config for every method of ``new`` (the folder may hold others)."""
    path = Path(folder) / CONFIG
    if not path.is_file():
        raise ConfigError(f"--search-from {folder}: not a run folder ({path} not found)")
    old, new = plain_config(read_config(path)), plain_config(new)
    found = differences({k: v for k, v in old.items() if k not in SEARCH_SHARED},
                        {k: v for k, v in new.items() if k not in SEARCH_SHARED})
    old_methods = {m["name"]: m for m in old.get("methods", [])}
    for method in new.get("methods", []):
        if not method.get("search"):
            continue  # it applies no search: the folder need not hold it
        if method["name"] not in old_methods:
            raise ConfigError(f"--search-from {folder}: its run has no method '{method['name']}' (it has "
                              f"{', '.join(old_methods) or 'none'})")
        found += differences(old_methods[method["name"]], method, f"methods.{method['name']}.")
    if found:
        raise ConfigError(
            f"--search-from {folder}: its searches ran under another config, which differs at {describe(found)}; a "
            "search is applied only to runs of the config it searched (seeds aside)"
        )
