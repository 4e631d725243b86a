"""Run every method of a config through the task sequence and write its run folder.

One method's folder holds ``config.yaml``, ``metrics.csv`` (every Avalanche metric value),
``accuracy_matrix.csv``, ``accuracy_vs_task.png``, ``checkpoints/task_NN.pt`` and, last, ``summary.json``.
A method whose ``summary.json`` exists is complete; otherwise ``resume`` restarts it after its last
checkpointed task.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import random
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd
import torch

from . import metrics as M
from .config import MethodConfig, RunConfig, to_dict
from .errors import ConfigError
from .report.plots import plot_accuracy_vs_task
from .results import Provenance, provenance, save_torch, write_csv, write_json, write_text, write_yaml
from .scenarios import (
    TaskData, build_tasks, default_cache_dir, input_frames, make_benchmark, model_frames, task_frames,
)
from .model_setup import build_model
from .summary import Environment, RunSummary, SeedsSummary, TaskInfo, TaskRecord, load_run_summary

log = logging.getLogger("ticl")

SUMMARY = "summary.json"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"config key 'train.device' is '{name}', but CUDA is not available on this machine")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# --------------------------------------------------------------------------------------------- the method
@dataclass
class MethodResult:
    method: MethodConfig
    folder: Path
    summary: RunSummary


@dataclass
class _State:
    """What a checkpoint carries so that a run can restart after its last finished task."""

    R: list = field(default_factory=list)
    correct: list = field(default_factory=list)
    per_task: list = field(default_factory=list)
    metric_rows: list = field(default_factory=list)
    val_history: dict = field(default_factory=dict)
    val_loss_history: dict = field(default_factory=dict)
    best_epoch: dict = field(default_factory=dict)


def _evaluator():
    """Avalanche's training-time metrics (loss and accuracy per epoch), kept in memory, written to metrics.csv.

    Test and validation numbers never come from here: they come from :func:`strategies.plugins.evaluate`."""
    from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics
    from avalanche.training.plugins import EvaluationPlugin

    return EvaluationPlugin(accuracy_metrics(epoch=True), loss_metrics(epoch=True), loggers=[])


def _metric_rows(evaluator) -> list[dict]:
    rows = []
    for name, (steps, values) in evaluator.get_all_metrics().items():
        for step, value in zip(steps, values):
            if isinstance(value, (int, float)):
                rows.append({"metric": name, "step": int(step), "value": float(value)})
    return rows


def untrained_head_evaluation(net, task: TaskData, dataset, seed: int, batch: int, device):
    """R[i][j] for a task j not yet trained: a copy of the model with a fresh (seeded) head and fresh PET
    modules for j. It never touches the real model nor the global RNG, so evaluating ahead cannot change later
    results."""
    from audio_ticl.strategies.plugins import evaluate

    probe = copy.deepcopy(net)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed * 7919 + task.id)
        probe.add_task(task.id, len(task.classes))
    probe.to(device)
    return evaluate(probe, dataset, batch, device)


def tokens_per_sample(net, frames: int) -> int:
    """Encoder tokens of one clip of ``frames`` frames (prefix tokens included), through the patch geometry."""
    f, t = net.backbone.grid_for(int(frames))
    return int(net.backbone.num_prefix_tokens + f * t)


def run_method(
    cfg: RunConfig,
    method: MethodConfig,
    tasks: list[TaskData],
    folder: Path,
    progress: bool = True,
    resume: bool = False,
    data_report: Optional[dict] = None,
    eval_split: str = "test",
    hyperparameters: Optional[dict] = None,
) -> MethodResult:
    """Train ``method`` through ``tasks`` and evaluate every task's ``eval_split`` after each one.

    ``eval_split`` is ``test`` for a reported run and ``val`` for a trial of a hyperparameter search, whose tasks
    carry no test split at all.
    """
    from audio_ticl.strategies import get_strategy, make_optimizer_factory
    from audio_ticl.strategies.plugins import (
        BatchLimitPlugin,
        BestValidationPlugin,
        DataTimePlugin,
        ProgressPlugin,
        SampleCountPlugin,
        evaluate,
    )

    folder.mkdir(parents=True, exist_ok=True)
    train_cfg = cfg.method_train(method)
    device = resolve_device(train_cfg.device)
    if train_cfg.threads > 0:
        torch.set_num_threads(train_cfg.threads)
    strategy_cls = get_strategy(method.strategy)
    resolved = to_dict(cfg) | {"methods": [dataclasses.asdict(method)], "train": dataclasses.asdict(train_cfg)}
    write_yaml(folder / "config.yaml", resolved)
    source = provenance()
    if source.dirty:
        write_text(folder / "source.diff", source.diff)

    seed_everything(cfg.seed)
    if getattr(strategy_cls, "mixes_task_inputs", False):
        input_frames(tasks)  # one batch holds several tasks: they must share one input length (a clear error if not)
    net = build_model(cfg, method, model_frames(tasks), device, progress, task_frames(tasks))
    bm = make_benchmark(tasks)
    eval_stream = bm.streams["test" if eval_split == "test" else "valid"]
    T = len(tasks)

    state = _State()
    start_task = 0
    strategy_state: Optional[dict] = None
    ckpt_dir = folder / "checkpoints"
    if resume and ckpt_dir.is_dir():
        done = sorted(ckpt_dir.glob("task_*.pt"))
        if done:
            ckpt = torch.load(done[-1], map_location="cpu", weights_only=False)
            for task_id, n_classes in ckpt["tasks"]:
                net.add_task(task_id, n_classes)
            net.load_state_dict(ckpt["net"])
            net.to(device)
            state = _State(**ckpt["state"])
            torch.set_rng_state(ckpt["rng"])
            random.setstate(ckpt["py_rng"])
            np.random.set_state(ckpt["np_rng"])
            start_task = len(ckpt["tasks"])
            strategy_state = ckpt.get("strategy")
            log.info("%s: resuming after task %d from %s", method.name, start_task - 1, done[-1])

    validation = BestValidationPlugin(
        [bm.valid_stream[i].dataset.eval() for i in range(T)], train_cfg.eval_batch_size, train_cfg.select_on_val
    )
    validation.history.update({int(k): v for k, v in state.val_history.items()})
    validation.loss_history.update({int(k): v for k, v in state.val_loss_history.items()})
    validation.best_epoch.update({int(k): v for k, v in state.best_epoch.items()})
    data_time = DataTimePlugin()
    samples = SampleCountPlugin()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No loggers specified")  # values are read back, not logged
        evaluator = _evaluator()
    strategy = strategy_cls(
        model=net,
        optimizer_factory=make_optimizer_factory(
            train_cfg.optimizer, train_cfg.lr, train_cfg.weight_decay, train_cfg.momentum
        ),
        train_mb_size=train_cfg.batch_size,
        train_epochs=train_cfg.epochs,
        eval_mb_size=train_cfg.eval_batch_size,
        device=device,
        plugins=[validation, data_time, samples, ProgressPlugin(method.name, validation, enabled=progress)]
        + ([BatchLimitPlugin(train_cfg.max_batches, cfg.seed)] if train_cfg.max_batches else []),
        evaluator=evaluator,
        **method.strategy_options,
    )

    if strategy_state is not None:
        strategy.load_cl_state(strategy_state, range(start_task))
    memory = M.PeakMemory(device)
    prior_metric_rows = list(state.metric_rows)  # from before a resume; the evaluator only knows this process
    for i in range(start_task, T):
        memory.start()
        # a dataset_sequence step may train its task with its own epochs / batch size (AI-CL: 5/128, 20/32, 15/12)
        strategy.train_epochs = tasks[i].train.get("epochs", train_cfg.epochs)
        strategy.train_mb_size = tasks[i].train.get("batch_size", train_cfg.batch_size)
        started = time.perf_counter()
        strategy.train(bm.train_stream[i])
        train_seconds = time.perf_counter() - started
        # one evaluation per cell: trained tasks through the model, later tasks through a discarded probe
        row, correct, eval_seconds, n_eval = [], [], 0.0, 0
        for j in range(T):
            dataset = eval_stream[j].dataset.eval()
            if j <= i:
                result = evaluate(strategy.model, dataset, train_cfg.eval_batch_size, device)
                eval_seconds += result.seconds
                n_eval += result.n
            else:
                result = untrained_head_evaluation(
                    net, tasks[j], dataset, cfg.seed, train_cfg.eval_batch_size, device
                )
            row.append(result.accuracy)
            correct.append(result.correct_string())
        state.R.append(row)
        state.correct.append(correct)
        sample = eval_stream[i].dataset.eval()[0][0][None].to(device)
        flops = M.count_flops(net, sample, torch.tensor([i], device=device))
        trainable = sum(p.numel() for group in strategy.optimizer.param_groups for p in group["params"])
        state.per_task.append(
            dataclasses.asdict(
                TaskRecord(
                    task=i,
                    trainable_params=int(trainable),
                    task_specific_params=int(sum(p.numel() for p in net.task_parameters(i))),
                    total_params=int(sum(p.numel() for p in net.parameters())),
                    method_state_bytes=int(strategy.method_state_bytes()),
                    gflops_per_sample=flops / 1e9,
                    tokens=tokens_per_sample(net, tasks[i].splits["train"].features.shape[1]),
                    train_seconds=train_seconds,
                    data_seconds=data_time.seconds.get(i, 0.0),
                    peak_memory_mb=memory.peak_mb(),
                    peak_memory_kind=memory.kind,
                    eval_samples_per_second=n_eval / eval_seconds if eval_seconds > 0 else 0.0,
                    best_epoch=int(validation.best_epoch.get(i, -1)),
                    val_accuracy=list(validation.history.get(i, [])),
                    val_loss=list(validation.loss_history.get(i, [])),
                    samples_per_epoch=list(samples.per_epoch.get(i, [])),
                )
            )
        )
        state.metric_rows = prior_metric_rows + _metric_rows(evaluator)
        state.val_history = {str(k): v for k, v in validation.history.items()}
        state.val_loss_history = {str(k): v for k, v in validation.loss_history.items()}
        state.best_epoch = {str(k): v for k, v in validation.best_epoch.items()}
        save_torch(
            ckpt_dir / f"task_{i:02d}.pt",
            {
                "net": net.state_dict(),
                "tasks": [(t.id, len(t.classes)) for t in tasks[: i + 1]],
                "state": dataclasses.asdict(state),
                "strategy": strategy.cl_state(),
                "rng": torch.get_rng_state(),
                "py_rng": random.getstate(),  # A-GEM and replay sample their memories with these two
                "np_rng": np.random.get_state(),
            },
        )
    summary = build_summary(cfg, method, strategy_cls, tasks, state, device, source, data_report, hyperparameters)
    _write_outputs(folder, method, tasks, state, summary)
    return MethodResult(method, folder, summary)


def build_summary(
    cfg, method, strategy_cls, tasks, state: _State, device, source: "Provenance", data_report, hyperparameters
) -> RunSummary:
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


def _write_outputs(folder: Path, method: MethodConfig, tasks, state: _State, summary: RunSummary) -> None:
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


# ------------------------------------------------------------------------------------------------ the run
def _tuned_methods(
    cfg: RunConfig, out_dir: Path, seed: int, progress: bool, resume: bool
) -> tuple[list[MethodConfig], dict[str, dict]]:
    """The methods with their searched values (``benchmark.tuning``), searched on validation data of tasks built
    without their test splits; methods without a search space, or all of them without a tuning protocol, keep
    their config values."""
    from . import tuning

    if not tuning.needs_search(cfg):
        return list(cfg.methods), {}
    search_cfg = dataclasses.replace(cfg, seed=cfg.tuning.seed if cfg.tuning.seed is not None else seed)
    tasks, report = build_tasks(search_cfg, progress=progress, splits=("train", "val"))
    methods, hyper = [], {}
    for method in cfg.methods:
        if not method.search:
            methods.append(method)
            continue
        chosen, record = tuning.search_method(
            search_cfg, method, out_dir, tasks, dataclasses.asdict(report), progress, resume
        )
        methods.append(chosen)
        hyper[method.name] = record
    return methods, hyper


def run(
    cfg: RunConfig,
    out_dir: Path,
    progress: bool = True,
    resume: bool = False,
    seeds: Optional[list[int]] = None,
) -> tuple[list[MethodResult], str]:
    """Run every method of ``cfg`` under each seed; write and return the comparison table.

    One seed: ``out_dir/<method>/``. Several: ``out_dir/<method>/seed<N>/`` per seed plus
    ``out_dir/<method>/summary.json``, a :class:`SeedsSummary` of every seed's summary. With a tuning protocol the
    search runs first (``out_dir/tuning/``, on validation data only) and its chosen values hold for every seed.
    """

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = list(seeds) if seeds else [cfg.seed]
    multi = len(seeds) > 1
    write_yaml(out_dir / "config.yaml", to_dict(cfg) | ({"seeds": seeds} if multi else {}))
    source = provenance()
    if source.dirty:
        write_text(out_dir / "source.diff", source.diff)
    started = time.perf_counter()
    methods, hyper = _tuned_methods(cfg, out_dir, seeds[0], progress, resume)
    per_method: dict[str, list[MethodResult]] = {m.name: [] for m in cfg.methods}
    for seed in seeds:
        seed_cfg = dataclasses.replace(cfg, seed=seed)
        tasks, report = build_tasks(seed_cfg, progress=progress)
        data_report = dataclasses.asdict(report)
        log.info(
            "seed %d features: %d clips, %d from cache, %d computed, %.1f s",
            seed, report.clips, report.cache_hits, report.cache_misses, report.seconds,
        )
        for method in methods:
            folder = out_dir / method.name / (f"seed{seed}" if multi else "")
            if resume and (folder / SUMMARY).is_file():
                log.info("%s seed %d: already complete, skipped", method.name, seed)
                result = MethodResult(method, folder, load_run_summary(folder / SUMMARY))
            else:
                result = run_method(
                    seed_cfg, method, tasks, folder, progress, resume, data_report,
                    hyperparameters=hyper.get(method.name),
                )
            per_method[method.name].append(result)
    results = []
    for method in cfg.methods:
        runs = per_method[method.name]
        if multi:
            summary = SeedsSummary.of([r.summary for r in runs])
            write_json(out_dir / method.name / SUMMARY, summary.to_dict())
            results.append(MethodResult(method, out_dir / method.name, summary))
        else:
            results.append(runs[0])
    from .report.table import build_table

    seeds_text = ", ".join(map(str, seeds))
    header = f"# {cfg.name} (seed{'s' if multi else ''} {seeds_text})\n\n"
    if cfg.description:
        header += cfg.description.strip() + "\n\n"
    table = build_table([out_dir], "md")
    write_text(out_dir / "table.md", header + table)
    log.info("total %.1f s", time.perf_counter() - started)
    return results, table
