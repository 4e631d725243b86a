"""Load finished run folders (single- or multi-seed) into pandas DataFrames for tables and plots.

A run folder is what ``ticl run`` writes: one subfolder per method holding ``summary.json`` (single seed), or
``seed<N>/summary.json`` per seed plus a :class:`~benchmark.summary.SeedsSummary` at ``<method>/summary.json``
(``--seeds``). The runner writes ``summary.json`` last, so a method folder without it is unfinished: loading
refuses it, naming the folder, rather than returning a partial table that would look complete. Summaries are read
through :mod:`benchmark.summary` (one schema; another schema version is refused, naming the file).

This module is the one aggregation path: means, sample stds and bootstrap intervals over seeds are computed here
(``method_frame``), for ``table.md`` (written by the runner) and ``ticl table`` alike.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .. import metrics as M
from ..errors import TICLError
from ..summary import SCHEMA_VERSION, RunSummary, SeedsSummary, load_summary, seed_summaries
from .hyperparameters import TUNING, hyperparameter_note, hyperparameter_source

SUMMARY = "summary.json"
#: folders of a run folder that are never method folders
NOT_METHODS = frozenset({TUNING, "plots"})
#: parameters are stored as fp32 (the runner trains and saves in fp32)
BYTES_PER_PARAM = 4
#: strategies that are reference points, not continual learners: shown, never ranked as "best"
#: (``joint`` trains once on every task at the end: its forgetting, BWT and plasticity are not measured)
UNRANKED_STRATEGIES = frozenset({"joint"})
#: the headline metrics with a bootstrap interval (``<metric>_lo`` / ``<metric>_hi`` columns)
CI_METRICS = ("avg_accuracy", "avg_forgetting", "plasticity", "bwt")
#: the bootstrap behind every table: fixed, so a table is reproducible to the digit
N_BOOT = 2000
CI_LEVEL = 0.95
BOOT_SEED = 0

Summary = RunSummary | SeedsSummary


class UnfinishedRunError(TICLError):
    """A run folder (or one of its methods) has no ``summary.json``: the run did not finish."""


@dataclass(frozen=True)
class MethodRun:
    """One method of one run folder, with every seed's summary (one for a single-seed run)."""

    label: str
    run_dir: Path
    folder: Path
    summary: Summary
    seeds: tuple[RunSummary, ...]

    @property
    def name(self) -> str:
        return self.summary.method

    @property
    def strategy(self) -> str:
        return self.summary.strategy


def trained_task_by_task(summary: RunSummary) -> bool:
    """Whether R[i][j] for i < T-1 are measurements: False for a strategy trained once at the end (joint), whose
    summary leaves plasticity, forgetting and BWT as None."""
    return summary.plasticity is not None


# --------------------------------------------------------------------------------------- finding folders
def _looks_like_method_folder(path: Path) -> bool:
    """What the runner leaves in a method folder, finished or not (so unfinished ones are found too)."""
    return path.is_dir() and not path.name.startswith(".") and path.name not in NOT_METHODS and (
        (path / SUMMARY).is_file()
        or (path / "config.yaml").is_file()
        or (path / "checkpoints").is_dir()
        or any(p.is_dir() for p in path.glob("seed[0-9]*"))
    )


def _finished_seeds(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("seed[0-9]*") if (p / SUMMARY).is_file())


def _unfinished(folder: Path) -> UnfinishedRunError:
    seeds = _finished_seeds(folder)
    hint = ""
    if seeds:
        hint = (
            f" (finished seeds: {', '.join(seeds)}; finish the run with `ticl run ... --resume`, or tabulate "
            f"one seed by naming its folders, e.g. {folder.parent}/*/{seeds[0]})"
        )
    return UnfinishedRunError(f"{folder}: no {SUMMARY}, the run is unfinished{hint}")


def _run_config(run_dir: Path) -> dict:
    path = run_dir / "config.yaml"
    if not path.is_file():
        return {}
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise TICLError(f"{path}: not valid YAML ({exc})") from None


def read_summary(path: Path) -> Summary:
    """A ``summary.json`` of either kind, refusing another schema version (the error names the file)."""
    summary = load_summary(path)
    version = getattr(summary, "schema_version", None)
    if version != SCHEMA_VERSION:  # SeedsSummary's own version (its seeds' are checked by load_summary)
        raise TICLError(f"{path}: summary schema version {version!r}, this suite reads version {SCHEMA_VERSION}")
    return summary


def _method_summaries(run_dir: Path) -> list[tuple[Path, Summary]]:
    """(folder, summary) of every method of a run folder, in the run's method order (see ``method_folders``)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise TICLError(f"{run_dir}: no such run folder")
    if (run_dir / SUMMARY).is_file():
        return [(run_dir, read_summary(run_dir / SUMMARY))]
    if (run_dir / "checkpoints").is_dir():
        raise _unfinished(run_dir)
    found = {p.name: p for p in sorted(run_dir.iterdir()) if _looks_like_method_folder(p)}
    config = _run_config(run_dir)
    configured = [m["name"] for m in config.get("methods") or [] if isinstance(m, dict) and "name" in m]
    if not found and not configured:
        raise UnfinishedRunError(f"{run_dir}: no {SUMMARY} and no method folders in it; is it a run folder?")
    ordered = []
    for name in [*configured, *(n for n in found if n not in configured)]:  # the first unfinished is named
        if name not in found:
            raise UnfinishedRunError(
                f"{run_dir}: method '{name}' of its config.yaml has no folder, the run is unfinished"
            )
        if not (found[name] / SUMMARY).is_file():
            raise _unfinished(found[name])
        ordered.append((found[name], read_summary(found[name] / SUMMARY)))
    seeds = config.get("seeds")
    if seeds:
        for folder, summary in ordered:
            done = [s.seed for s in seed_summaries(summary)]
            if done != list(seeds):
                raise UnfinishedRunError(
                    f"{folder}: {SUMMARY} covers seeds {done}, but the run's config.yaml asks for {list(seeds)}; "
                    "the run is unfinished"
                )
    return ordered


def method_folders(run_dir: Path) -> list[Path]:
    """The finished method folders of a run folder, in the run's method order.

    ``run_dir`` may also be one method folder (or one ``seed<N>`` folder) with its own ``summary.json``.
    Raises UnfinishedRunError if any method, or any method the run's ``config.yaml`` names, has no summary.
    """
    return [folder for folder, _ in _method_summaries(run_dir)]


def _short_names(paths: Sequence[Path]) -> dict[Path, str]:
    """The shortest path suffix that tells each folder apart (``esc10`` vs ``baselines/esc10``)."""
    parts = {p: p.resolve().parts for p in paths}
    distinct = len(set(parts.values()))
    for n in range(1, max(len(v) for v in parts.values()) + 1):
        names = {p: "/".join(v[-n:]) for p, v in parts.items()}
        if len(set(names.values())) == distinct:
            return names
    return {p: str(p) for p in paths}


def _run_folder(run_dir: Path, folder: Path) -> Path:
    """The run a method folder belongs to: RUN_DIR itself, or, when RUN_DIR names one method folder (or one
    of its ``seed<N>`` folders), the run folder above it."""
    if folder != run_dir:
        return run_dir
    return folder.parent.parent if re.fullmatch(r"seed\d+", folder.name) else folder.parent


def _sweep_rows(sweep_dir: Path) -> list[tuple[str, Path, Path, Summary]]:
    """A sweep folder (``ticl sweep run``'s, with ``sweep.yaml``) as rows: (name, run folder, method folder,
    summary) for each method of each group of cells that differ only in their seed, named by the values of the
    other axes that vary (``finetune (model.init=random)``); the group's seeds become the row's mean ± std."""
    from ..sweep.record import read_record
    from ..sweep.schema import SET_PREFIX, yaml_text

    record = read_record(sweep_dir)
    varying = [name for name, values in record.axes.items()
               if name not in ("seed", "method") and isinstance(values, list) and len(values) > 1]

    def text(value) -> str:
        return value if isinstance(value, str) else yaml_text(value)

    groups: dict[str, list[tuple[Path, Path, Summary]]] = {}
    for cell in record.cells:
        if cell.get("kind", "run") == "search":
            continue  # a search cell's trials are validation runs: its run cells hold the results
        folder = sweep_dir / cell["id"]
        if not folder.is_dir():
            raise UnfinishedRunError(f"{sweep_dir}: cell {cell['id']} has no run folder (not run yet, or it failed); "
                                     f"finish the sweep with `ticl sweep run FILE --out {sweep_dir} --resume`")
        axes = cell.get("axes") or {}
        where = ", ".join(f"{name.removeprefix(SET_PREFIX)}={text(axes.get(name))}" for name in varying)
        for method_folder, summary in _method_summaries(folder):
            name = f"{summary.method} ({where})" if where else summary.method
            groups.setdefault(name, []).append((folder, method_folder, summary))
    rows = []
    for name, members in groups.items():
        seeds = [s for _, _, summary in members for s in seed_summaries(summary)]
        summary = seeds[0] if len(seeds) == 1 else SeedsSummary.of(seeds)
        rows.append((name, members[0][0], members[0][1], summary))
    return rows


def load_runs(run_dirs: Iterable[Path]) -> list[MethodRun]:
    """Every method of every run folder, in the order given. A method name that occurs in several run folders
    gets the run folder's shortest distinguishing name appended, so rows and legend entries stay unique. A sweep
    folder stands for its cells' run folders (see ``_sweep_rows``)."""
    from ..sweep.record import is_sweep_folder

    run_dirs = [Path(d) for d in run_dirs]
    if not run_dirs:
        raise TICLError("no run folder given")
    # (row name, where it comes from, run folder, method folder, summary)
    loaded: list[tuple[str, Path, Path, Path, Summary]] = []
    for run_dir in run_dirs:
        if is_sweep_folder(run_dir):
            loaded += [(name, run_dir, run, folder, s) for name, run, folder, s in _sweep_rows(run_dir)]
            continue
        for folder, summary in _method_summaries(run_dir):
            run = _run_folder(run_dir, folder)
            loaded.append((summary.method, run, run, folder, summary))
    # where each method comes from: its run folder, plus the seed folder when one run's seeds are given apart
    pairs = [(name, origin) for name, origin, _, _, _ in loaded]
    where = [origin / folder.name if pairs.count((name, origin)) > 1 else origin
             for name, origin, _, folder, _ in loaded]
    by_name: dict[str, list[Path]] = {}
    for (name, _), w in zip(pairs, where):
        by_name.setdefault(name, []).append(w)
    runs = []
    for (label, _, run, folder, summary), w in zip(loaded, where):
        if len(by_name[label]) > 1:
            label = f"{label} ({_short_names(by_name[label])[w]})"
        runs.append(MethodRun(label, run, folder, summary, tuple(seed_summaries(summary))))
    labels = [r.label for r in runs]
    if len(set(labels)) != len(labels):
        dup = sorted({x for x in labels if labels.count(x) > 1})
        raise TICLError(f"the same method is given twice: {', '.join(dup)}")
    return runs


# ---------------------------------------------------------------------------------------- provenance
def source_version(summary: RunSummary) -> str:
    """The commit a seed ran from, ``+dirty`` appended when the tree had local changes."""
    commit = summary.environment.git_commit or "unknown"
    dirty = summary.environment.dirty or commit.endswith("+dirty")
    return commit.removesuffix("+dirty") + ("+dirty" if dirty else "")


def short_commit(version: str) -> str:
    """``0123456789ab...+dirty`` -> ``0123456+dirty`` (what is not a hash is kept as it is)."""
    base = version.removesuffix("+dirty")
    short = base[:7] if re.fullmatch(r"[0-9a-f]{8,40}", base) else base
    return short + version[len(base):]


def run_ci(run: MethodRun) -> dict[str, tuple[float, float]]:
    """The intervals of one method: every headline metric it measures (joint: average accuracy only)."""
    measured = all(trained_task_by_task(s) for s in run.seeds)
    metrics = CI_METRICS if measured else ("avg_accuracy",)
    ci = M.bootstrap_ci([s.correct for s in run.seeds], metrics)
    return {m: ci.get(m, (float("nan"), float("nan"))) for m in CI_METRICS}


# ------------------------------------------------------------------------------------------ data frames
def shared_params(summary: RunSummary) -> int:
    """Parameters shared by all tasks (the backbone): the model's total after the last task minus every
    task's own modules. Tells apart backbones of different sizes or input lengths."""
    per = summary.per_task
    return int(round(per[-1].total_params - sum(p.task_specific_params for p in per)))


def _number(value: float | None) -> float:
    return float("nan") if value is None else float(value)


def seed_frame(runs: Sequence[MethodRun]) -> pd.DataFrame:
    """One row per (method, seed): the headline numbers of that seed's summary.

    Per-task columns ``acc_T<j>`` are R[T-1][j], the accuracy on task j after the last task. Forgetting, BWT and
    plasticity are NaN where the summary has None (joint). Parameters are per task (mean over tasks), GFLOPs the
    mean over tasks and training time the sum over tasks. Storage is what a deployment keeps: every task's own
    parameters at ``BYTES_PER_PARAM`` plus the method's own cross-task state after the last task
    (``method_state_bytes``: EWC's Fisher and anchors, SI's importances, replay and A-GEM memories).
    """
    rows = []
    for run in runs:
        source, note = hyperparameter_source(run), hyperparameter_note(run)
        for s in run.seeds:
            per = s.per_task
            R = np.asarray(s.accuracy_matrix, dtype=float)
            task_specific = sum(p.task_specific_params for p in per)
            state_bytes = int(per[-1].method_state_bytes) if per else 0
            rows.append(
                {
                    "method": run.label,
                    "strategy": s.strategy,
                    "pet": s.pet or "-",
                    "mixer": s.mixer or "-",
                    "run": str(run.run_dir),
                    "preset": s.preset,
                    "seed": int(s.seed),
                    "n_tasks": R.shape[0],
                    "task_names": " | ".join(t.name for t in s.tasks),
                    "git_commit": source_version(s),
                    "dirty": source_version(s).endswith("+dirty"),
                    "hp_source": source,
                    "hp_note": note,
                    **{f"acc_T{j}": R[-1, j] for j in range(R.shape[0])},
                    "avg_accuracy": float(s.avg_accuracy),
                    "avg_forgetting": _number(s.avg_forgetting),
                    "plasticity": _number(s.plasticity),
                    "bwt": _number(s.bwt),
                    "trainable_params": float(np.mean([p.trainable_params for p in per])),
                    "shared_params": shared_params(s),
                    "task_specific_params": task_specific,
                    "method_state_mb": state_bytes / 1e6,
                    "storage_mb": (task_specific * BYTES_PER_PARAM + state_bytes) / 1e6,
                    "gflops_per_sample": float(np.mean([p.gflops_per_sample for p in per])),
                    "train_seconds": float(sum(p.train_seconds for p in per)),
                }
            )
    return pd.DataFrame(rows)


#: columns that identify a method (kept as they are when seeds are aggregated)
ID_COLUMNS = ("method", "strategy", "pet", "mixer", "run", "preset", "n_tasks", "hp_source", "hp_note")
#: numeric columns aggregated over seeds (per-task accuracy columns are added to these)
VALUE_COLUMNS = (
    "avg_accuracy", "avg_forgetting", "plasticity", "bwt", "trainable_params", "shared_params",
    "task_specific_params", "method_state_mb", "storage_mb", "gflops_per_sample", "train_seconds",
)


def task_columns(frame: pd.DataFrame) -> list[str]:
    return sorted((c for c in frame.columns if re.fullmatch(r"acc_T\d+", c)), key=lambda c: int(c[len("acc_T"):]))


def _distinct(values: pd.Series) -> str:
    return ", ".join(dict.fromkeys(values))


def method_frame(runs: Sequence[MethodRun]) -> pd.DataFrame:
    """One row per method: the mean over seeds at each value column, the sample std (ddof=1) at
    ``<column>_std`` (NaN for one seed), the 95 % bootstrap interval of the seed mean at ``<metric>_lo`` /
    ``<metric>_hi`` for the headline metrics (``bootstrap_ci``, over seeds and test clips; NaN where a metric
    is not measured), ``n_seeds``, the seeds' source versions (``git_commit``: full hashes, ``+dirty`` marked;
    ``dirty``) and ``pct_full_ft``: trainable parameters as a percentage of full fine-tuning (see
    ``full_finetuning_params``)."""
    seeds = seed_frame(runs)
    values = [*task_columns(seeds), *VALUE_COLUMNS]
    grouped = seeds.groupby("method", sort=False)
    frame = grouped[list(ID_COLUMNS)].first()
    frame["n_seeds"] = grouped.size()
    frame["seeds"] = grouped["seed"].agg(lambda s: json.dumps(list(s)))  # "[0, 1]": a string, also in csv
    frame["git_commit"] = grouped["git_commit"].agg(_distinct)
    frame["dirty"] = grouped["dirty"].any()
    # the task names if every seed has the same tasks (seeds with their own class order have their own)
    frame["task_names"] = grouped["task_names"].agg(lambda s: s.iloc[0] if s.nunique() == 1 else "")
    # which task sequence(s) the numbers are on: rows are only ranked against rows on the same ones
    frame["benchmark"] = grouped[["preset", "n_tasks", "task_names"]].apply(
        lambda g: " || ".join(t or f"{p} ({n} tasks)" for p, n, t in g.itertuples(index=False))
    )
    mean = grouped[values].mean()
    std = grouped[values].std(ddof=1).add_suffix("_std")
    ci = pd.DataFrame(
        {run.label: {f"{m}_{end}": bound for m, (lo, hi) in run_ci(run).items()
                     for end, bound in (("lo", lo), ("hi", hi))} for run in runs}
    ).T
    frame = pd.concat([frame, mean, std, ci.reindex(frame.index)], axis=1)
    frame["full_ft_params"], frame["full_ft_reference"] = full_finetuning_params(frame)
    frame["pct_full_ft"] = 100.0 * frame["trainable_params"] / frame["full_ft_params"]
    frame["pct_full_ft_std"] = 100.0 * frame["trainable_params_std"] / frame["full_ft_params"]
    frame["ranked"] = ~frame["strategy"].isin(UNRANKED_STRATEGIES) & frame["plasticity"].notna()
    return frame.reset_index(drop=True)


def full_finetuning_params(frame: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """The trainable parameters of full fine-tuning, per row: a ``finetune``-strategy row on the same backbone
    (same shared parameter count; from the same run folder if it has one), else the backbone's own parameter
    count from the summaries. Returns (params, where each came from: the finetune row's label or
    ``backbone``)."""
    finetune = frame[frame["strategy"] == "finetune"]
    params, source = [], []
    for _, row in frame.iterrows():
        same = finetune[finetune["shared_params"] == row["shared_params"]]
        same_run = same[same["run"] == row["run"]]
        ref = same_run if len(same_run) else same
        if len(ref):
            params.append(float(ref["trainable_params"].iloc[0]))
            source.append(str(ref["method"].iloc[0]))
        else:
            params.append(float(row["shared_params"]))
            source.append("backbone")
    return pd.Series(params, index=frame.index), pd.Series(source, index=frame.index)


def matrix_frame(runs: Sequence[MethodRun]) -> pd.DataFrame:
    """The accuracy matrices in long form: one row per (method, seed, after_task i, task j) with R[i][j],
    whether task j was trained by then (``trained``: j <= i; above the diagonal R is an untrained head, chance
    level) and whether the entry is a measurement of the method (``measured``: trained, and for a strategy
    trained once at the end, such as joint, only the last row)."""
    rows = []
    for run in runs:
        for s in run.seeds:
            T = len(s.accuracy_matrix)
            sequential = trained_task_by_task(s)
            for i, row in enumerate(s.accuracy_matrix):
                for j, acc in enumerate(row):
                    rows.append({"method": run.label, "seed": int(s.seed), "after_task": i, "task": j,
                                 "accuracy": float(acc), "trained": j <= i,
                                 "measured": j <= i and (sequential or i == T - 1)})
    return pd.DataFrame(rows)
