"""`ticl table` and `ticl plot`: run folders -> pandas -> Markdown / CSV / LaTeX tables and PNG + PDF figures.

Run folders are written by hand with the typed schema of ``benchmark.summary`` (``RunSummary`` per seed, with
per-clip outcomes consistent with R; ``SeedsSummary.of(...)`` at a multi-seed method folder, as the runner writes
them). No test reads the committed results/ folders.
"""
from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from audio_ticl.benchmark import metrics as M
from audio_ticl.benchmark.cli import main
from audio_ticl.benchmark.errors import TICLError
from audio_ticl.benchmark.report.collect import (
    UnfinishedRunError,
    load_runs,
    matrix_frame,
    method_frame,
    shared_params,
)
from audio_ticl.benchmark.report.plots import method_styles, plot_accuracy_vs_task, plot_runs
from audio_ticl.benchmark.report.table import build_table, notes, to_csv, to_markdown
from audio_ticl.benchmark.summary import SCHEMA_VERSION, Environment, RunSummary, SeedsSummary, TaskInfo, TaskRecord

BACKBONE = 1000  # shared parameters of the hand-made runs
COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER_COMMIT = "fedcba9876543210fedcba9876543210fedcba98"
TASK_NAMES = ["dog+rooster", "rain+sea_waves", "crying_baby+clock_tick", "sneezing+clapping"]
N_CLIPS = 20


def correct_for(R, n: int) -> list[list[str]]:
    """Per-clip outcomes behind R: n clips per task, the first round(R*n) correct (the same clips in every row)."""
    return [["1" * round(v * n) + "0" * (n - round(v * n)) for v in row] for row in R]


def make_summary(method: str, strategy: str, R, *, seed: int = 0, pet=None, mixer: str = "gsa",
                 trainable=(BACKBONE + 10,) * 3, task_specific=(10,) * 3, train_seconds=(1.0, 2.0, 3.0),
                 gflops: float = 0.5, preset: str = "hand", n_clips: int = N_CLIPS, state_bytes: int = 0,
                 commit: str = COMMIT, dirty: bool = False, hyperparameters=None, task_names=None) -> RunSummary:
    """A RunSummary with these numbers; R is rounded to whole clips so that R and ``correct`` agree."""
    T = len(R)
    R = [[round(v * n_clips) / n_clips for v in row] for row in R]
    sequential = strategy != "joint"
    names = task_names or TASK_NAMES
    return RunSummary(
        preset=preset, method=method, strategy=strategy, mixer=mixer, pet=pet, seed=seed,
        tasks=[TaskInfo(id=t, name=names[t], source="esc50", classes=names[t].split("+"), n_train=32, n_val=8,
                        n_test=n_clips, input_frames=64) for t in range(T)],
        accuracy_matrix=R,
        correct=correct_for(R, n_clips),
        avg_accuracy=M.average_accuracy(R),
        avg_accuracy_curve=M.average_accuracy_curve(R),
        plasticity=M.plasticity(R) if sequential else None,
        avg_forgetting=M.average_forgetting(R) if sequential else None,
        forgetting_per_task=M.forgetting_per_task(R) if sequential else None,
        bwt=M.backward_transfer(R) if sequential else None,
        per_task=[
            TaskRecord(task=t, trainable_params=trainable[t], task_specific_params=task_specific[t],
                       total_params=BACKBONE + sum(task_specific[: t + 1]),
                       method_state_bytes=state_bytes * (t + 1) // T, gflops_per_sample=gflops, tokens=64,
                       train_seconds=train_seconds[t], data_seconds=0.1, peak_memory_mb=100.0,
                       peak_memory_kind="process_peak_rss_during_task", eval_samples_per_second=1000.0,
                       best_epoch=0, val_accuracy=[0.8], val_loss=[0.5], samples_per_epoch=[32])
            for t in range(T)
        ],
        environment=Environment(torch="2.5.0", device="cpu", threads=1,
                                git_commit=commit + ("+dirty" if dirty else ""), dirty=dirty),
        hyperparameters=hyperparameters or {"source": "config", "train": {"lr": 0.01}, "strategy_options": {},
                                            "pet_options": {}},
    )


def _write(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))


def write_run(folder: Path, summaries: dict[str, list[RunSummary]], write_config: bool = True) -> Path:
    """A run folder as ``ticl run`` leaves it: one seed -> <method>/summary.json; several ->
    <method>/seed<N>/summary.json plus the SeedsSummary at <method>/summary.json."""
    folder.mkdir(parents=True, exist_ok=True)
    seeds = sorted({s.seed for runs in summaries.values() for s in runs})
    if write_config:
        config = {"name": "hand", "methods": [{"name": m} for m in summaries]}
        if len(seeds) > 1:
            config["seeds"] = seeds
        (folder / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    for method, runs in summaries.items():
        if len(runs) == 1:
            _write(folder / method / "summary.json", runs[0].to_dict())
            continue
        for s in runs:
            _write(folder / method / f"seed{s.seed}" / "summary.json", s.to_dict())
        _write(folder / method / "summary.json", SeedsSummary.of(runs).to_dict())
    return folder


R_ADAPTER = [[0.9, 0.5, 0.5], [0.9, 0.8, 0.5], [0.9, 0.8, 0.7]]  # no forgetting
R_FINETUNE = [[0.9, 0.5, 0.5], [0.6, 0.9, 0.5], [0.5, 0.7, 0.9]]  # forgets
R_JOINT = [[0.0, 0.5, 0.5], [0.0, 0.2, 0.5], [1.0, 1.0, 1.0]]  # trained once, at the end


@pytest.fixture
def single(tmp_path) -> Path:
    return write_run(tmp_path / "single", {
        "adapters": [make_summary("adapters", "adapter_incremental", R_ADAPTER, pet="convpass",
                                  trainable=(60, 30, 30), task_specific=(60, 30, 30), gflops=0.6)],
        "finetune": [make_summary("finetune", "finetune", R_FINETUNE, train_seconds=(0.5, 0.5, 0.5))],
        "joint": [make_summary("joint", "joint", R_JOINT)],
    })


def _jitter(R, d):
    return [[min(1.0, v + d) if j <= i else v for j, v in enumerate(row)] for i, row in enumerate(R)]


@pytest.fixture
def multi(tmp_path) -> Path:
    deltas = {0: 0.0, 1: 0.05, 2: 0.1}
    return write_run(tmp_path / "multi", {
        "adapters": [make_summary("adapters", "adapter_incremental", _jitter(R_ADAPTER, d), seed=s, pet="convpass",
                                  trainable=(60, 30, 30), task_specific=(60, 30, 30),
                                  train_seconds=(1.0 + s, 1.0, 1.0)) for s, d in deltas.items()],
        "finetune": [make_summary("finetune", "finetune", _jitter(R_FINETUNE, -d), seed=s)
                     for s, d in deltas.items()],
    })


def _md_rows(md: str) -> dict[str, dict[str, str]]:
    lines = [line for line in md.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(header, cells))
    return rows


def _footnotes(md: str) -> list[str]:
    return [line[2:] for line in md.splitlines() if line.startswith("- ")]


# ------------------------------------------------------------------------------------------------ numbers
def test_single_seed_numbers(single):
    frame = method_frame(load_runs([single])).set_index("method")
    a, f = frame.loc["adapters"], frame.loc["finetune"]
    assert list(frame.index) == ["adapters", "finetune", "joint"]  # the run's config order
    assert [a["acc_T0"], a["acc_T1"], a["acc_T2"]] == pytest.approx([0.9, 0.8, 0.7])
    assert a["avg_accuracy"] == pytest.approx(0.8) and a["avg_forgetting"] == 0.0 and a["bwt"] == 0.0
    assert f["avg_forgetting"] == pytest.approx(M.average_forgetting(R_FINETUNE))
    assert f["bwt"] == pytest.approx(M.backward_transfer(R_FINETUNE))
    assert a["trainable_params"] == pytest.approx(40)  # mean over the tasks
    assert a["pct_full_ft"] == pytest.approx(100 * 40 / (BACKBONE + 10))  # relative to the finetune row
    assert a["full_ft_reference"] == "finetune"
    assert a["storage_mb"] == pytest.approx(120 * 4 / 1e6)  # all tasks' own parameters, fp32, no state
    assert a["train_seconds"] == pytest.approx(6.0) and f["train_seconds"] == pytest.approx(1.5)
    assert a["n_seeds"] == 1 and np.isnan(a["avg_accuracy_std"])
    assert not frame.loc["joint", "ranked"] and a["ranked"]
    run = load_runs([single])[0]
    assert isinstance(run.summary, RunSummary) and run.seeds == (run.summary,)
    assert shared_params(run.summary) == BACKBONE


def test_plasticity_is_the_mean_of_the_diagonal(single):
    frame = method_frame(load_runs([single])).set_index("method")
    assert frame.loc["finetune", "plasticity"] == pytest.approx(np.mean(np.diag(R_FINETUNE)))  # 0.9
    assert frame.loc["adapters", "plasticity"] == pytest.approx(np.mean([0.9, 0.8, 0.7]))
    rows = _md_rows(build_table([single], "md"))
    # beside forgetting, higher is better: finetune learns each task best, adapters forget nothing
    headers = list(rows["finetune"])
    assert headers.index("Plasticity ↑") == headers.index("Forgetting ↓") + 1
    assert rows["finetune"]["Plasticity ↑"].startswith("**90.0 [")
    assert rows["adapters"]["Plasticity ↑"].startswith("80.0 [")
    assert rows["adapters"]["Forgetting ↓"].startswith("**0.0 [")


def test_joint_shows_dash_and_is_never_ranked(single):
    frame = method_frame(load_runs([single])).set_index("method")
    joint = frame.loc["joint"]
    assert np.isnan(joint["avg_forgetting"]) and np.isnan(joint["bwt"]) and np.isnan(joint["plasticity"])
    assert np.isnan(joint["avg_forgetting_lo"]) and np.isnan(joint["plasticity_hi"])
    assert joint["avg_accuracy_lo"] <= 1.0 <= joint["avg_accuracy_hi"]  # its accuracy still has an interval
    md = build_table([single], "md")
    rows = _md_rows(md)
    assert rows["joint"]["Forgetting ↓"] == rows["joint"]["BWT ↑"] == rows["joint"]["Plasticity ↑"] == "-"
    assert rows["joint"]["Avg acc ↑"] == "100.0 [100.0, 100.0]"  # the best accuracy, but not marked
    assert "**" not in "".join(rows["joint"].values())
    assert rows["adapters"]["Avg acc ↑"].startswith("**80.0 [")
    assert any(line.startswith("Not ranked: joint") and "shown as -" in line for line in _footnotes(md))
    tex = build_table([single], "latex")
    assert "joint & joint & - & gsa & 100.0 & 100.0 & 100.0 & 100.0 [100.0, 100.0] & -- & -- & --" in tex


def test_storage_includes_the_method_state(tmp_path):
    state = 2_500_000  # e.g. EWC's Fisher and anchors after the last task
    run = write_run(tmp_path / "state", {
        "ewc": [make_summary("ewc", "ewc", R_FINETUNE, trainable=(30,) * 3, task_specific=(10,) * 3,
                             state_bytes=state)],
        "finetune": [make_summary("finetune", "finetune", R_FINETUNE)],
    })
    frame = method_frame(load_runs([run])).set_index("method")
    assert frame.loc["ewc", "storage_mb"] == pytest.approx((30 * 4 + state) / 1e6)  # the last task's state
    assert frame.loc["ewc", "method_state_mb"] == pytest.approx(state / 1e6)
    assert frame.loc["finetune", "storage_mb"] == pytest.approx(30 * 4 / 1e6)
    md = build_table([run], "md")
    rows = _md_rows(md)
    assert rows["ewc"]["Storage (MB) ↓"] == "2.5" and rows["finetune"]["Storage (MB) ↓"] == "**0.00012**"
    storage = next(line for line in _footnotes(md) if line.startswith("Storage:"))
    assert "plus the method's own state" in storage and "(method state: ewc 2.5 MB)" in storage
    assert "not included" not in md


def test_multi_seed_mean_and_std(multi):
    runs = load_runs([multi])
    assert [len(r.seeds) for r in runs] == [3, 3]
    assert isinstance(runs[0].summary, SeedsSummary) and [s.seed for s in runs[0].seeds] == [0, 1, 2]
    frame = method_frame(runs).set_index("method")
    seeds = runs[0].seeds
    accs = [s.avg_accuracy for s in seeds]
    a = frame.loc["adapters"]
    assert a["n_seeds"] == 3 and a["seeds"] == "[0, 1, 2]"
    assert a["avg_accuracy"] == pytest.approx(np.mean(accs))
    assert a["avg_accuracy_std"] == pytest.approx(np.std(accs, ddof=1))
    assert a["plasticity"] == pytest.approx(np.mean([s.plasticity for s in seeds]))
    assert a["train_seconds"] == pytest.approx(np.mean([3.0, 4.0, 5.0]))
    assert a["train_seconds_std"] == pytest.approx(1.0)
    last = [s.accuracy_matrix[-1][0] for s in seeds]
    assert a["acc_T0"] == pytest.approx(np.mean(last)) and a["acc_T0_std"] == pytest.approx(np.std(last, ddof=1))
    md = to_markdown(method_frame(runs))
    cell = f"{100 * np.mean(accs):.1f} ± {100 * np.std(accs, ddof=1):.1f} ["
    assert cell in md
    assert "Mean ± sample std over 3 seeds" in md
    assert "resampling the seeds and, within each drawn seed, each task's test clips" in md
    assert "30" in md and "± 0.0K" not in md  # parameter counts carry no spread


# ----------------------------------------------------------------------------------- confidence intervals
def _ci_frame(tmp_path, name: str, n_clips: int, seeds=(0,)) -> pd.Series:
    runs = [make_summary("m", "finetune", _jitter(R_FINETUNE, -0.1 * s), seed=s, n_clips=n_clips) for s in seeds]
    run = write_run(tmp_path / name, {"m": runs})
    return method_frame(load_runs([run])).iloc[0]


def test_ci_contains_the_mean_and_narrows_with_more_clips(tmp_path):
    few, many = _ci_frame(tmp_path, "few", 20), _ci_frame(tmp_path, "many", 400)
    for metric in ("avg_accuracy", "avg_forgetting", "plasticity", "bwt"):
        for row in (few, many):
            assert row[f"{metric}_lo"] <= row[metric] <= row[f"{metric}_hi"], metric
            assert row[f"{metric}_lo"] < row[f"{metric}_hi"], metric
        width = {n: r[f"{metric}_hi"] - r[f"{metric}_lo"] for n, r in (("few", few), ("many", many))}
        assert width["many"] < 0.5 * width["few"], metric  # about sqrt(20) narrower


def test_ci_over_seeds_covers_the_seed_mean_and_is_reproducible(tmp_path):
    row = _ci_frame(tmp_path, "seeds", 40, seeds=(0, 1, 2))
    assert row["avg_accuracy_lo"] <= row["avg_accuracy"] <= row["avg_accuracy_hi"]
    again = _ci_frame(tmp_path, "seeds_again", 40, seeds=(0, 1, 2))
    assert again["avg_accuracy_lo"] == row["avg_accuracy_lo"] and again["plasticity_hi"] == row["plasticity_hi"]


def _correct_arrays(correct: list[list[str]]) -> list[np.ndarray]:
    """Per-clip outcomes ``correct[i][j]`` ('0'/'1' strings) -> one (T rows, n_j clips) bool array per task j."""
    T = len(correct)
    return [np.array([[c == "1" for c in correct[i][j]] for i in range(T)], dtype=bool) for j in range(T)]


def _reference_bootstrap_ci(
    seeds_correct: list[list[list[str]]],
    metrics: tuple[str, ...] = tuple(M.HEADLINE_METRICS),
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of the mean over seeds, resampling seeds and, within each seed, each task's
    test clips (the same resampled clips for every row i of task j, so forgetting stays a within-clip quantity).

    ``seeds_correct``: every seed's ``correct`` matrix. Returns ``{metric: (low, high)}``.
    """
    rng = np.random.default_rng(seed)
    per_seed = [_correct_arrays(c) for c in seeds_correct]
    S = len(per_seed)
    draws = {m: np.empty(n_boot) for m in metrics}
    for b in range(n_boot):
        chosen = rng.integers(0, S, size=S) if S > 1 else np.zeros(1, dtype=int)
        values = {m: [] for m in metrics}
        for s in chosen:
            tasks = per_seed[s]
            R = np.stack([t[:, rng.integers(0, t.shape[1], size=t.shape[1])].mean(axis=1) for t in tasks], axis=1)
            for m in metrics:
                values[m].append(M.HEADLINE_METRICS[m](R))
        for m in metrics:
            draws[m][b] = np.mean(values[m])
    alpha = (1.0 - level) / 2
    return {m: (float(np.quantile(d, alpha)), float(np.quantile(d, 1 - alpha))) for m, d in draws.items()}


def test_vectorised_bootstrap_agrees_with_a_plain_loop():
    rng = np.random.default_rng(3)
    seeds = []
    for p in (0.6, 0.8):
        seeds.append([["".join(rng.choice(["0", "1"], size=30, p=[1 - p, p])) for _ in range(3)] for _ in range(3)])
    fast = M.bootstrap_ci(seeds, n_boot=2000, seed=1)
    slow = _reference_bootstrap_ci(seeds, n_boot=2000, seed=1)
    for metric in M.HEADLINE_METRICS:
        assert fast[metric] == pytest.approx(slow[metric], abs=0.02), metric  # Monte Carlo error only
    one = [correct_for([[1.0, 0.5], [1.0, 1.0]], 10)]  # every clip of task 0 always right: no spread
    assert M.bootstrap_ci(one)["avg_forgetting"] == (0.0, 0.0)
    assert M.bootstrap_ci(one)["plasticity"][1] == 1.0


def test_vectorised_metrics_equal_the_metrics_module():
    rng = np.random.default_rng(0)
    for T in (1, 2, 5):
        R = rng.random((T, T))
        for name, fn in M.HEADLINE_METRICS.items():
            assert M.VECTOR_METRICS[name](R[None])[0] == pytest.approx(fn(R)), (name, T)


def test_missing_per_clip_outcomes_give_no_interval(tmp_path):
    s = make_summary("m", "finetune", R_FINETUNE)
    s.correct = []
    run = write_run(tmp_path / "noclips", {"m": [s]})
    md = build_table([run], "md")
    assert _md_rows(md)["m"]["Avg acc ↑"] == "70.0"
    assert "No interval for m: the summary has no per-clip outcomes." in md


# ------------------------------------------------------------------------------------------- best marking
def test_best_marking_directions(single):
    md = build_table([single], "md")
    rows = _md_rows(md)
    ad, ft, joint = rows["adapters"], rows["finetune"], rows["joint"]
    assert ad["Avg acc ↑"].startswith("**80.0 [") and ft["Avg acc ↑"].startswith("70.0 [")  # higher is better
    assert ad["Forgetting ↓"] == "**0.0 [0.0, 0.0]**" and not ft["Forgetting ↓"].startswith("**")  # lower
    assert ad["BWT ↑"] == "**0.0**" and ft["BWT ↑"] == "-30.0"  # higher is better
    assert ad["Params ↓"] == "**40**" and ad["% of FT ↓"].startswith("**")  # fewer is better
    assert ft["Time (s) ↓"] == "**1.5**"
    assert ad["T2 ↑"] == "70.0" and ft["T2 ↑"] == "**90.0**"
    assert "**" not in "".join(joint.values())
    assert rows["adapters"]["T0 ↑"] == "**90.0**" and rows["finetune"]["T0 ↑"] == "50.0"
    assert ft["GFLOPs ↓"] == "**0.5**"
    assert "↑ higher is better" in md and "↓ lower is better" in md


def test_ties_are_all_marked_and_all_tie_columns_are_not(tmp_path):
    run = write_run(tmp_path / "ties", {
        "a": [make_summary("a", "finetune", R_ADAPTER)],
        "b": [make_summary("b", "ewc", R_ADAPTER)],
        "c": [make_summary("c", "lwf", R_FINETUNE)],
    })
    rows = _md_rows(build_table([run], "md"))
    assert rows["a"]["Avg acc ↑"] == rows["b"]["Avg acc ↑"]
    assert rows["a"]["Avg acc ↑"].startswith("**80.0 [") and rows["c"]["Avg acc ↑"].startswith("70.0 [")
    assert not any(r["Params ↓"].startswith("**") for r in rows.values())  # same count everywhere


# ---------------------------------------------------------------------------------------------- provenance
def test_commit_column_and_a_single_clean_commit_raises_no_flag(single):
    md = build_table([single], "md")
    rows = _md_rows(md)
    assert {r["Commit"] for r in rows.values()} == {COMMIT[:7]}
    assert "Caution" not in md


def test_a_table_mixing_commits_is_flagged(tmp_path):
    a = write_run(tmp_path / "a", {"x": [make_summary("x", "finetune", R_ADAPTER)]})
    b = write_run(tmp_path / "b", {"y": [make_summary("y", "ewc", R_FINETUNE, commit=OTHER_COMMIT)],
                                   "z": [make_summary("z", "lwf", R_FINETUNE, commit=OTHER_COMMIT)]})
    md = build_table([a, b], "md")
    rows = _md_rows(md)
    assert rows["x"]["Commit"] == COMMIT[:7] and rows["y"]["Commit"] == OTHER_COMMIT[:7]
    flag = next(line for line in _footnotes(md) if "source versions" in line)
    assert flag.startswith("Caution: the rows come from 2 source versions")
    assert f"{COMMIT[:7]} (x)" in flag and f"{OTHER_COMMIT[:7]} (y, z)" in flag
    assert "uncommitted changes (+dirty" not in md


def test_seeds_of_one_method_from_two_commits_are_flagged(tmp_path):
    run = write_run(tmp_path / "r", {"m": [make_summary("m", "finetune", R_ADAPTER, seed=0),
                                           make_summary("m", "finetune", R_ADAPTER, seed=1, commit=OTHER_COMMIT)]})
    md = build_table([run], "md")
    assert _md_rows(md)["m"]["Commit"] == f"{COMMIT[:7]}, {OTHER_COMMIT[:7]}"
    assert "2 source versions" in md


def test_a_dirty_row_is_flagged(single, tmp_path):
    dirty = write_run(tmp_path / "dirty", {"hacked": [make_summary("hacked", "ewc", R_ADAPTER, dirty=True)]})
    md = build_table([single, dirty], "md")
    rows = _md_rows(md)
    assert rows["hacked"]["Commit"] == f"{COMMIT[:7]}+dirty" and rows["joint"]["Commit"] == COMMIT[:7]
    flag = next(line for line in _footnotes(md) if "uncommitted changes (+dirty" in line)
    assert flag.startswith("Caution:") and flag.endswith(": hacked.") and "source.diff" in flag
    frame = method_frame(load_runs([single, dirty])).set_index("method")
    assert frame.loc["hacked", "dirty"] and not frame.loc["joint", "dirty"]


def _searched(lr: float = 0.001, record: dict | None = None) -> dict:
    hp = {"source": "search", "train": {"lr": lr, "epochs": 3}, "strategy_options": {"ewc_lambda": 100.0},
          "pet_options": {}}
    if record is not None:
        hp["search"] = record
    return hp


SEARCH = {"protocol": "first_tasks", "first_tasks": 2, "budget": 4,
          "grid": {"train.lr": [0.01, 0.001], "strategy_options.ewc_lambda": [10.0, 100.0]},
          "trials": [{"values": {"train.lr": lr, "strategy_options.ewc_lambda": lam}, "score": 0.5 + lr + lam / 1e3,
                      "folder": f"tuning/ewc/trial_{k:02d}"}
                     for k, (lr, lam) in enumerate([(0.01, 10.0), (0.01, 100.0), (0.001, 10.0), (0.001, 100.0)])],
          "chosen": {"train.lr": 0.001, "strategy_options.ewc_lambda": 100.0},
          "metric": "mean validation accuracy"}


def test_searched_hyperparameters_are_named_in_the_footnote(tmp_path):
    run = write_run(tmp_path / "tuned", {
        "ewc": [make_summary("ewc", "ewc", R_ADAPTER, hyperparameters=_searched())],
        "finetune": [make_summary("finetune", "finetune", R_FINETUNE)],
    })
    _write(run / "tuning" / "ewc" / "search.json", SEARCH)
    # a trial folder under tuning/ is neither a method nor an unfinished run
    _write(run / "tuning" / "ewc" / "trial_00" / "summary.json", make_summary("ewc", "ewc", R_ADAPTER).to_dict())
    md = build_table([run], "md")
    assert list(_md_rows(md)) == ["ewc", "finetune"]
    lines = _footnotes(md)
    searched = next(line for line in lines if line.startswith("Hyperparameters of ewc:"))
    assert "protocol first_tasks, the first 2 tasks" in searched and "4 trials (budget 4)" in searched
    assert "chosen: train.lr=0.001, strategy_options.ewc_lambda=100" in searched and "but" not in searched
    assert "Hyperparameters: values from the config, not searched (finetune)." in lines


def test_search_record_from_the_summary_and_a_contradicting_value(tmp_path):
    run = write_run(tmp_path / "tuned", {"ewc": [make_summary("ewc", "ewc", R_ADAPTER,
                                                              hyperparameters=_searched(0.01, SEARCH))]})
    md = build_table([run], "md")  # no tuning/ folder: the record kept in the summary is used
    line = next(x for x in _footnotes(md) if x.startswith("Hyperparameters of ewc:"))
    assert "protocol first_tasks" in line and "(but seed 0 used train.lr=0.01)" in line


def test_config_hyperparameters_of_every_row(single):
    assert "Hyperparameters: values from the config, not searched (all rows)." in _footnotes(
        build_table([single], "md"))


# ------------------------------------------------------------------------------------------- schema version
def test_a_summary_of_another_schema_version_is_an_error_naming_the_file(single):
    path = single / "finetune" / "summary.json"
    data = json.loads(path.read_text())
    _write(path, data | {"schema_version": SCHEMA_VERSION - 1})
    with pytest.raises(TICLError, match=re.escape(str(path)) + ".*schema version"):
        build_table([single])


def test_a_multi_seed_summary_of_another_schema_version_is_an_error_naming_the_file(multi):
    path = multi / "adapters" / "summary.json"
    data = json.loads(path.read_text())
    del data["per_seed"][1]["schema_version"]  # an old-schema seed inside
    _write(path, data)
    with pytest.raises(TICLError, match=re.escape(str(path)) + r" \(seed 1\).*schema version None"):
        load_runs([multi])
    _write(path, json.loads((multi / "finetune" / "summary.json").read_text()) | {"schema_version": 99})
    with pytest.raises(TICLError, match=re.escape(str(path)) + ".*schema version 99"):
        load_runs([multi])


# ------------------------------------------------------------------------------------------------- tasks
def test_task_names_footnote(single, tmp_path):
    assert "Tasks: T0 dog+rooster; T1 rain+sea_waves; T2 crying_baby+clock_tick." in build_table([single], "md")
    shuffled = [TASK_NAMES[2], TASK_NAMES[0], TASK_NAMES[1]]
    run = write_run(tmp_path / "order", {"m": [make_summary("m", "finetune", R_ADAPTER, seed=0),
                                               make_summary("m", "finetune", R_ADAPTER, seed=1,
                                                            task_names=shuffled)]})
    md = build_table([run], "md")
    assert "different tasks (each its own class order)" in md and "Tasks:" not in md


# ------------------------------------------------------------------------------------------------- formats
def test_latex_structure_and_escaping(tmp_path):
    run = write_run(tmp_path / "tex", {
        "my_adapters": [make_summary("my_adapters", "adapter_incremental", R_ADAPTER, pet="conv_pass",
                                     dirty=True)],
        "finetune": [make_summary("finetune", "finetune", R_FINETUNE)],
        "joint": [make_summary("joint", "joint", R_JOINT)],
    })
    tex = build_table([run], "latex")
    assert tex.startswith("\\begin{table}") and tex.rstrip().endswith("\\end{table}")
    order = [tex.index(k) for k in ("\\caption{", "\\begin{tabular}", "\\toprule", "\\midrule", "\\bottomrule",
                                    "\\end{tabular}")]
    assert order == sorted(order)
    assert "my\\_adapters" in tex and "adapter\\_incremental" in tex and "conv\\_pass" in tex
    assert "\\% of FT $\\downarrow$" in tex and "Avg acc $\\uparrow$" in tex and "Plasticity $\\uparrow$" in tex
    assert "\\textbf{80.0 [" in tex and "$-$30.0" in tex and f"{COMMIT[:7]}+dirty" in tex
    body = tex[tex.index("\\midrule"):tex.index("\\bottomrule")].strip().splitlines()[1:]
    header = tex[tex.index("\\toprule"):tex.index("\\midrule")].strip().splitlines()[1]
    n_cols = len(re.search(r"\\begin\{tabular\}\{(\w+)\}", tex).group(1))
    assert len(body) == 3 and all(line.count("&") == n_cols - 1 for line in [header, *body])
    # nothing pdflatex would choke on: no bare _ % # or non-ASCII outside what was escaped
    stripped = re.sub(r"\\[_%#&]", "", tex)
    assert not re.search(r"[_%#]", stripped)
    assert tex.isascii()
    assert tex.count("{") == tex.count("}")


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="pdflatex is not installed on this machine")
def test_latex_compiles(single, tmp_path):
    doc = ("\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n"
           + build_table([single], "latex") + "\n\\end{document}\n")
    (tmp_path / "t.tex").write_text(doc)
    result = subprocess.run(["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "t.tex"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:]


def test_csv_round_trip(single, multi):
    frame = method_frame(load_runs([single, multi]))
    back = pd.read_csv(io.StringIO(to_csv(frame)))
    pd.testing.assert_frame_equal(back, frame, check_dtype=False)
    assert {"avg_accuracy", "avg_accuracy_std", "avg_accuracy_lo", "avg_accuracy_hi", "plasticity_lo",
            "avg_forgetting_hi", "pct_full_ft", "full_ft_reference", "n_seeds", "git_commit", "dirty",
            "method_state_mb"} <= set(back.columns)
    assert (back["avg_accuracy_lo"] <= back["avg_accuracy"]).all()
    assert back["git_commit"].iloc[0] == COMMIT  # the full hash, a string even where it looks like a number


def test_runs_concatenate_with_unique_labels(single, multi):
    frame = method_frame(load_runs([single, multi]))
    assert list(frame["method"]) == ["adapters (single)", "finetune (single)", "joint", "adapters (multi)",
                                     "finetune (multi)"]
    # each row's % of full fine-tuning comes from the finetune row of its own run
    assert set(frame["full_ft_reference"]) == {"finetune (single)", "finetune (multi)"}


def test_percent_of_full_finetuning_falls_back_to_the_backbone(tmp_path):
    run = write_run(tmp_path / "nofinetune", {
        "adapters": [make_summary("adapters", "adapter_incremental", R_ADAPTER, pet="convpass",
                                  trainable=(50, 50, 50), task_specific=(50, 50, 50))],
    })
    frame = method_frame(load_runs([run]))
    assert frame.loc[0, "full_ft_reference"] == "backbone"
    assert frame.loc[0, "pct_full_ft"] == pytest.approx(100 * 50 / BACKBONE)
    assert "backbone's parameter count" in build_table([run], "md")


def test_rows_on_different_tasks_are_ranked_apart(tmp_path):
    a = write_run(tmp_path / "a", {"x": [make_summary("x", "finetune", R_ADAPTER)],
                                   "y": [make_summary("y", "ewc", R_FINETUNE)]})
    other = make_summary("z", "lwf", R_FINETUNE, task_names=["something+else", *TASK_NAMES[1:]])
    b = write_run(tmp_path / "b", {"z": [other]})
    md = build_table([a, b], "md")
    rows = _md_rows(md)
    assert rows["x"]["Avg acc ↑"].startswith("**80.0 [") and rows["y"]["Avg acc ↑"].startswith("70.0 [")
    assert rows["z"]["Avg acc ↑"].startswith("70.0 [")  # alone on its tasks: nothing to beat, not marked
    assert "2 different task sequences" in md and "Tasks:" not in md


def test_notes_are_plain_lines(single):
    lines = notes(method_frame(load_runs([single])))
    assert all(isinstance(x, str) and "\n" not in x for x in lines)
    assert any(x.startswith("[low, high]: 95 % percentile bootstrap interval of the value, resampling each "
                            "task's test clips (2000 draws, seed 0)") for x in lines)


# ------------------------------------------------------------------------------------------ unfinished runs
def test_method_folder_without_summary_is_an_error(single):
    (single / "unfinished" / "checkpoints").mkdir(parents=True)
    (single / "unfinished" / "config.yaml").write_text("name: hand\n")
    with pytest.raises(UnfinishedRunError, match=re.escape(str(single / "unfinished"))):
        build_table([single])


def test_method_named_by_config_but_never_started_is_an_error(single):
    (single / "config.yaml").write_text(json.dumps({"methods": [{"name": "adapters"}, {"name": "later"}]}))
    with pytest.raises(UnfinishedRunError, match="'later'"):
        load_runs([single])


def test_multi_seed_run_without_its_seeds_summary_is_an_error_that_names_finished_seeds(multi):
    (multi / "finetune" / "summary.json").unlink()
    with pytest.raises(UnfinishedRunError, match=r"multi/finetune: no summary.json.*seed0, seed1, seed2"):
        load_runs([multi])
    # ... and one seed of it can still be tabulated by naming its folders
    frame = method_frame(load_runs([multi / "finetune" / "seed0", multi / "finetune" / "seed1"]))
    assert list(frame["method"]) == ["finetune (seed0)", "finetune (seed1)"]


def test_seeds_summary_of_fewer_seeds_than_the_config_asks_for_is_an_error(multi):
    config = json.loads((multi / "config.yaml").read_text())
    (multi / "config.yaml").write_text(json.dumps(config | {"seeds": [0, 1, 2, 3]}))
    with pytest.raises(UnfinishedRunError, match=r"covers seeds \[0, 1, 2\].*\[0, 1, 2, 3\]"):
        load_runs([multi])


def test_cli_reports_unfinished_folder_and_prints_no_table(single, capsys):
    (single / "half" / "checkpoints").mkdir(parents=True)
    assert main(["table", str(single)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and str(single / "half") in err and "unfinished" in err


def test_not_a_run_folder(tmp_path):
    with pytest.raises(UnfinishedRunError, match="no summary.json and no method folders"):
        load_runs([tmp_path])
    with pytest.raises(Exception, match="no such run folder"):
        load_runs([tmp_path / "missing"])


def test_the_same_method_given_twice_is_an_error(single):
    with pytest.raises(TICLError, match="given twice: adapters"):
        load_runs([single / "adapters", single / "adapters"])


# ------------------------------------------------------------------------------------------------- plots
def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _is_pdf(path: Path) -> bool:
    return path.read_bytes()[:5] == b"%PDF-"


def test_joint_has_no_measured_points_before_the_last_task(single):
    R = matrix_frame(load_runs([single]))
    joint = R[R["method"] == "joint"]
    assert set(joint.loc[joint["measured"], "after_task"]) == {2}
    assert joint.loc[joint["measured"], "task"].tolist() == [0, 1, 2]
    adapters = R[R["method"] == "adapters"]
    assert (adapters["measured"] == adapters["trained"]).all() and adapters["measured"].sum() == 6


@pytest.mark.parametrize("kind", ["curves", "matrix", "pet"])
def test_each_plot_kind_writes_png_and_pdf(kind, single, multi, tmp_path):
    out = tmp_path / "plots"
    paths = plot_runs([single, multi], out, kind)
    assert sorted(p.name for p in paths) == [f"{kind}.pdf", f"{kind}.png"]
    assert _is_png(out / f"{kind}.png") and _is_pdf(out / f"{kind}.pdf")


def test_plot_all_through_the_cli(single, tmp_path, capsys):
    assert main(["plot", str(single), "--out", str(tmp_path)]) == 0
    for kind in ("curves", "matrix", "pet"):
        assert _is_png(tmp_path / f"{kind}.png") and _is_pdf(tmp_path / f"{kind}.pdf")
    assert str(tmp_path / "pet.pdf") in capsys.readouterr().out


def test_plot_needs_out_for_several_run_folders(single, multi, capsys):
    assert main(["plot", str(single), str(multi)]) == 2
    assert "--out" in capsys.readouterr().err


def test_plot_default_out_is_inside_the_run_folder_and_does_not_disturb_the_table(single):
    assert main(["plot", str(single), "--kind", "pet"]) == 0
    assert _is_png(single / "plots" / "pet.png")
    assert len(method_frame(load_runs([single]))) == 3  # plots/ is not a method folder


def test_eleven_methods_get_distinct_styles():
    styles = method_styles([f"m{i}" for i in range(11)])
    keys = {(s["color"], s["marker"], s["linestyle"]) for s in styles.values()}
    assert len(keys) == 11
    assert len({s["marker"] for s in styles.values()}) == 11


def test_runner_plot_still_works(tmp_path):
    path = plot_accuracy_vs_task(R_FINETUNE, ["a", "b", "c"], "title", tmp_path / "accuracy_vs_task.png")
    assert _is_png(path)
    path = plot_accuracy_vs_task(R_JOINT, ["a", "b", "c"], "joint", tmp_path / "joint.png",
                                 trained_task_by_task=False)
    assert _is_png(path)


def test_cli_table_formats(single, tmp_path, capsys):
    assert main(["table", str(single), "--format", "csv", "--out", str(tmp_path / "t.csv")]) == 0
    assert pd.read_csv(tmp_path / "t.csv")["method"].tolist() == ["adapters", "finetune", "joint"]
    assert main(["table", str(single), "--format", "latex"]) == 0
    assert "\\toprule" in capsys.readouterr().out
