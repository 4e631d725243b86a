"""The one run-summary schema: typed dataclasses written as ``summary.json`` and read back by tables and plots.

A single-seed method folder holds a :class:`RunSummary`. A multi-seed method folder holds a
:class:`SeedsSummary` (the method's identity, the seeds and every seed's :class:`RunSummary`) next to its
``seed<N>/`` folders. Means, stds and confidence intervals are not stored: ``benchmark.report.collect`` computes
them from the per-seed summaries with pandas, for ``table.md`` and ``ticl table`` alike, so there is one
aggregation path.

The accuracy matrix ``R[i][j]`` (accuracy on task j's test split after training task i) and the per-clip outcomes
behind it (``correct[i][j]``: a string of '0'/'1', one character per test clip in the split's order) come from
one evaluation (``strategies.plugins.evaluate``); the per-clip outcomes make bootstrap intervals over test clips
possible (``benchmark.metrics.bootstrap_ci``).
"""
from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from .errors import TICLError

#: bump when a field changes meaning; readers refuse summaries of another version
SCHEMA_VERSION = 2


@dataclass
class TaskInfo:
    """One task of the sequence, as trained."""

    id: int
    name: str
    source: str
    classes: list[str]
    n_train: int
    n_val: int
    n_test: int
    #: input frames of this task's clips (a dataset_sequence keeps each dataset's own length)
    input_frames: int = 0


@dataclass
class TaskRecord:
    """What training task ``task`` cost and chose."""

    task: int
    #: parameters the optimizer updated on this task
    trainable_params: int
    #: parameters owned by this task (its head and PET modules)
    task_specific_params: int
    total_params: int
    #: bytes of the strategy's own cross-task state after this task (EWC's Fisher and anchors, SI's importances,
    #: replay and A-GEM memories), see ``TICLStrategy.method_state_bytes``
    method_state_bytes: int
    gflops_per_sample: float
    #: tokens one sample of this task puts through the encoder (prefix tokens included)
    tokens: int
    train_seconds: float
    data_seconds: float
    #: peak memory while training and evaluating this task, in MiB; ``peak_memory_kind`` says what was read
    peak_memory_mb: float
    peak_memory_kind: str
    eval_samples_per_second: float
    #: the epoch kept by validation-based selection (index into ``val_accuracy``), -1 if nothing trained
    best_epoch: int
    val_accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    #: training samples drawn in each epoch (a cumulative strategy draws every sample of the union once)
    samples_per_epoch: list[int] = field(default_factory=list)


@dataclass
class Environment:
    torch: str
    device: str
    threads: int
    #: the source tree's commit, with ``+dirty`` when the tree had local changes (then ``source.diff`` holds them)
    git_commit: str
    dirty: bool


@dataclass
class RunSummary:
    """One method under one seed, after the whole task sequence."""

    preset: str
    method: str
    strategy: str
    mixer: str
    pet: str | None
    seed: int
    tasks: list[TaskInfo]
    accuracy_matrix: list[list[float]]
    correct: list[list[str]]
    avg_accuracy: float
    avg_accuracy_curve: list[float]
    #: mean accuracy on each task right after training it, mean_j R[j][j]; None where that is not a measurement
    #: (joint trains once at the end)
    plasticity: float | None
    #: None (shown as "-") for a strategy that is not trained task by task (joint)
    avg_forgetting: float | None
    forgetting_per_task: list[float] | None
    bwt: float | None
    per_task: list[TaskRecord]
    environment: Environment
    #: the hyperparameters this run used and where they came from (the validation search, or the config)
    hyperparameters: dict = field(default_factory=dict)
    data: dict = field(default_factory=dict)
    accuracy_matrix_note: str = "R[i][j] for j > i uses an untrained (seeded, discarded) head: chance level"
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "summary") -> RunSummary:
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise TICLError(
                f"{where}: summary schema version {version!r}, this suite reads version {SCHEMA_VERSION}; "
                "rerun it with this version (`ticl run ... --resume` keeps finished tasks only for the same version)"
            )
        try:
            values = dict(data)
            values["tasks"] = [TaskInfo(**t) for t in data["tasks"]]
            values["per_task"] = [TaskRecord(**p) for p in data["per_task"]]
            values["environment"] = Environment(**data["environment"])
            summary = cls(**values)
        except (KeyError, TypeError) as exc:
            raise TICLError(f"{where}: not a run summary of this suite ({exc})") from None
        check_fields(summary, where)
        summary.check_shapes(where)
        return summary

    def check_shapes(self, where: str) -> None:
        """The accuracy matrix and the per-clip outcomes (if kept): a row per trained task, a column per task."""
        n = len(self.tasks)
        if not self.accuracy_matrix or len(self.accuracy_matrix) > n:
            raise TICLError(f"{where}: key 'accuracy_matrix' has {len(self.accuracy_matrix)} rows for {n} tasks")
        for i, row in enumerate(self.accuracy_matrix):
            if len(row) != n:
                raise TICLError(f"{where}: key 'accuracy_matrix' row {i} has {len(row)} values, expected {n}")
        if self.correct and [len(row) for row in self.correct] != [len(row) for row in self.accuracy_matrix]:
            raise TICLError(f"{where}: key 'correct' does not have the accuracy matrix's shape (it may be empty: "
                            "no per-clip outcomes)")


@dataclass
class SeedsSummary:
    """One method over several seeds: its identity and every seed's summary (aggregates are computed on read)."""

    preset: str
    method: str
    strategy: str
    mixer: str
    pet: str | None
    seeds: list[int]
    per_seed: list[RunSummary]
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def of(cls, summaries: list[RunSummary]) -> SeedsSummary:
        first = summaries[0]
        return cls(first.preset, first.method, first.strategy, first.mixer, first.pet,
                   [s.seed for s in summaries], list(summaries))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "summary") -> SeedsSummary:
        if data.get("schema_version") != SCHEMA_VERSION:
            raise TICLError(
                f"{where}: summary schema version {data.get('schema_version')!r}, this suite reads version "
                f"{SCHEMA_VERSION}; rerun it with this version"
            )
        values = dict(data)
        values["per_seed"] = [RunSummary.from_dict(s, f"{where} (seed {s.get('seed')})") for s in data["per_seed"]]
        try:
            return cls(**values)
        except TypeError as exc:
            raise TICLError(f"{where}: not a multi-seed summary of this suite ({exc})") from None


def _matches(value: Any, hint: Any) -> str | None:
    """Where ``value`` fails the type ``hint`` ('' for the value itself, '[i]' / '.key' inside it), or None."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return None
    if origin in (Union, types.UnionType):
        failures = [_matches(value, arg) for arg in args]
        return None if any(f is None for f in failures) else ""
    if hint is type(None):
        return None if value is None else ""
    if dataclasses.is_dataclass(hint):
        return None if isinstance(value, hint) else ""
    if origin is list:
        if not isinstance(value, list):
            return ""
        for i, item in enumerate(value):
            inner = _matches(item, args[0]) if args else None
            if inner is not None:
                return f"[{i}]{inner}"
        return None
    if origin is dict or hint is dict:
        return None if isinstance(value, dict) else ""
    if hint is float:
        return None if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
    if hint is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else ""
    return None if isinstance(value, hint) else ""


def check_fields(obj: Any, where: str) -> None:
    """Every field of the dataclass ``obj`` (and of the dataclasses inside it) has its declared type; the error
    names the file and the key, so a hand-edited or damaged summary fails here, not deep inside pandas."""
    hints = typing.get_type_hints(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            check_fields(value, f"{where}: {f.name}")
            continue
        if isinstance(value, list) and value and dataclasses.is_dataclass(value[0]):
            for i, item in enumerate(value):
                check_fields(item, f"{where}: {f.name}[{i}]")
            continue
        failed = _matches(value, hints[f.name])
        if failed is not None:
            hint = hints[f.name]
            raise TICLError(f"{where}: key '{f.name}{failed}' should be {getattr(hint, '__name__', hint)}, got "
                            f"{value!r:.60}")


def read_json_object(path: Path) -> dict:
    """A JSON file holding an object, or a TICLError naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TICLError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise TICLError(f"{path}: expected a JSON object")
    return data


def load_run_summary(path: Path) -> RunSummary:
    """Read a single-seed ``summary.json`` (a run folder of one seed, or a search trial)."""
    return RunSummary.from_dict(read_json_object(path), str(path))


def load_summary(path: Path) -> RunSummary | SeedsSummary:
    """Read a ``summary.json`` of either kind."""
    path = Path(path)
    data = read_json_object(path)
    if "per_seed" in data:
        return SeedsSummary.from_dict(data, str(path))
    return RunSummary.from_dict(data, str(path))


def seed_summaries(summary: RunSummary | SeedsSummary) -> list[RunSummary]:
    return list(summary.per_seed) if isinstance(summary, SeedsSummary) else [summary]


def as_json(summary: Any) -> dict:
    """Plain data of a summary dataclass."""
    return summary.to_dict()
