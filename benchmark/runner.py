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
from .results import git_commit, save_torch, write_csv, write_json, write_text, write_yaml
from .scenarios import TaskData, build_tasks, default_cache_dir, input_frames, make_benchmark

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


# ----------------------------------------------------------------------------------------------- the model
def build_model(cfg: RunConfig, method: MethodConfig, frames: int, device: torch.device, progress: bool):
    """Backbone (with the method's token mixer) + its initial weights + the method's PET method."""
    from models import TaskIncrementalModel, create_model, create_pet
    from models.convert import CONVERTERS, is_converter_spec, load_pretrained
    from models.errors import ModelError
    from models.pos_embed import resample_pos_embed

    from .upstream import backbone_kwargs, pretrained_backbone_state

    try:
        backbone = create_model(
            cfg.model.name,
            input_frames=frames,
            num_mel_bins=cfg.features.num_mel_bins,
            mixer=method.mixer,
            **backbone_kwargs(cfg.model),
        )
    except KeyError as exc:
        raise ConfigError(f"config key 'model.name': {exc}") from None
    init = cfg.model.init
    if init == "upstream":
        ckpt = pretrained_backbone_state(cfg.model, cfg.features.num_mel_bins, default_cache_dir(cfg.features), device, progress)
        state = dict(ckpt["state_dict"])
        if tuple(ckpt["grid"]) != tuple(backbone.patch_grid):
            state["pos_embed"] = resample_pos_embed(
                state["pos_embed"], tuple(ckpt["grid"]), tuple(backbone.patch_grid), backbone.num_prefix_tokens
            )
        backbone.load_state_dict(state)
    elif is_converter_spec(init):  # e.g. timm:vit_base_patch16_384[:/path/to/weights.pth]
        try:
            backbone.load_state_dict(load_pretrained(init, backbone))
        except ModelError as exc:
            raise ConfigError(f"config key 'model.init': {exc}") from exc
    elif init != "random":
        path = Path(init).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"config key 'model.init': expected upstream, random, <source>:<model>[:<file>] (sources: "
                f"{sorted(CONVERTERS)}) or a state-dict file; '{init}' not found"
            )
        backbone.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    pet = None
    if method.pet:
        try:
            pet = create_pet(method.pet, **method.pet_options)
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"config key 'methods.{method.name}.pet': {exc}") from None
    return TaskIncrementalModel(backbone, pet).to(device)


# --------------------------------------------------------------------------------------------- the method
@dataclass
class MethodResult:
    method: MethodConfig
    folder: Path
    summary: dict


@dataclass
class _State:
    """What a checkpoint carries so that a run can restart after its last finished task."""

    R: list = field(default_factory=list)
    per_task: list = field(default_factory=list)
    metric_rows: list = field(default_factory=list)
    val_history: dict = field(default_factory=dict)
    best_epoch: dict = field(default_factory=dict)


def _evaluator():
    """Avalanche's metrics, kept in memory and written to metrics.csv (every value, every step)."""
    from avalanche.evaluation.metrics import accuracy_metrics, forgetting_metrics, loss_metrics
    from avalanche.training.plugins import EvaluationPlugin

    return EvaluationPlugin(
        accuracy_metrics(epoch=True, experience=True, stream=True),
        loss_metrics(epoch=True, experience=True, stream=True),
        forgetting_metrics(experience=True, stream=True),
        loggers=[],
    )


def _metric_rows(evaluator) -> list[dict]:
    rows = []
    for name, (steps, values) in evaluator.get_all_metrics().items():
        for step, value in zip(steps, values):
            if isinstance(value, (int, float)):
                rows.append({"metric": name, "step": int(step), "value": float(value)})
    return rows


def _untrained_head_accuracy(net, task: TaskData, test_set, seed: int, batch: int, device) -> float:
    """R[i][j] for a task j not yet trained: a copy of the model with a fresh (seeded) head and fresh PET
    modules for j. Never touches the real model, so evaluating ahead cannot change later results."""
    from strategies.plugins import evaluate_accuracy

    probe = copy.deepcopy(net)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed * 7919 + task.id)
        probe.add_task(task.id, len(task.classes))
    probe.to(device)
    return evaluate_accuracy(probe, test_set, batch, device)[0]


def run_method(
    cfg: RunConfig,
    method: MethodConfig,
    tasks: list[TaskData],
    folder: Path,
    progress: bool = True,
    resume: bool = False,
    data_report: Optional[dict] = None,
) -> MethodResult:
    from strategies import get_strategy, make_optimizer_factory
    from strategies.plugins import (
        BatchLimitPlugin,
        BestValidationPlugin,
        DataTimePlugin,
        ProgressPlugin,
        evaluate_accuracy,
    )

    folder.mkdir(parents=True, exist_ok=True)
    train_cfg = cfg.method_train(method)
    device = resolve_device(train_cfg.device)
    if train_cfg.threads > 0:
        torch.set_num_threads(train_cfg.threads)
    strategy_cls = get_strategy(method.strategy)
    resolved = to_dict(cfg) | {"methods": [dataclasses.asdict(method)], "train": dataclasses.asdict(train_cfg)}
    write_yaml(folder / "config.yaml", resolved)

    seed_everything(cfg.seed)
    frames = input_frames(tasks)
    net = build_model(cfg, method, frames, device, progress)
    bm = make_benchmark(tasks)
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
            if "py_rng" in ckpt:
                random.setstate(ckpt["py_rng"])
                np.random.set_state(ckpt["np_rng"])
            start_task = len(ckpt["tasks"])
            strategy_state = ckpt.get("strategy")
            log.info("%s: resuming after task %d from %s", method.name, start_task - 1, done[-1])

    validation = BestValidationPlugin(
        [bm.valid_stream[i].dataset.eval() for i in range(T)], train_cfg.eval_batch_size, train_cfg.select_on_val
    )
    validation.history.update({int(k): v for k, v in state.val_history.items()})
    validation.best_epoch.update({int(k): v for k, v in state.best_epoch.items()})
    data_time = DataTimePlugin()
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
        plugins=[validation, data_time, ProgressPlugin(method.name, validation, enabled=progress)]
        + ([BatchLimitPlugin(train_cfg.max_batches, cfg.seed)] if train_cfg.max_batches else []),
        evaluator=evaluator,
        **method.strategy_options,
    )

    if strategy_state is not None:
        strategy.load_cl_state(strategy_state, range(start_task))
    prior_metric_rows = list(state.metric_rows)  # from before a resume; the evaluator only knows this process
    for i in range(start_task, T):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        # a dataset_sequence step may train its task with its own epochs / batch size (AI-CL: 5/128, 20/32, 15/12)
        strategy.train_epochs = tasks[i].train.get("epochs", train_cfg.epochs)
        strategy.train_mb_size = tasks[i].train.get("batch_size", train_cfg.batch_size)
        started = time.perf_counter()
        strategy.train(bm.train_stream[i])
        train_seconds = time.perf_counter() - started
        results = strategy.eval(bm.test_stream[: i + 1])
        row = []
        for j in range(T):
            if j <= i:
                row.append(float(results[f"Top1_Acc_Exp/eval_phase/test_stream/Task{j:03d}/Exp{j:03d}"]))
            else:
                row.append(
                    _untrained_head_accuracy(
                        net, tasks[j], bm.test_stream[j].dataset.eval(), cfg.seed, train_cfg.eval_batch_size, device
                    )
                )
        state.R.append(row)

        test_set = bm.test_stream[i].dataset.eval()  # yields (x, y, task label)
        acc_check, n_test, eval_seconds = evaluate_accuracy(strategy.model, test_set, train_cfg.eval_batch_size, device)
        if abs(acc_check - row[i]) > 1e-6:
            raise RuntimeError(f"accuracy mismatch on task {i}: Avalanche {row[i]} vs direct {acc_check}")
        sample = tasks[i].dataset("test")[0][0][None].to(device)
        flops = M.count_flops(net, sample, torch.tensor([i], device=device))
        trainable = sum(p.numel() for group in strategy.optimizer.param_groups for p in group["params"])
        state.per_task.append(
            {
                "task": i,
                "trainable_params": int(trainable),
                "task_specific_params": int(sum(p.numel() for p in net.task_parameters(i))),
                "total_params": int(sum(p.numel() for p in net.parameters())),
                "gflops_per_sample": flops / 1e9,
                "train_seconds": train_seconds,
                "data_seconds": data_time.seconds.get(i, 0.0),
                "peak_memory_mb": M.peak_memory_mb(device),
                "eval_samples_per_second": n_test / eval_seconds if eval_seconds > 0 else 0.0,
                "best_epoch": validation.best_epoch.get(i),
                "val_accuracy": validation.history.get(i, []),
            }
        )
        state.metric_rows = prior_metric_rows + _metric_rows(evaluator)
        state.val_history = {str(k): v for k, v in validation.history.items()}
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
    summary = _summary(cfg, method, strategy_cls, tasks, state, device, data_report)
    _write_outputs(folder, method, tasks, state, summary)
    return MethodResult(method, folder, summary)


def _summary(cfg, method, strategy_cls, tasks, state: _State, device, data_report) -> dict:
    R = state.R
    return {
        "preset": cfg.name,
        "method": method.name,
        "strategy": method.strategy,
        "mixer": method.mixer,
        "pet": method.pet,
        "seed": cfg.seed,
        "tasks": [
            {
                "id": t.id,
                "name": t.name,
                "source": t.source,
                "classes": t.classes,
                "n_train": len(t.splits["train"]),
                "n_val": len(t.splits["val"]),
                "n_test": len(t.splits["test"]),
            }
            for t in tasks
        ],
        "accuracy_matrix": R,
        "accuracy_matrix_note": "R[i][j] for j > i uses an untrained (seeded, discarded) head: chance level",
        "avg_accuracy": M.average_accuracy(R),
        "avg_accuracy_curve": M.average_accuracy_curve(R),
        "avg_forgetting": M.average_forgetting(R),
        "forgetting_per_task": M.forgetting_per_task(R),
        "bwt": M.backward_transfer(R),
        "per_task": state.per_task,
        "data": data_report or {},
        "environment": {
            "torch": torch.__version__,
            "device": str(device),
            "threads": torch.get_num_threads(),
            "git_commit": git_commit(),
        },
    }


def _write_outputs(folder: Path, method: MethodConfig, tasks, state: _State, summary: dict) -> None:
    names = [t.name for t in tasks]
    matrix = pd.DataFrame(state.R, columns=[f"task_{j}" for j in range(len(tasks))])
    matrix.insert(0, "after_task", range(len(tasks)))
    write_csv(folder / "accuracy_matrix.csv", matrix)
    write_csv(folder / "metrics.csv", pd.DataFrame(state.metric_rows, columns=["metric", "step", "value"]))
    plot_accuracy_vs_task(state.R, names, f"{summary['preset']}: {method.name}", folder / "accuracy_vs_task.png")
    write_json(folder / SUMMARY, summary)


# ------------------------------------------------------------------------------------------------ the run
AGGREGATED = ("avg_accuracy", "avg_forgetting", "bwt")


def aggregate_summaries(summaries: list[dict]) -> dict:
    """One method over several seeds: means at the single-seed keys (so readers of the schema keep working),
    ``<key>_std`` beside them, and every seed's own summary under ``per_seed``."""
    first = summaries[0]
    out = {k: first[k] for k in ("preset", "method", "strategy", "mixer", "pet")}
    out["seeds"] = [s["seed"] for s in summaries]
    out["seed"] = out["seeds"][0]
    for key in AGGREGATED:
        values = [s[key] for s in summaries]
        out[key] = float(np.mean(values))
        out[f"{key}_std"] = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    out["accuracy_matrix"] = np.mean([s["accuracy_matrix"] for s in summaries], axis=0).tolist()
    out["tasks"] = first["tasks"] if all(s["tasks"] == first["tasks"] for s in summaries) else None
    out["per_task"] = [
        {key: float(np.mean([s["per_task"][t][key] for s in summaries])) for key in (
            "trainable_params", "task_specific_params", "total_params", "gflops_per_sample", "train_seconds",
            "peak_memory_mb", "eval_samples_per_second")} | {"task": t}
        for t in range(len(first["per_task"]))
    ]
    out["environment"] = first["environment"]
    out["per_seed"] = summaries
    return out


def comparison_table(summaries: list[dict]) -> pd.DataFrame:
    """One row per method: the headline TI-CL numbers side by side (mean +- std over seeds when there are
    several)."""
    rows = []
    for s in summaries:
        per = s["per_task"]
        multi = len(s.get("seeds", [s["seed"]])) > 1

        def cell(key: str):
            return f"{s[key]:.4f} ± {s[key + '_std']:.4f}" if multi else s[key]

        rows.append(
            {
                "method": s["method"],
                "strategy": s["strategy"],
                "mixer": s.get("mixer", ""),
                "pet": s.get("pet") or "-",
                "avg acc": cell("avg_accuracy"),
                "forgetting": cell("avg_forgetting"),
                "BWT": cell("bwt"),
                "trainable params (last task)": int(per[-1]["trainable_params"]),
                "task-specific params / task": int(np.mean([p["task_specific_params"] for p in per])),
                "GFLOPs / sample": float(np.mean([p["gflops_per_sample"] for p in per])),
                "train s": float(sum(p["train_seconds"] for p in per)),
            }
        )
    return pd.DataFrame(rows)


def format_table(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, floatfmt=".4g")


def run(
    cfg: RunConfig,
    out_dir: Path,
    progress: bool = True,
    resume: bool = False,
    seeds: Optional[list[int]] = None,
) -> tuple[list[MethodResult], str]:
    """Run every method of ``cfg`` under each seed; write and return the comparison table.

    One seed: ``out_dir/<method>/``. Several: ``out_dir/<method>/seed<N>/`` per seed plus an aggregate
    ``out_dir/<method>/summary.json`` (means, stds and every seed's summary).
    """
    import json

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = list(seeds) if seeds else [cfg.seed]
    multi = len(seeds) > 1
    write_yaml(out_dir / "config.yaml", to_dict(cfg) | ({"seeds": seeds} if multi else {}))
    started = time.perf_counter()
    per_method: dict[str, list[MethodResult]] = {m.name: [] for m in cfg.methods}
    for seed in seeds:
        seed_cfg = dataclasses.replace(cfg, seed=seed)
        tasks, report = build_tasks(seed_cfg, progress=progress)  # the seed may change the class order
        data_report = dataclasses.asdict(report)
        log.info(
            "seed %d features: %d clips, %d from cache, %d computed, %.1f s",
            seed, report.clips, report.cache_hits, report.cache_misses, report.seconds,
        )
        for method in cfg.methods:
            folder = out_dir / method.name / (f"seed{seed}" if multi else "")
            if resume and (folder / SUMMARY).is_file():
                log.info("%s seed %d: already complete, skipped", method.name, seed)
                result = MethodResult(method, folder, json.loads((folder / SUMMARY).read_text()))
            else:
                result = run_method(seed_cfg, method, tasks, folder, progress, resume, data_report)
            per_method[method.name].append(result)
    summaries = []
    results = []
    for method in cfg.methods:
        runs = per_method[method.name]
        if multi:
            summary = aggregate_summaries([r.summary for r in runs])
            write_json(out_dir / method.name / SUMMARY, summary)
            results.append(MethodResult(method, out_dir / method.name, summary))
        else:
            results.append(runs[0])
        summaries.append(results[-1].summary)
    table = format_table(comparison_table(summaries))
    seeds_text = ", ".join(map(str, seeds))
    header = f"# {cfg.name} (seed{'s' if multi else ''} {seeds_text})\n\n"
    if cfg.description:
        header += cfg.description.strip() + "\n\n"
    write_text(out_dir / "table.md", header + table + "\n")
    log.info("total %.1f s", time.perf_counter() - started)
    return results, table
