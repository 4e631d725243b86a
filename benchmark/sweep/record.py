"""``OUT/sweep.yaml``: the resolved sweep (the file as written and every cell with its ``ticl run`` arguments), one
sweep per folder.

It is written before any cell runs, so a folder always says what it is for; a rerun into a folder of another sweep
is refused, naming the cells that differ, so that one folder never mixes the cells of two grids. ``ticl table`` and
``ticl plot`` read it to find the cells' run folders and their axis values.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, TICLError
from ..results import write_yaml
from .plan import Cell
from .schema import Sweep

__all__ = ["SWEEP_FILE", "SweepRecord", "is_sweep_folder", "read_record", "record", "prepare_folder"]

SWEEP_FILE = "sweep.yaml"


@dataclass(frozen=True)
class SweepRecord:
    """What a sweep folder's ``sweep.yaml`` says: the axes and, per cell, its id, axis values and arguments."""

    path: Path
    axes: dict[str, list[Any]]
    cells: list[dict[str, Any]]

    def cell_keys(self) -> dict[str, tuple]:
        """cell id -> what makes the cell what it is (its axis values and ``ticl run`` arguments)."""
        return {c["id"]: (c.get("axes"), c.get("args")) for c in self.cells}


def record(sweep: Sweep, cells: tuple[Cell, ...], out: Path) -> dict:
    """The content of ``sweep.yaml`` (plain YAML types only)."""
    return {
        "sweep": str(sweep.path),
        "file": sweep.raw,
        "axes": {a.name: list(a.values) for a in sweep.axes},
        "resources": {"cpus": sweep.resources.cpus, "gpus": sweep.resources.gpus},
        "retries": sweep.retries,
        "cells": [{"id": c.id, "kind": c.kind, "axes": dict(c.axes), "after": list(c.after), "args": c.run_args(out),
                   "command": c.command(out)} for c in cells],
    }


def is_sweep_folder(path: Path) -> bool:
    return (Path(path) / SWEEP_FILE).is_file()


def read_record(folder: Path) -> SweepRecord:
    path = Path(folder) / SWEEP_FILE
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise TICLError(f"{path}: cannot read the sweep record ({type(exc).__name__}: {exc})") from None
    cells = data.get("cells") if isinstance(data, dict) else None
    if not isinstance(cells, list) or not all(isinstance(c, dict) and isinstance(c.get("id"), str) for c in cells):
        raise TICLError(f"{path}: not a sweep record of this suite (no list of cells with ids)")
    axes = data.get("axes") if isinstance(data.get("axes"), dict) else {}
    return SweepRecord(path, axes, cells)


def _differences(old: SweepRecord, new: SweepRecord, limit: int = 4) -> str:
    before, after = old.cell_keys(), new.cell_keys()
    parts = []
    for what, ids in (("cells only in the folder", [c for c in before if c not in after]),
                      ("cells only in the sweep file", [c for c in after if c not in before]),
                      ("cells whose ticl run differs", [c for c in after if c in before and before[c] != after[c]])):
        if ids:
            more = f" and {len(ids) - limit} more" if len(ids) > limit else ""
            parts.append(f"{what}: {', '.join(ids[:limit])}{more}")
    if not parts and list(before) != list(after):
        parts.append("the cells are in another order")
    return "; ".join(parts)


def prepare_folder(out: Path, content: dict, resume: bool) -> None:
    """Write ``out/sweep.yaml`` after checking that ``out`` holds no other sweep: a folder of the same cells is
    continued only under ``resume``; a folder of other cells is refused either way."""
    path = Path(out) / SWEEP_FILE
    new = SweepRecord(path, content["axes"], content["cells"])
    if path.is_file():
        old = read_record(out)
        changed = _differences(old, new)
        if changed:
            raise ConfigError(f"{out} holds another sweep ({changed}); a folder holds one sweep: choose another --out")
        if not resume:
            raise ConfigError(f"{out} holds this sweep already: pass --resume to continue it (finished cells are "
                              "skipped), or choose another --out")
    elif resume:
        raise ConfigError(f"--resume: {out} holds no sweep ({SWEEP_FILE}); check --out, or drop --resume to start one")
    write_yaml(path, content)
