"""The whole path through the `ticl` command on the smoke preset: run folder contents and summary schema."""
import json

import pandas as pd
import pytest

from audio_ticl.benchmark.cli import main

SUMMARY_KEYS = {"preset", "method", "strategy", "seed", "tasks", "accuracy_matrix", "correct", "avg_accuracy",
                "plasticity", "avg_forgetting", "bwt", "per_task", "environment", "hyperparameters", "schema_version"}
PER_TASK_KEYS = {"task", "trainable_params", "task_specific_params", "total_params", "method_state_bytes",
                 "gflops_per_sample", "tokens", "train_seconds", "peak_memory_mb", "peak_memory_kind",
                 "eval_samples_per_second", "best_epoch", "val_accuracy", "val_loss", "samples_per_epoch"}


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "smoke"
    assert main(["run", "--preset", "smoke", "--out", str(out), "--no-progress"]) == 0
    return out


def test_run_folder_has_every_output(smoke_run):
    assert (smoke_run / "table.md").is_file()
    assert (smoke_run / "config.yaml").is_file()
    for method in ("aicl-gsa", "aicl-fta", "finetune"):
        folder = smoke_run / method
        for name in ("config.yaml", "metrics.csv", "accuracy_matrix.csv", "accuracy_vs_task.png", "summary.json"):
            assert (folder / name).is_file(), folder / name
        assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["task_00.pt", "task_01.pt", "task_02.pt"]
        assert not list(folder.rglob("*.tmp")), "a temporary file was left behind"


def test_summary_schema(smoke_run):
    summary = json.loads((smoke_run / "aicl-fta" / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary)
    T = len(summary["tasks"])
    assert T == 3
    R = summary["accuracy_matrix"]
    assert len(R) == T and all(len(row) == T for row in R)
    for i, row in enumerate(R):  # each cell is the share of correct test clips behind it
        assert row == [c.count("1") / len(c) for c in summary["correct"][i]]
    for task in summary["tasks"]:
        assert {"id", "name", "classes", "n_train", "n_val", "n_test"} <= set(task)
        assert task["n_train"] == 12 and task["n_val"] == 6 and task["n_test"] == 8
    assert len(summary["per_task"]) == T
    for row in summary["per_task"]:
        assert PER_TASK_KEYS <= set(row)
        assert row["gflops_per_sample"] > 0 and row["train_seconds"] > 0
        assert 0 < row["task_specific_params"] < row["total_params"]
    assert {"torch", "device", "threads", "git_commit", "dirty"} <= set(summary["environment"])


def test_adapters_do_not_forget_and_finetune_trains_more(smoke_run):
    aicl = json.loads((smoke_run / "aicl-gsa" / "summary.json").read_text())
    finetune = json.loads((smoke_run / "finetune" / "summary.json").read_text())
    R = aicl["accuracy_matrix"]
    # frozen backbone + frozen per-task modules: every earlier task's accuracy is unchanged to the last digit
    for j in range(len(R)):
        assert {R[i][j] for i in range(j, len(R))} == {R[j][j]}
    assert aicl["avg_forgetting"] == 0.0
    # AI-CL trains exactly the current task's adapters and head; fine-tuning trains the backbone too
    for row in aicl["per_task"]:
        assert row["trainable_params"] == row["task_specific_params"]
    for row in finetune["per_task"]:
        assert row["trainable_params"] > row["total_params"] - 3 * row["task_specific_params"]
        assert row["trainable_params"] > aicl["per_task"][row["task"]]["trainable_params"]


def test_metrics_csv_holds_avalanche_training_metrics_and_no_second_evaluation(smoke_run):
    frame = pd.read_csv(smoke_run / "finetune" / "metrics.csv")
    names = set(frame["metric"])
    assert {f"Top1_Acc_Epoch/train_phase/train_stream/Task{t:03d}" for t in range(3)} <= names
    assert {f"Loss_Epoch/train_phase/train_stream/Task{t:03d}" for t in range(3)} <= names
    # the test numbers come from one evaluation (summary.json), never from a second, Avalanche-side one
    assert not any("eval_phase" in n for n in names)


def test_table_lists_every_method(smoke_run):
    table = (smoke_run / "table.md").read_text()
    for method in ("aicl-gsa", "aicl-fta", "finetune"):
        assert method in table


def test_finished_run_is_not_overwritten(smoke_run, capsys):
    assert main(["run", "--preset", "smoke", "--out", str(smoke_run), "--no-progress"]) == 2
    assert "already holds finished results" in capsys.readouterr().err


def test_resume_continues_after_the_last_checkpoint(smoke_run, tmp_path):
    import shutil

    # simulate a run killed after task 1 of the last method: drop its summary and its last checkpoint
    out = tmp_path / "resumed"
    shutil.copytree(smoke_run, out)
    (out / "finetune" / "summary.json").unlink()
    (out / "finetune" / "checkpoints" / "task_02.pt").unlink()
    assert main(["run", "--preset", "smoke", "--out", str(out), "--resume", "--no-progress"]) == 0
    before = json.loads((smoke_run / "finetune" / "summary.json").read_text())
    after = json.loads((out / "finetune" / "summary.json").read_text())
    assert after["accuracy_matrix"][:2] == before["accuracy_matrix"][:2]
    flat = [v for row in after["accuracy_matrix"] for v in row]
    assert flat == pytest.approx([v for row in before["accuracy_matrix"] for v in row])  # same seed and machine


def test_missing_data_root_is_a_clear_error(tmp_path, capsys):
    missing = tmp_path / "no-such-esc50"
    assert main(["run", "--preset", "esc50-cpu", "--data-root", str(missing), "--out", str(tmp_path / "o")]) == 2
    assert str(missing) in capsys.readouterr().err


def test_presets_command_lists_presets(capsys):
    assert main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "default" in out and "esc50-cpu" in out


def test_several_seeds_give_mean_and_std(tmp_path):
    out = tmp_path / "seeds"
    args = ["run", "--preset", "smoke", "--seeds", "0,1", "--out", str(out), "--no-progress",
            "--set", "scenario.n_tasks=2", "--set", "methods=[{name: ft, strategy: finetune}]"]
    assert main(args) == 0
    per_seed = [json.loads((out / "ft" / f"seed{s}" / "summary.json").read_text()) for s in (0, 1)]
    aggregate = json.loads((out / "ft" / "summary.json").read_text())
    assert aggregate["seeds"] == [0, 1] and [s["seed"] for s in aggregate["per_seed"]] == [0, 1]
    assert "avg_accuracy" not in aggregate  # aggregates are computed on read, by one path
    from audio_ticl.benchmark.report.collect import load_runs, method_frame

    row = method_frame(load_runs([out])).iloc[0]
    values = [s["avg_accuracy"] for s in per_seed]
    assert row["avg_accuracy"] == pytest.approx(sum(values) / 2)
    assert row["avg_accuracy_std"] == pytest.approx(abs(values[0] - values[1]) / 2 ** 0.5)
    assert "±" in (out / "table.md").read_text()


def test_bad_seed_list_is_rejected(capsys):
    with pytest.raises(SystemExit):
        main(["run", "--seeds", "0,x"])
    assert "comma-separated integers" in capsys.readouterr().err


STATEFUL = (
    "methods=[{name: ewc, strategy: ewc, strategy_options: {ewc_lambda: 50.0}},"
    " {name: si, strategy: si},"
    " {name: replay, strategy: replay, strategy_options: {mem_size: 12}},"
    " {name: agem, strategy: agem, strategy_options: {patterns_per_exp: 6, sample_size: 8}}]"
)


def test_resume_restores_importances_and_memories(tmp_path, caplog):
    """A run killed after task 1 and resumed gives the uninterrupted run's numbers, for every strategy whose
    state lives outside the model (EWC/SI importances, replay and A-GEM memories)."""
    import shutil

    args = ["run", "--preset", "smoke", "--no-progress", "--set", "scenario.n_tasks=3", "--set", STATEFUL]
    full = tmp_path / "full"
    assert main([*args, "--out", str(full)]) == 0
    resumed = tmp_path / "resumed"
    shutil.copytree(full, resumed)
    for name in ("ewc", "si", "replay", "agem"):
        (resumed / name / "summary.json").unlink()
        (resumed / name / "checkpoints" / "task_02.pt").unlink()
    caplog.clear()
    assert main([*args, "--out", str(resumed), "--resume"]) == 0
    assert "without its state" not in caplog.text
    for name in ("ewc", "si", "replay", "agem"):
        before = json.loads((full / name / "summary.json").read_text())["accuracy_matrix"]
        after = json.loads((resumed / name / "summary.json").read_text())["accuracy_matrix"]
        assert [v for row in after for v in row] == pytest.approx([v for row in before for v in row]), name


def test_table_md_and_ticl_table_are_one_aggregation(smoke_run, capsys):
    assert main(["table", str(smoke_run)]) == 0
    printed = capsys.readouterr().out
    written = (smoke_run / "table.md").read_text()
    assert printed.strip() and printed.strip() in written  # table.md = a header + exactly what `ticl table` prints


def test_methods_runs_only_the_methods_named(tmp_path, capsys):
    out = tmp_path / "one"
    assert main(["run", "--preset", "smoke", "--methods", "finetune", "--out", str(out), "--no-progress"]) == 0
    assert (out / "finetune" / "summary.json").is_file()
    assert not (out / "aicl-gsa").exists() and not (out / "aicl-fta").exists()
    assert "- name: aicl-gsa" not in (out / "config.yaml").read_text()
    assert main(["run", "--preset", "smoke", "--methods", "finetune,lwf", "--out", str(tmp_path / "x")]) == 2
    assert "--methods: lwf not in 'smoke', whose methods are aicl-gsa, aicl-fta, finetune" in capsys.readouterr().err
