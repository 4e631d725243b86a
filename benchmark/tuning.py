"""Hyperparameter search on validation data only, with the same budget for every method.

The declared procedure (``tuning`` section of a config, ``search`` of each method):

1. A method's grid is the product of its ``search`` lists (dotted keys such as ``train.lr`` or
   ``strategy_options.ewc_lambda``). A grid larger than ``tuning.budget`` is cut to a seeded sample of
   ``budget`` points, so no method gets more trials than another. A method without ``search`` keeps its config.
2. Each trial is an ordinary run of the method (``runner.run_method``) on tasks built **without their test
   splits** (the test clips are not even read), evaluated on the validation splits: with ``first_tasks`` on the
   first ``tuning.tasks`` tasks, with ``full`` on all of them.
3. The score of a trial is the mean validation accuracy over its tasks after its last task (the validation
   analogue of the reported average accuracy: it rewards both learning each task and keeping it). The highest
   score wins; a tie goes to the earlier grid point, in the grid's declared order.
4. The chosen values are fixed for every seed of the reported run (Lee et al., "Hyperparameter Selection in
   Continual Learning", 2024: tuning on the first tasks and fixing the values is about as good as the costlier
   realistic protocols, and cheapest).

Everything is written under ``<run>/tuning/<method>/``: ``search.json`` (protocol, grid, every trial's values
and score, the chosen values) and one run folder per trial, so a search resumes trial by trial.

A search can also run on its own (``ticl run --search-only``) and be applied by other runs of the same config
(``ticl run --search-from DIR``): that is how ``ticl sweep`` runs each method's search as one cell, before the seed
cells that use it, and gets the very values of one ``ticl run --seeds ...``.
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import MethodConfig, RunConfig
from .errors import ConfigError
from .outputs import SUMMARY, method_hyperparameters
from .results import write_json

log = logging.getLogger("ticl")

SEARCH_FILE = "search.json"
METRIC = "mean validation accuracy over the trial's tasks after its last task"


@dataclass
class Trial:
    values: dict
    score: float
    folder: str


def grid(method: MethodConfig, budget: int, seed: int) -> list[dict]:
    """The trials of ``method``'s search: every grid point, or a seeded sample of ``budget`` of them (kept in grid
    order)."""
    keys = list(method.search)
    points = [dict(zip(keys, combo)) for combo in itertools.product(*(method.search[k] for k in keys))]
    if len(points) > budget:
        keep = sorted(random.Random(seed).sample(range(len(points)), budget))
        points = [points[i] for i in keep]
    return points


def apply_values(method: MethodConfig, values: dict) -> MethodConfig:
    """A copy of ``method`` with the dotted ``values`` set (``train.lr``, ``strategy_options.c`` ...)."""
    out = copy.deepcopy(method)
    for key, value in values.items():
        section, _, name = key.partition(".")
        target = getattr(out, section)
        if not isinstance(target, dict):
            raise ConfigError(f"search key '{key}' of method '{method.name}' does not address a mapping")
        target[name] = value
    return out


def search_method(
    cfg: RunConfig,
    method: MethodConfig,
    out_dir: Path,
    tasks_without_test: list,
    data_report: dict,
    progress: bool,
    resume: bool,
) -> tuple[MethodConfig, dict]:
    """Run ``method``'s search; return the method with the chosen values and its ``hyperparameters`` record."""
    from .runner import run_method  # looked up at call time: one trial is one ordinary run of the method
    from .summary import load_run_summary

    tuning = cfg.tuning
    seed = tuning.seed if tuning.seed is not None else cfg.seed
    n_tasks = tuning.tasks if tuning.protocol == "first_tasks" else len(tasks_without_test)
    if n_tasks > len(tasks_without_test):
        raise ConfigError(
            f"config key 'tuning.tasks' is {n_tasks}, but the scenario has only {len(tasks_without_test)} tasks"
        )
    tasks = tasks_without_test[:n_tasks]
    folder = out_dir / "tuning" / method.name
    points = grid(method, tuning.budget, seed)
    trial_cfg = dataclasses.replace(cfg, seed=seed)
    trials: list[Trial] = []
    for k, values in enumerate(points):
        trial_dir = folder / f"trial_{k:02d}"
        candidate = apply_values(method, values)
        if resume and (trial_dir / SUMMARY).is_file():
            summary = load_run_summary(trial_dir / SUMMARY)
        else:
            log.info("%s: search trial %d/%d %s", method.name, k + 1, len(points), values)
            summary = run_method(
                trial_cfg, candidate, tasks, trial_dir, progress, resume, data_report, eval_split="val",
                hyperparameters=method_hyperparameters(trial_cfg, candidate, "search trial"),
            ).summary
        trials.append(Trial(values, float(summary.avg_accuracy), str(trial_dir.relative_to(out_dir))))
    best = max(range(len(trials)), key=lambda i: (trials[i].score, -i))  # a tie goes to the earlier point
    chosen = trials[best].values
    record = {
        "method": method.name,
        "protocol": tuning.protocol,
        "first_tasks": n_tasks if tuning.protocol == "first_tasks" else None,
        "tasks": [t.name for t in tasks],
        "budget": tuning.budget,
        "seed": seed,
        "metric": METRIC,
        "grid": {k: list(v) for k, v in method.search.items()},
        "trials": [dataclasses.asdict(t) for t in trials],
        "chosen": chosen,
        "chosen_score": trials[best].score,
    }
    write_json(folder / SEARCH_FILE, record)
    log.info(
        "%s: chose %s (validation score %.4f over %d trials)", method.name, chosen, trials[best].score, len(trials)
    )
    return apply_search(cfg, method, record)


def apply_search(cfg: RunConfig, method: MethodConfig, record: dict) -> tuple[MethodConfig, dict]:
    """``method`` with a search record's chosen values, and its ``hyperparameters`` record: the same whether the
    search ran in this run or in another folder (``ticl run --search-from``)."""
    final = apply_values(method, record["chosen"])
    hyper = method_hyperparameters(cfg, final, "search")
    hyper["search"] = {k: record[k] for k in ("protocol", "first_tasks", "budget", "metric", "grid", "chosen",
                                              "chosen_score")} | {"n_trials": len(record["trials"])}
    return final, hyper


#: the keys a search record must hold to be applied
RECORD_KEYS = ("method", "protocol", "first_tasks", "budget", "seed", "metric", "grid", "trials", "chosen",
               "chosen_score")


def read_search(run_folder: Path, method: MethodConfig) -> dict:
    """The finished search of ``method`` in ``run_folder`` (``tuning/<method>/search.json``), checked against the
    method's declared grid; a ``ConfigError`` names the file and what is missing or different."""
    path = Path(run_folder) / "tuning" / method.name / SEARCH_FILE
    if not path.is_file():
        raise ConfigError(
            f"--search-from {run_folder}: no finished search of method '{method.name}' ({path} not found); run "
            f"`ticl run ... --search-only --out {run_folder}` first"
        )
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the search record ({type(exc).__name__}: {exc})") from None
    missing = [k for k in RECORD_KEYS if not isinstance(record, dict) or k not in record]
    if missing:
        raise ConfigError(f"{path}: not a search record: missing {', '.join(missing)}")
    declared = {k: list(v) for k, v in method.search.items()}
    if record["method"] != method.name or record["grid"] != declared:
        raise ConfigError(
            f"{path}: the search of '{record['method']}' over {record['grid']} is not method '{method.name}''s "
            f"declared search {declared}"
        )
    return record


def needs_search(cfg: RunConfig) -> bool:
    return cfg.tuning.protocol != "none" and any(m.search for m in cfg.methods)


def describe(cfg: RunConfig) -> dict[str, Any] | None:
    """The declared search, for the run folder's config and README."""
    if not needs_search(cfg):
        return None
    return dataclasses.asdict(cfg.tuning) | {
        "grids": {m.name: m.search for m in cfg.methods if m.search}
    }
