"""Run every method of a config through the task sequence and write its run folder: the task loop.

One method's folder holds ``config.yaml``, ``metrics.csv`` (every Avalanche metric value),
``accuracy_matrix.csv``, ``accuracy_vs_task.png``, ``checkpoints/task_NN.pt`` and, last, ``summary.json``.
A method whose ``summary.json`` exists is complete; otherwise ``resume`` restarts it after its last
checkpointed task. What a checkpoint holds and how it is restored is :mod:`.checkpoint`; the summary and the
output files are :mod:`.outputs`; the model and its initial weights come from :mod:`.model_setup`.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import random
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import metrics as M
from .checkpoint import Checkpoint, Checkpointer, RunProgress
from .config import MethodConfig, RunConfig, to_dict
from .errors import ConfigError
from .model_setup import build_model
from .outputs import SUMMARY, build_summary, method_hyperparameters, write_method_outputs
from .results import provenance, write_json, write_text, write_yaml
from .run_folder import check_resumed_config, check_search_source, merged_run_config, read_config
from .scenarios import TaskData, build_tasks, input_frames, make_benchmark, model_frames, task_frames
from .summary import RunSummary, SeedsSummary, TaskRecord, load_run_summary

__all__ = [
    "MethodResult", "SUMMARY", "build_summary", "method_hyperparameters", "resolve_device", "run", "run_method",
    "seed_everything", "tokens_per_sample", "untrained_head_evaluation",
]

log = logging.getLogger("ticl")


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


def _evaluator(loggers=()):
    """Avalanche's training-time metrics (loss and accuracy per epoch), kept in memory, written to metrics.csv and
    passed to ``loggers`` (``benchmark.loggers``: TensorBoard / W&B when the config's ``logging`` asks).

    Test and validation numbers never come from here: they come from :func:`strategies.plugins.evaluate`."""
    from avalanche.evaluation.metrics import accuracy_metrics, loss_metrics
    from avalanche.training.plugins import EvaluationPlugin

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No loggers specified")  # values are read back, not logged
        return EvaluationPlugin(accuracy_metrics(epoch=True), loss_metrics(epoch=True), loggers=list(loggers))


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


@dataclass
class _Loop:
    """What the task loop works with, built once per method."""

    cfg: RunConfig
    method: MethodConfig
    tasks: list[TaskData]
    net: torch.nn.Module
    strategy: object
    bm: object
    eval_stream: object
    device: torch.device
    plugins: dict


def resolved_method_config(cfg: RunConfig, method: MethodConfig) -> dict:
    """What one method of one seed ran under (its folder's ``config.yaml``, kept in each checkpoint)."""
    train = dataclasses.asdict(cfg.method_train(method))
    return to_dict(cfg) | {"methods": [dataclasses.asdict(method)], "train": train}


def _restore(checkpoints: Checkpointer, net, device, resolved: dict, name: str) -> tuple[Checkpoint | None, int]:
    """The latest checkpoint's model, progress and RNG states (its strategy state comes once the strategy exists)."""
    found = checkpoints.load_latest()
    if found is None:
        return None, 0
    path, saved = found
    check_resumed_config(saved.config, resolved, f"{name}: checkpoint {path}")
    saved.restore_model(net, device)
    saved.rng.restore()
    log.info("%s: resuming after task %d from %s", name, len(saved.tasks) - 1, path)
    return saved, len(saved.tasks)


def _make_strategy(cfg: RunConfig, method: MethodConfig, strategy_cls, net, bm, device, state: RunProgress,
                   progress: bool, loggers=()):
    """The strategy with the runner's plugins (validation first: see ``strategies.common``)."""
    from audio_ticl.strategies import make_optimizer_factory
    from audio_ticl.strategies.plugins import (
        BatchLimitPlugin,
        BestValidationPlugin,
        DataTimePlugin,
        FiniteLossPlugin,
        ProgressPlugin,
        SampleCountPlugin,
    )

    train_cfg = cfg.method_train(method)
    validation = BestValidationPlugin(
        [bm.valid_stream[i].dataset.eval() for i in range(len(bm.valid_stream))], train_cfg.eval_batch_size,
        train_cfg.select_on_val,
    )
    validation.history.update({int(k): v for k, v in state.val_history.items()})
    validation.loss_history.update({int(k): v for k, v in state.val_loss_history.items()})
    validation.best_epoch.update({int(k): v for k, v in state.best_epoch.items()})
    plugins = {"validation": validation, "data_time": DataTimePlugin(), "samples": SampleCountPlugin(),
               "evaluator": _evaluator(loggers)}
    strategy = strategy_cls(
        model=net,
        optimizer_factory=make_optimizer_factory(
            train_cfg.optimizer, train_cfg.lr, train_cfg.weight_decay, train_cfg.momentum
        ),
        train_mb_size=train_cfg.batch_size,
        train_epochs=train_cfg.epochs,
        eval_mb_size=train_cfg.eval_batch_size,
        device=device,
        plugins=[validation, plugins["data_time"], plugins["samples"], FiniteLossPlugin(method.name),
                 ProgressPlugin(method.name, validation, enabled=progress)]
        + ([BatchLimitPlugin(train_cfg.max_batches, cfg.seed)] if train_cfg.max_batches else []),
        evaluator=plugins["evaluator"],
        **method.strategy_options,
    )
    return strategy, plugins


def _train_task(loop: _Loop, i: int, state: RunProgress, prior_metric_rows: list, memory) -> None:
    """Train task ``i``, then evaluate every task (one cell each) and record what the task cost and chose."""
    from audio_ticl.strategies.plugins import evaluate

    tasks, strategy, net, device = loop.tasks, loop.strategy, loop.net, loop.device
    train_cfg = loop.cfg.method_train(loop.method)
    validation, data_time, samples = loop.plugins["validation"], loop.plugins["data_time"], loop.plugins["samples"]
    memory.start()
    # a dataset_sequence step may train its task with its own epochs / batch size (AI-CL: 5/128, 20/32, 15/12)
    strategy.train_epochs = tasks[i].train.get("epochs", train_cfg.epochs)
    strategy.train_mb_size = tasks[i].train.get("batch_size", train_cfg.batch_size)
    started = time.perf_counter()
    strategy.train(loop.bm.train_stream[i])
    train_seconds = time.perf_counter() - started
    # one evaluation per cell: trained tasks through the model, later tasks through a discarded probe
    row, correct, eval_seconds, n_eval = [], [], 0.0, 0
    for j in range(len(tasks)):
        dataset = loop.eval_stream[j].dataset.eval()
        if j <= i:
            result = evaluate(strategy.model, dataset, train_cfg.eval_batch_size, device)
            eval_seconds += result.seconds
            n_eval += result.n
        else:
            result = untrained_head_evaluation(
                net, tasks[j], dataset, loop.cfg.seed, train_cfg.eval_batch_size, device
            )
        row.append(result.accuracy)
        correct.append(result.correct_string())
    state.R.append(row)
    state.correct.append(correct)
    sample = loop.eval_stream[i].dataset.eval()[0][0][None].to(device)
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
    state.metric_rows = prior_metric_rows + _metric_rows(loop.plugins["evaluator"])
    state.val_history = {str(k): v for k, v in validation.history.items()}
    state.val_loss_history = {str(k): v for k, v in validation.loss_history.items()}
    state.best_epoch = {str(k): v for k, v in validation.best_epoch.items()}


def run_method(
    cfg: RunConfig,
    method: MethodConfig,
    tasks: list[TaskData],
    folder: Path,
    progress: bool = True,
    resume: bool = False,
    data_report: dict | None = None,
    eval_split: str = "test",
    hyperparameters: dict | None = None,
) -> MethodResult:
    """Train ``method`` through ``tasks`` and evaluate every task's ``eval_split`` after each one.

    ``eval_split`` is ``test`` for a reported run and ``val`` for a trial of a hyperparameter search, whose tasks
    carry no test split at all. ``progress``: tqdm bars (the CLI asks only on a terminal), else log lines.
    """
    from audio_ticl.strategies import get_strategy
    from audio_ticl.strategies.state import RestoreContext

    from .loggers import method_loggers

    folder.mkdir(parents=True, exist_ok=True)
    train_cfg = cfg.method_train(method)
    device = resolve_device(train_cfg.device)
    if train_cfg.threads:
        torch.set_num_threads(train_cfg.threads)
    strategy_cls = get_strategy(method.strategy)
    resolved = resolved_method_config(cfg, method)
    write_yaml(folder / "config.yaml", resolved)
    source = provenance()
    if source.dirty:
        write_text(folder / "source.diff", source.diff)

    # the order of every random draw below is part of the results: seed, model, benchmark, (resume), strategy
    # (the loggers draw none: benchmark.loggers runs them on a copy of the RNG states)
    with method_loggers(cfg, folder, resolved) as loggers:
        seed_everything(cfg.seed)
        if getattr(strategy_cls, "mixes_task_inputs", False):
            input_frames(tasks)  # one batch holds several tasks: they must share one input length (else an error)
        net = build_model(cfg, method, model_frames(tasks), device, progress, task_frames(tasks))
        bm = make_benchmark(tasks)
        eval_stream = bm.streams["test" if eval_split == "test" else "valid"]

        checkpoints = Checkpointer(folder)
        saved, start_task = _restore(checkpoints, net, device, resolved, method.name) if resume else (None, 0)
        state = saved.progress if saved is not None else RunProgress()
        strategy, plugins = _make_strategy(cfg, method, strategy_cls, net, bm, device, state, progress,
                                           loggers.evaluator_loggers)
        if saved is not None:
            strategy.load_cl_state(saved.strategy, RestoreContext(
                device=device, trained_tasks=tuple(t for t, _ in saved.tasks),
                train_datasets={tasks[k].id: bm.train_stream[k].dataset for k in range(start_task)},
            ))
        loop = _Loop(cfg, method, tasks, net, strategy, bm, eval_stream, device, plugins)
        memory = M.PeakMemory(device)
        prior_metric_rows = list(state.metric_rows)  # from before a resume; the evaluator only knows this process
        for i in range(start_task, len(tasks)):
            _train_task(loop, i, state, prior_metric_rows, memory)
            loggers.after_task(i, state.R[i], strategy.clock.train_iterations, eval_split)
            checkpoints.save(i, Checkpoint.capture(
                net, [(t.id, len(t.classes)) for t in tasks[: i + 1]], state, strategy.cl_state(), resolved
            ))
    summary = build_summary(cfg, method, strategy_cls, tasks, state, device, source, data_report, hyperparameters)
    write_method_outputs(folder, method, tasks, state, summary)
    return MethodResult(method, folder, summary)


# ------------------------------------------------------------------------------------------------ the run
def _chosen_text(cfg: RunConfig, hyper: dict[str, dict], out_dir: Path) -> str:
    """What ``ticl run --search-only`` prints: each method's chosen values and validation score."""
    lines = [f"searches of {cfg.name} in {out_dir}/tuning:"]
    for method in cfg.methods:
        record = hyper.get(method.name)
        if record is None:
            lines.append(f"  {method.name}: no search (its config values hold)")
        else:
            search = record["search"]
            lines.append(f"  {method.name}: {search['chosen']} (validation score {search['chosen_score']:.4f} over "
                         f"{search['n_trials']} trials)")
    return "\n".join(lines)


def _searches_from(cfg: RunConfig, folder: Path) -> dict[str, dict]:
    """The finished searches in run ``folder`` for ``cfg``'s searched methods, after checking that the folder ran
    this config (seeds aside): read once, before the run writes anything."""
    from . import tuning

    check_search_source(folder, to_dict(cfg))
    records = {m.name: tuning.read_search(folder, m) for m in cfg.methods if m.search}
    return {name: record | {"searched_in": str(folder.resolve())} for name, record in records.items()}


def _tuned_methods(
    cfg: RunConfig, out_dir: Path, seed: int, progress: bool, resume: bool, searched: dict[str, dict] | None = None
) -> tuple[list[MethodConfig], dict[str, dict]]:
    """The methods with their searched values (``benchmark.tuning``), searched on validation data of tasks built
    without their test splits; methods without a search space, or all of them without a tuning protocol, keep
    their config values. With ``searched`` (``_searches_from``) the searches are not run but applied from those
    records, each copied to ``out_dir/tuning/<method>/``."""
    from . import tuning

    if not tuning.needs_search(cfg):
        return list(cfg.methods), {}
    if searched is not None:
        methods, hyper = [], {}
        for method in cfg.methods:
            record = searched.get(method.name)
            if record is None:
                methods.append(method)
                continue
            write_json(out_dir / "tuning" / method.name / tuning.SEARCH_FILE, record)
            log.info("%s: %s, searched in %s", method.name, record["chosen"], record["searched_in"])
            chosen, hyper[method.name] = tuning.apply_search(cfg, method, record)
            methods.append(chosen)
        return methods, hyper
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
    seeds: list[int] | None = None,
    add_methods: bool = False,
    search_only: bool = False,
    search_from: Path | None = None,
) -> tuple[list[MethodResult], str]:
    """Run every method of ``cfg`` under each seed; write and return the comparison table.

    One seed: ``out_dir/<method>/``. Several: ``out_dir/<method>/seed<N>/`` per seed plus
    ``out_dir/<method>/summary.json``, a :class:`SeedsSummary` of every seed's summary. With a tuning protocol the
    search runs first (``out_dir/tuning/``, on validation data only) and its chosen values hold for every seed.
    An ``out_dir`` that holds a run already must hold one of the same config (``benchmark.run_folder``); with
    ``add_methods`` it may gain methods. ``search_only`` stops after the searches (the text returned lists the
    chosen values); ``search_from`` applies the searches of another run folder instead of running them.
    """

    from .preflight import preflight

    preflight(cfg)  # every method built once: a config error before any feature, upstream model or training
    searched = _searches_from(cfg, Path(search_from)) if search_from is not None else None
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = list(seeds) if seeds else [cfg.seed]
    multi = len(seeds) > 1
    write_yaml(out_dir / "config.yaml",
               merged_run_config(out_dir, to_dict(cfg) | ({"seeds": seeds} if multi else {}), add_methods))
    source = provenance()
    if source.dirty:
        write_text(out_dir / "source.diff", source.diff)
    started = time.perf_counter()
    methods, hyper = _tuned_methods(cfg, out_dir, seeds[0], progress, resume, searched)
    if search_only:
        log.info("total %.1f s", time.perf_counter() - started)
        return [], _chosen_text(cfg, hyper, out_dir)
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
                check_resumed_config(read_config(folder / "config.yaml"), resolved_method_config(seed_cfg, method),
                                     f"{method.name}: finished run {folder}")
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
