"""The real-data CPU presets stay runnable: each runs end to end, shrunk with --set, on real or fixture data."""
import json

import pytest
from fixtures import make_speechcommands_fixture, shared_data

from audio_ticl.benchmark.cli import main

TINY = [
    "model.embed_dim=32", "model.depth=1", "model.num_heads=2",
    "model.upstream.epochs=1", "model.upstream.clips_per_class=6",
    "train.epochs=1", "train.batch_size=8",
    # the declared search runs, one trial a method on the first task (the tuning tests cover the protocol itself)
    "tuning.budget=1", "tuning.tasks=1",
]


def _run(preset, root, out, extra=()):
    args = ["run", "--preset", preset, "--data-root", str(root), "--out", str(out), "--no-progress"]
    for item in [*TINY, *extra]:
        args += ["--set", item]
    assert main(args) == 0
    return {m: json.loads((out / m / "summary.json").read_text()) for m in ("aicl-gsa", "aicl-fta", "finetune")}


@pytest.mark.slow
def test_speechcommands_preset_on_a_fixture(tmp_path):
    from audio_ticl.benchmark.datasets import COMMAND_WORDS

    root = make_speechcommands_fixture(tmp_path / "sc", COMMAND_WORDS, speakers=3, takes=1)
    summaries = _run("speechcommands-cpu", root, tmp_path / "run")
    tasks = summaries["aicl-gsa"]["tasks"]
    assert [t["classes"] for t in tasks] == [["yes", "no"], ["up", "down"], ["left", "right"], ["on", "off"],
                                             ["stop", "go"]]
    assert all((t["n_train"], t["n_val"], t["n_test"]) == (2, 2, 2) for t in tasks)


@pytest.mark.slow
def test_esc50_preset_on_the_shared_esc10(tmp_path):
    esc10 = shared_data("esc50-subset")
    summaries = _run(
        "esc50-cpu", esc10, tmp_path / "run",
        ["data.options.classes=[dog, rooster, rain, sea_waves]", "scenario.n_tasks=2"],
    )
    tasks = summaries["finetune"]["tasks"]
    assert len(tasks) == 2
    assert sorted(c for t in tasks for c in t["classes"]) == ["dog", "rain", "rooster", "sea_waves"]
    assert all((t["n_train"], t["n_val"], t["n_test"]) == (48, 16, 16) for t in tasks)  # folds 1-3 / 4 / 5


@pytest.mark.slow
def test_fsdd_preset_on_the_shared_recordings(tmp_path):
    summaries = _run("fsdd-cpu", shared_data("fsdd"), tmp_path / "run", ["scenario.n_tasks=1"])
    (task,) = summaries["aicl-fta"]["tasks"]
    assert task["classes"] == ["0", "1"]
    # 6 speakers x 50 takes per digit: takes 0-4 test, 5-9 validation, 10-49 training
    assert (task["n_train"], task["n_val"], task["n_test"]) == (480, 60, 60)


@pytest.mark.slow
def test_baselines_preset_runs_every_strategy(tmp_path):
    esc10 = shared_data("esc50-subset")
    out = tmp_path / "run"
    args = ["run", "--preset", "baselines-esc50-cpu", "--data-root", str(esc10), "--out", str(out),
            "--no-progress", "--set", "data.options.classes=[dog, rooster, rain, sea_waves]",
            "--set", "scenario.n_tasks=2"]
    for item in TINY:
        args += ["--set", item]
    assert main(args) == 0
    from audio_ticl.benchmark.config import load_config

    names = [m.name for m in load_config("baselines-esc50-cpu").methods]
    assert len(names) == 12 and "aicl-fta" in names
    for name in names:
        summary = json.loads((out / name / "summary.json").read_text())
        assert summary["hyperparameters"]["source"] == "search", name
        assert (out / "tuning" / name / "search.json").is_file(), name
        for i, row in enumerate(summary["accuracy_matrix"]):
            assert row == [c.count("1") / len(c) for c in summary["correct"][i]], name
