"""The cells of a sweep (the product of its axes, less the exclusions), their ids and ``ticl run`` arguments, and the
validation of every cell's config before any cell runs.

A cell id is built from the cell's axis values (``method=finetune,seed=0``), so a folder name says what ran there
and stays the same when the sweep is run again. Validation builds each distinct config once (the seed, name and
description do not change what ``preflight`` builds), so a grid of 10 methods x 5 seeds builds 10 configs, not 50.

**Searches are cells too.** When a cell's config declares a hyperparameter search (``tuning``), its search does not
run inside the cell: one *search cell* (``search,method=finetune``) runs it (``ticl run --search-only``), under
``tuning.seed``, else under the first value of the ``seed`` axis, exactly as ``ticl run --seeds 0,1,2`` searches
under seed 0, and every cell of that config, whatever its seed, applies it (``ticl run --search-from``) once it is
done. So a sweep chooses the very values of the serial run, each search once, and the searches of different
methods (put them on a ``method`` axis) run side by side.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import logging
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, TICLError
from .schema import Sweep, source_of, yaml_text

__all__ = ["MAX_ID", "Cell", "Grid", "Validation", "cell_id", "grid", "validate", "describe"]

log = logging.getLogger("ticl")

#: the longest cell id (a folder name); a longer one keeps a readable prefix and a hash of the whole assignment
MAX_ID = 96
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]+")


@dataclass(frozen=True)
class Cell:
    """One combination of axis values and the ``ticl run`` that computes it."""

    id: str
    #: (axis name, value) in the sweep's axis order
    axes: tuple[tuple[str, Any], ...]
    preset: str | None
    config: Path | None
    smoke: bool
    #: ``--set`` overrides: the base's, then the ``set.*`` axes'
    overrides: tuple[str, ...]
    data_root: Path | None = None
    seed: int | None = None
    #: ``--methods`` (empty: every method of the config)
    methods: tuple[str, ...] = ()
    #: ``run`` (a ticl run) or ``search`` (its methods' searches only, which run cells then apply)
    kind: str = "run"
    #: the id of the search cell whose searches this run cell applies (it runs once that cell is done)
    search: str | None = None

    def run_args(self, root: Path) -> list[str]:
        """``ticl run`` arguments of this cell, less ``--out`` (which ``root``, the sweep's folder, decides)."""
        args = ["run", *(["--preset", self.preset] if self.preset else ["--config", str(self.config)])]
        args += ["--smoke"] if self.smoke else []
        args += ["--data-root", str(self.data_root)] if self.data_root is not None else []
        args += ["--seed", str(self.seed)] if self.seed is not None else []
        for assignment in self.overrides:
            args += ["--set", assignment]
        args += ["--methods", ",".join(self.methods)] if self.methods else []
        args += ["--search-only"] if self.kind == "search" else []
        args += ["--search-from", str(Path(root) / self.search)] if self.search is not None else []
        return args

    @property
    def after(self) -> tuple[str, ...]:
        """The cells that must be done before this one starts."""
        return (self.search,) if self.search is not None else ()

    def out(self, root: Path) -> Path:
        return Path(root) / self.id

    def command(self, root: Path) -> str:
        """The shell command that computes this cell by hand."""
        return shlex.join(["ticl", *self.run_args(root), "--out", str(self.out(root))])

    def load(self):
        """The cell's validated :class:`RunConfig`, resolved exactly as ``ticl run`` resolves its arguments."""
        from ..config import load_config, select_methods

        overrides = [*self.overrides]  # ticl run: --set first, then --data-root and --seed
        overrides += [f"data.root={self.data_root}"] if self.data_root is not None else []
        overrides += [f"seed={self.seed}"] if self.seed is not None else []
        cfg = load_config(self.preset, self.config, overrides, smoke=self.smoke)
        if self.methods:
            cfg = select_methods(cfg, list(self.methods))
        if self.data_root is not None and cfg.data.source == "synthetic" and cfg.scenario.kind == "class_split":
            raise ConfigError(f"a data_root axis was given, but config '{cfg.name}' uses the built-in synthetic data")
        return cfg


@dataclass(frozen=True)
class Grid:
    cells: tuple[Cell, ...]
    #: cells left out by ``exclude``
    excluded: int


def _id_part(label: str, value: Any) -> str:
    text = value if isinstance(value, str) else yaml_text(value)
    return f"{label}={_UNSAFE.sub('_', text).strip('_') or '_'}"


def _digest(assignment: tuple[tuple[str, Any], ...]) -> str:
    return hashlib.sha1(json.dumps(assignment, sort_keys=True, default=str).encode()).hexdigest()[:8]


def cell_id(sweep: Sweep, assignment: tuple[tuple[str, Any], ...]) -> str:
    """``label=value,...`` over the axes, filesystem-safe; past :data:`MAX_ID` characters a prefix and a hash."""
    labels = {a.name: a.label for a in sweep.axes}
    text = ",".join(_id_part(labels[name], value) for name, value in assignment) or "base"
    if len(text) <= MAX_ID:
        return text
    return f"{text[: MAX_ID - 9].rstrip(',')}-{_digest(assignment)}"


def _cell(sweep: Sweep, assignment: tuple[tuple[str, Any], ...], cid: str) -> Cell:
    base = sweep.base
    preset, config, overrides = base.preset, base.config, list(base.overrides)
    data_root = seed = None
    methods: tuple[str, ...] = ()
    for axis, (name, value) in zip(sweep.axes, assignment):
        if name == "preset":
            preset, config = source_of(value, sweep.folder)
        elif name == "data_root":
            path = Path(value).expanduser()
            data_root = path if path.is_absolute() else (sweep.folder / path).resolve()
        elif name == "method":
            methods = (value,)
        elif name == "seed":
            seed = value
        else:
            overrides.append(f"{axis.set_key}={yaml_text(value)}")
    return Cell(cid, assignment, preset, config, base.smoke, tuple(overrides), data_root, seed, methods)


def _search_cell(sweep: Sweep, cell: Cell, ids: set[str]) -> Cell | None:
    """The search cell of run cell ``cell``, or None if its config searches nothing (or does not load: validation
    reports that). It is the cell under the search seed, less the ``seed`` axis, running only methods that search."""
    from ..tuning import needs_search

    try:
        cfg = cell.load()
    except TICLError:
        return None
    if not needs_search(cfg):
        return None
    seed_axis = next((a for a in sweep.axes if a.name == "seed"), None)
    seed = cfg.tuning.seed if cfg.tuning.seed is not None else seed_axis.values[0] if seed_axis else None
    assignment = tuple((name, value) for name, value in cell.axes if name != "seed")
    searched = tuple(m.name for m in cfg.methods if m.search)
    if not searched:
        return None
    labels = {a.name: a.label for a in sweep.axes}
    subset = searched if not cell.methods and len(searched) < len(cfg.methods) else ()
    text = ",".join(["search", *(_id_part(labels[n], v) for n, v in assignment)])
    text += f",methods={'+'.join(subset)}" if subset else ""
    if len(text) > MAX_ID or text in ids:
        text = f"{text[: MAX_ID - 9].rstrip(',')}-{_digest(assignment)}"
    return dataclasses.replace(cell, id=text, axes=assignment, seed=seed, kind="search",
                               methods=cell.methods or subset)


def grid(sweep: Sweep) -> Grid:
    """Every cell of the sweep: the search cells first, then the run cells in the axes' order (the last axis varies
    fastest)."""
    names = [a.name for a in sweep.axes]
    kept, excluded = [], 0
    for values in itertools.product(*(a.values for a in sweep.axes)):
        assignment = tuple(zip(names, values))
        chosen = dict(assignment)
        if any(all(chosen[k] == v for k, v in rule.items()) for rule in sweep.exclude):
            excluded += 1
            continue
        kept.append(assignment)
    ids = [cell_id(sweep, a) for a in kept]
    # two values that read the same once made safe (a/b, a_b): each gets a hash of its values
    ids = [f"{cid[: MAX_ID - 9]}-{_digest(a)}" if ids.count(cid) > 1 else cid for cid, a in zip(ids, kept)]
    runs = [_cell(sweep, a, cid) for a, cid in zip(kept, ids)]
    searches: dict[str, Cell | None] = {}
    for i, cell in enumerate(runs):  # axis values may be mappings or lists: the key is their JSON text
        key = json.dumps([(n, v) for n, v in cell.axes if n != "seed"], sort_keys=True, default=str)
        if key not in searches:
            found = _search_cell(sweep, cell, set(ids) | {c.id for c in searches.values() if c is not None})
            searches[key] = found
        if searches[key] is not None:
            runs[i] = dataclasses.replace(cell, search=searches[key].id)
    return Grid(tuple([c for c in searches.values() if c is not None] + runs), excluded)


@dataclass(frozen=True)
class Validation:
    #: cell id -> the methods its run folder will hold
    methods: dict[str, tuple[str, ...]]
    #: distinct configs built
    builds: int


def _build_key(cfg) -> str:
    """What ``preflight`` depends on: the config less its seed, name and description."""
    from ..config import to_dict

    data = {k: v for k, v in to_dict(cfg).items() if k not in ("seed", "name", "description")}
    return json.dumps(data, sort_keys=True, default=str)


def _on_this_machine(cfg):
    """The config with CUDA devices read as the CPU: the cells run where Ray finds their GPUs, which the machine
    that plans them (a cluster's head) may not have; every other key is checked as it is."""
    def cpu(device: Any) -> Any:
        return "cpu" if str(device).startswith("cuda") else device

    methods = [dataclasses.replace(m, train={**m.train, "device": cpu(m.train["device"])}) if "device" in m.train
               else m for m in cfg.methods]
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, device=cpu(cfg.train.device)),
                               methods=methods)


def validate(sweep: Sweep, cells: tuple[Cell, ...]) -> Validation:
    """Resolve every cell's config and build each distinct one once (``preflight``); the first problem is a
    ``ConfigError`` naming the sweep file, the cell id and the key."""
    import torch

    from ..preflight import preflight

    gpu_cells = sweep.resources.gpus > 0 and not torch.cuda.is_available()
    built: set[str] = set()
    methods = {}
    for cell in cells:
        try:
            cfg = cell.load()
            key = _build_key(cfg)
            if key not in built:
                preflight(_on_this_machine(cfg) if gpu_cells else cfg)
                built.add(key)
        except TICLError as exc:
            raise ConfigError(f"sweep {sweep.path}: cell {cell.id}: {exc}") from None
        methods[cell.id] = tuple(m.name for m in cfg.methods)
    log.info("sweep %s: %d cells valid (%d distinct configs built)", sweep.path.name, len(cells), len(built))
    return Validation(methods, len(built))


def describe(grid_: Grid, out: Path) -> str:
    """``ticl sweep plan``'s listing: each cell's id and command, then the count."""
    lines = []
    for cell in grid_.cells:
        lines += [cell.id, f"  {cell.command(out)}"]
    searches = sum(1 for c in grid_.cells if c.kind == "search")
    runs = len(grid_.cells) - searches
    excluded = f" ({grid_.excluded} excluded)" if grid_.excluded else ""
    if searches:
        lines.append(f"{runs} run cell{'s' if runs != 1 else ''}{excluded}, after {searches} search "
                     f"cell{'s' if searches != 1 else ''}: {len(grid_.cells)} cells")
    else:
        lines.append(f"{runs} cell{'s' if runs != 1 else ''}{excluded}")
    return "\n".join(lines)
