"""A finished method's outputs: its :class:`~.summary.RunSummary` and the files of its folder.

``accuracy_matrix.csv``, ``metrics.csv`` (every Avalanche metric value), ``accuracy_vs_task.png`` and, last,
``summary.json``: a method folder with ``summary.json`` is complete (``runner.run`` skips it on ``--resume``).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from . import metrics as M
from .checkpoint import RunProgress
from .config import MethodConfig, RunConfig
from .report.plots import plot_accuracy_vs_task
from .results import Provenance, write_csv, write_json
from .summary import Environment, RunSummary, TaskInfo, TaskRecord

__all__ = ["SUMMARY", "build_summary", "method_hyperparameters", "write_method_outputs"]

SUMMARY = "summary.json"


def build_summary(
    cfg: RunConfig, method: MethodConfig, strategy_cls: type, tasks, state: RunProgress, device,
    source: Provenance, data_report: dict | None, hyperparameters: dict | None,
) -> RunSummary:
    """The method's summary from the run's progress (``state``) and what it ran on."""
    R = state.R
    sequential = getattr(strategy_cls, "trained_task_by_task", True)
    return RunSummary(
        preset=cfg.name,
        method=method.name,
        strategy=method.strategy,
        mixer=method.mixer,
        pet=method.pet,
        seed=cfg.seed,
        tasks=[
            TaskInfo(
                id=t.id, name=t.name, source=t.source, classes=list(t.classes),
                n_train=len(t.splits["train"]), n_val=len(t.splits["val"]),
                n_test=len(t.splits["test"]) if "test" in t.splits else 0,
                input_frames=int(t.splits["train"].features.shape[1]),
            )
            for t in tasks
        ],
        accuracy_matrix=R,
        correct=state.correct,
        avg_accuracy=M.average_accuracy(R),
        avg_accuracy_curve=M.average_accuracy_curve(R),
        plasticity=M.plasticity(R) if sequential else None,
        avg_forgetting=M.average_forgetting(R) if sequential else None,
        forgetting_per_task=M.forgetting_per_task(R) if sequential else None,
        bwt=M.backward_transfer(R) if sequential else None,
        per_task=[TaskRecord(**p) for p in state.per_task],
        environment=Environment(
            torch=torch.__version__, device=str(device), threads=torch.get_num_threads(),
            git_commit=source.commit, dirty=source.dirty,
        ),
        hyperparameters=hyperparameters or method_hyperparameters(cfg, method, "config"),
        data=data_report or {},
    )


def method_hyperparameters(cfg: RunConfig, method: MethodConfig, source: str) -> dict:
    """The values a method trained with, and where they came from (``config`` or ``search``)."""
    train = cfg.method_train(method)
    return {
        "source": source,
        "train": {k: getattr(train, k) for k in ("lr", "batch_size", "epochs", "optimizer", "weight_decay")},
        "strategy_options": dict(method.strategy_options),
        "pet_options": dict(method.pet_options),
    }


def write_method_outputs(folder: Path, method: MethodConfig, tasks, state: RunProgress, summary: RunSummary) -> None:
    """The method folder's files, ``summary.json`` last (it marks the method complete)."""
    names = [t.name for t in tasks]
    matrix = pd.DataFrame(state.R, columns=[f"task_{j}" for j in range(len(tasks))])
    matrix.insert(0, "after_task", range(len(tasks)))
    write_csv(folder / "accuracy_matrix.csv", matrix)
    write_csv(folder / "metrics.csv", pd.DataFrame(state.metric_rows, columns=["metric", "step", "value"]))
    plot_accuracy_vs_task(
        state.R, names, f"{summary.preset}: {method.name}", folder / "accuracy_vs_task.png",
        trained_task_by_task=summary.plasticity is not None,
    )
    write_json(folder / SUMMARY, summary.to_dict())
