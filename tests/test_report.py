"""`ticl table` and `ticl plot`: run folders -> pandas -> Markdown / CSV / LaTeX tables and PNG + PDF figures.

Run folders are written by hand from the real ``summary.json`` schema (a copy of results/default/finetune's,
with the numbers replaced), single- and multi-seed (the aggregate made by the runner's own
``aggregate_summaries``), and the committed results/ folders are read as they are.
"""
from __future__ import annotations

import copy
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from benchmark import metrics as M
from benchmark.cli import main
from benchmark.report.collect import UnfinishedRunError, load_runs, method_frame, shared_params
from benchmark.report.plots import method_styles, plot_accuracy_vs_task, plot_runs
from benchmark.report.table import build_table, to_csv, to_markdown
from benchmark.runner import aggregate_summaries

ROOT = Path(__file__).resolve().parents[1]
DEFAULT = ROOT / "results" / "default"
TEMPLATE = json.loads((DEFAULT / "finetune" / "summary.json").read_text())
BACKBONE = 1000  # shared parameters of the hand-made runs


def make_summary(method: str, strategy: str, R, *, seed: int = 0, pet=None, mixer: str = "gsa",
                 trainable=(BACKBONE + 10,) * 3, task_specific=(10,) * 3, train_seconds=(1.0, 2.0, 3.0),
                 gflops: float = 0.5, preset: str = "hand") -> dict:
    """A summary.json with the real schema (copied from a real run) and these numbers."""
    s = copy.deepcopy(TEMPLATE)
    T = len(R)
    s.update(preset=preset, method=method, strategy=strategy, pet=pet, mixer=mixer, seed=seed)
    s["tasks"] = copy.deepcopy(TEMPLATE["tasks"][:T])
    s["accuracy_matrix"] = [list(map(float, row)) for row in R]
    s["avg_accuracy"] = M.average_accuracy(R)
    s["avg_accuracy_curve"] = M.average_accuracy_curve(R)
    s["avg_forgetting"] = M.average_forgetting(R)
    s["forgetting_per_task"] = M.forgetting_per_task(R)
    s["bwt"] = M.backward_transfer(R)
    per = []
    for t in range(T):
        p = copy.deepcopy(TEMPLATE["per_task"][t])
        p.update(task=t, trainable_params=trainable[t], task_specific_params=task_specific[t],
                 total_params=BACKBONE + sum(task_specific[: t + 1]), gflops_per_sample=gflops,
                 train_seconds=train_seconds[t])
        per.append(p)
    s["per_task"] = per
    return s


def write_run(folder: Path, summaries: dict[str, list[dict]], write_config: bool = True) -> Path:
    """A run folder as ``ticl run`` leaves it: one seed -> <method>/summary.json; several ->
    <method>/seed<N>/summary.json plus the aggregate <method>/summary.json."""
    folder.mkdir(parents=True, exist_ok=True)
    seeds = sorted({s["seed"] for runs in summaries.values() for s in runs})
    if write_config:
        config = {"name": "hand", "methods": [{"name": m} for m in summaries]}
        if len(seeds) > 1:
            config["seeds"] = seeds
        (folder / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
    for method, runs in summaries.items():
        if len(runs) == 1:
            (folder / method).mkdir()
            (folder / method / "summary.json").write_text(json.dumps(runs[0]))
            continue
        for s in runs:
            (folder / method / f"seed{s['seed']}").mkdir(parents=True)
            (folder / method / f"seed{s['seed']}" / "summary.json").write_text(json.dumps(s))
        (folder / method / "summary.json").write_text(json.dumps(aggregate_summaries(runs)))
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
    assert a["storage_mb"] == pytest.approx(120 * 4 / 1e6)  # all tasks' own parameters, fp32
    assert a["train_seconds"] == pytest.approx(6.0) and f["train_seconds"] == pytest.approx(1.5)
    assert a["n_seeds"] == 1 and np.isnan(a["avg_accuracy_std"])
    assert not frame.loc["joint", "ranked"] and a["ranked"]
    assert shared_params(json.loads((single / "adapters" / "summary.json").read_text())) == BACKBONE


def test_multi_seed_mean_and_std(multi):
    runs = load_runs([multi])
    assert [len(r.seeds) for r in runs] == [3, 3]
    frame = method_frame(runs).set_index("method")
    seeds = [json.loads((multi / "adapters" / f"seed{s}" / "summary.json").read_text()) for s in range(3)]
    accs = [s["avg_accuracy"] for s in seeds]
    a = frame.loc["adapters"]
    assert a["n_seeds"] == 3 and a["seeds"] == "[0, 1, 2]"
    assert a["avg_accuracy"] == pytest.approx(np.mean(accs))
    assert a["avg_accuracy_std"] == pytest.approx(np.std(accs, ddof=1))
    aggregate = json.loads((multi / "adapters" / "summary.json").read_text())
    assert a["avg_accuracy_std"] == pytest.approx(aggregate["avg_accuracy_std"])  # same as the runner's
    assert a["train_seconds"] == pytest.approx(np.mean([3.0, 4.0, 5.0]))
    assert a["train_seconds_std"] == pytest.approx(1.0)
    last = [s["accuracy_matrix"][-1][0] for s in seeds]
    assert a["acc_T0"] == pytest.approx(np.mean(last)) and a["acc_T0_std"] == pytest.approx(np.std(last, ddof=1))
    md = to_markdown(method_frame(runs))
    cell = f"{100 * np.mean(accs):.1f} ± {100 * np.std(accs, ddof=1):.1f}"
    assert cell in md
    assert "Mean ± sample std over 3 seeds" in md
    assert "30" in md and "± 0.0K" not in md  # parameter counts carry no spread


def test_per_seed_summaries_are_read_from_seed_folders_if_the_aggregate_lacks_them(multi):
    path = multi / "adapters" / "summary.json"
    aggregate = json.loads(path.read_text())
    del aggregate["per_seed"]
    path.write_text(json.dumps(aggregate))
    run = load_runs([multi])[0]
    assert [s["seed"] for s in run.seeds] == [0, 1, 2]


# ------------------------------------------------------------------------------------------- best marking
def _md_rows(md: str) -> dict[str, list[str]]:
    lines = [line for line in md.splitlines() if line.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    rows = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(header, cells))
    return rows


def test_best_marking_directions(single):
    md = build_table([single], "md")
    rows = _md_rows(md)
    ad, ft, joint = rows["adapters"], rows["finetune"], rows["joint"]
    assert ad["Avg acc ↑"] == "**80.0**" and ft["Avg acc ↑"] == "70.0"  # higher is better
    assert ad["Forgetting ↓"] == "**0.0**" and not ft["Forgetting ↓"].startswith("**")  # lower is better
    assert ad["BWT ↑"] == "**0.0**" and ft["BWT ↑"] == "-30.0"  # higher is better
    assert ad["Params ↓"] == "**40**" and ad["% of FT ↓"].startswith("**")  # fewer is better
    assert ft["Time (s) ↓"] == "**1.5**"
    assert ad["T2 ↑"] == "70.0" and ft["T2 ↑"] == "**90.0**"
    # joint is shown but never ranked, though its forgetting (-50) and BWT (+50) would "win"
    assert "**" not in "".join(joint.values())
    assert "Not ranked: joint" in md
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
    assert rows["a"]["Avg acc ↑"] == rows["b"]["Avg acc ↑"] == "**80.0**"
    assert rows["c"]["Avg acc ↑"] == "70.0"
    assert not any(r["Params ↓"].startswith("**") for r in rows.values())  # same count everywhere


# ------------------------------------------------------------------------------------------------- formats
def test_latex_structure_and_escaping(tmp_path):
    run = write_run(tmp_path / "tex", {
        "my_adapters": [make_summary("my_adapters", "adapter_incremental", R_ADAPTER, pet="conv_pass")],
        "finetune": [make_summary("finetune", "finetune", R_FINETUNE)],
    })
    tex = build_table([run], "latex")
    assert tex.startswith("\\begin{table}") and tex.rstrip().endswith("\\end{table}")
    order = [tex.index(k) for k in ("\\caption{", "\\begin{tabular}", "\\toprule", "\\midrule", "\\bottomrule",
                                    "\\end{tabular}")]
    assert order == sorted(order)
    assert "my\\_adapters" in tex and "adapter\\_incremental" in tex and "conv\\_pass" in tex
    assert "\\% of FT $\\downarrow$" in tex and "Avg acc $\\uparrow$" in tex
    assert "\\textbf{80.0}" in tex and "$-$30.0" in tex
    body = tex[tex.index("\\midrule"):tex.index("\\bottomrule")].strip().splitlines()[1:]
    header = tex[tex.index("\\toprule"):tex.index("\\midrule")].strip().splitlines()[1]
    n_cols = len(re.search(r"\\begin\{tabular\}\{(\w+)\}", tex).group(1))
    assert len(body) == 2 and all(line.count("&") == n_cols - 1 for line in [header, *body])
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
    assert {"avg_accuracy", "avg_accuracy_std", "pct_full_ft", "full_ft_reference", "n_seeds"} <= set(back.columns)


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


def test_multi_seed_run_without_aggregate_is_an_error_that_names_finished_seeds(multi):
    (multi / "finetune" / "summary.json").unlink()
    with pytest.raises(UnfinishedRunError, match=r"multi/finetune: no summary.json.*seed0, seed1, seed2"):
        load_runs([multi])
    # ... and one seed of it can still be tabulated by naming its folders
    frame = method_frame(load_runs([multi / "finetune" / "seed0", multi / "finetune" / "seed1"]))
    assert list(frame["method"]) == ["finetune (seed0)", "finetune (seed1)"]


def test_aggregate_of_fewer_seeds_than_the_config_asks_for_is_an_error(multi):
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


# ------------------------------------------------------------------------------------ the real run folders
def test_real_default_folder():
    frame = method_frame(load_runs([DEFAULT])).set_index("method")
    assert list(frame.index) == ["aicl-gsa", "aicl-fta", "finetune"]
    for method in frame.index:
        s = json.loads((DEFAULT / method / "summary.json").read_text())
        row = frame.loc[method]
        assert row["avg_accuracy"] == pytest.approx(s["avg_accuracy"])
        assert row["avg_accuracy"] == pytest.approx(np.mean([row[f"acc_T{j}"] for j in range(5)]))
        assert row["train_seconds"] == pytest.approx(sum(p["train_seconds"] for p in s["per_task"]))
    assert frame.loc["finetune", "pct_full_ft"] == pytest.approx(100)
    rows = _md_rows(build_table([DEFAULT], "md"))
    assert rows["aicl-gsa"]["Avg acc ↑"] == "**88.5**" and rows["finetune"]["Forgetting ↓"] == "22.5"
    assert rows["finetune"]["BWT ↑"] == "-22.5" and rows["aicl-fta"]["GFLOPs ↓"] == "**0.118**"
    assert "Tasks: T0 harmonic_few+harmonic_many" in build_table([DEFAULT], "md")


def _committed_seed0_baselines() -> tuple[Path, list[Path]]:
    """A committed baselines run of which only seed 0 is finished (no aggregate summaries yet)."""
    for run in sorted((ROOT / "results" / "baselines").glob("*")):
        seeds = sorted(p for p in run.glob("*/seed0") if (p / "summary.json").is_file())
        if len(seeds) > 1 and not any((p.parent / "summary.json").is_file() for p in seeds):
            return run, seeds
    pytest.skip("no seed-0-only baselines run under results/baselines/")


def test_real_baselines_seed_folders_with_an_aicl_run():
    run, seed0 = _committed_seed0_baselines()
    with pytest.raises(UnfinishedRunError, match="seed0"):  # seed 0 of several: no aggregate yet
        load_runs([run])
    frame = method_frame(load_runs([*seed0, ROOT / "results" / "esc10"]))
    assert len(frame) == len(seed0) + 3
    assert frame["method"].is_unique
    aicl = [m for m in frame["method"] if m.startswith("aicl-gsa (")]
    assert len(aicl) == 2 and run.name in aicl[0] and "esc10" in aicl[1]
    finetune = frame.loc[frame["strategy"] == "finetune", "method"].tolist()
    # each row's % of full fine-tuning comes from the finetune row of its own run
    assert set(frame["full_ft_reference"]) == set(finetune)


def test_rows_on_different_tasks_are_ranked_apart(tmp_path):
    a = write_run(tmp_path / "a", {"x": [make_summary("x", "finetune", R_ADAPTER)],
                                   "y": [make_summary("y", "ewc", R_FINETUNE)]})
    other = make_summary("z", "lwf", R_FINETUNE)
    other["tasks"][0]["name"] = "something+else"
    b = write_run(tmp_path / "b", {"z": [other]})
    md = build_table([a, b], "md")
    rows = _md_rows(md)
    assert rows["x"]["Avg acc ↑"] == "**80.0**" and rows["y"]["Avg acc ↑"] == "70.0"
    assert rows["z"]["Avg acc ↑"] == "70.0"  # alone on its tasks: nothing to beat, not marked
    assert "2 different task sequences" in md and "Tasks:" not in md


# ------------------------------------------------------------------------------------------------- plots
def _is_png(path: Path) -> bool:
    return path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _is_pdf(path: Path) -> bool:
    return path.read_bytes()[:5] == b"%PDF-"


@pytest.mark.parametrize("kind", ["curves", "matrix", "pet"])
def test_each_plot_kind_writes_png_and_pdf(kind, single, multi, tmp_path):
    out = tmp_path / "plots"
    paths = plot_runs([single, multi], out, kind)
    assert sorted(p.name for p in paths) == [f"{kind}.pdf", f"{kind}.png"]
    assert _is_png(out / f"{kind}.png") and _is_pdf(out / f"{kind}.pdf")


def test_plot_all_on_the_real_default_folder_through_the_cli(tmp_path, capsys):
    assert main(["plot", str(DEFAULT), "--out", str(tmp_path)]) == 0
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


def test_cli_table_formats(single, tmp_path, capsys):
    assert main(["table", str(single), "--format", "csv", "--out", str(tmp_path / "t.csv")]) == 0
    assert pd.read_csv(tmp_path / "t.csv")["method"].tolist() == ["adapters", "finetune", "joint"]
    assert main(["table", str(single), "--format", "latex"]) == 0
    assert "\\toprule" in capsys.readouterr().out
