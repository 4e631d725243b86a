"""A search run on its own (``ticl run --search-only``) and applied by other runs (``--search-from``), and the search
cells of a sweep plan: how ``ticl sweep`` runs each search once and gets the very values of ``ticl run --seeds``."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from audio_ticl.benchmark import cli
from audio_ticl.benchmark.sweep.plan import grid, validate
from audio_ticl.benchmark.sweep.schema import load_sweep

pytestmark = pytest.mark.usefixtures("one_thread")

#: smoke, 2 tasks, a 2-point learning-rate search for fine-tuning whose points both differ from its config lr
SEARCHED = ["--preset", "smoke", "--methods", "finetune", "--set", "scenario.n_tasks=2",
            "--set", "tuning.protocol=first_tasks", "--set", "tuning.tasks=2", "--set", "tuning.budget=2",
            "--set", "methods.finetune.search={train.lr: [1.0e-5, 1.0e-2]}"]


def _summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


@pytest.fixture(scope="module")
def serial(tmp_path_factory):
    """``ticl run --seeds 0,1``: the search under seed 0, its values fixed for both seeds."""
    out = tmp_path_factory.mktemp("serial") / "run"
    assert cli.main(["run", *SEARCHED, "--seeds", "0,1", "--out", str(out), "--no-progress"]) == 0
    return out


def test_a_search_run_alone_and_applied_to_another_seed_equals_the_multi_seed_run(serial, tmp_path, capsys):
    search = tmp_path / "search"
    assert cli.main(["run", *SEARCHED, "--seed", "0", "--search-only", "--out", str(search), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    record = json.loads((search / "tuning" / "finetune" / "search.json").read_text())
    assert f"finetune: {record['chosen']}" in printed
    assert not (search / "finetune").exists()  # only the search ran
    assert record == json.loads((serial / "tuning" / "finetune" / "search.json").read_text())

    seed1 = tmp_path / "seed1"
    assert cli.main(["run", *SEARCHED, "--seed", "1", "--search-from", str(search), "--out", str(seed1),
                     "--no-progress"]) == 0
    assert not list((seed1 / "tuning").rglob("trial_*"))  # nothing searched again
    applied = json.loads((seed1 / "tuning" / "finetune" / "search.json").read_text())
    assert applied["searched_in"] == str(search.resolve()) and applied["chosen"] == record["chosen"]
    mine, theirs = _summary(seed1 / "finetune"), _summary(serial / "finetune" / "seed1")
    assert mine["hyperparameters"]["source"] == "search"
    assert mine["hyperparameters"]["train"]["lr"] == record["chosen"]["train.lr"] != 3.0e-4
    for key in ("hyperparameters", "accuracy_matrix", "correct", "seed"):
        assert mine[key] == theirs[key], key


def test_a_search_only_folder_resumes_into_the_full_run(serial, tmp_path):
    out = tmp_path / "run"
    assert cli.main(["run", *SEARCHED, "--seeds", "0,1", "--search-only", "--out", str(out), "--no-progress"]) == 0
    trial = out / "tuning" / "finetune" / "trial_00" / "summary.json"
    before = trial.stat().st_mtime_ns
    assert cli.main(["run", *SEARCHED, "--seeds", "0,1", "--resume", "--out", str(out), "--no-progress"]) == 0
    assert trial.stat().st_mtime_ns == before  # the trials were kept, not rerun
    assert _summary(out / "finetune" / "seed1")["accuracy_matrix"] == \
        _summary(serial / "finetune" / "seed1")["accuracy_matrix"]


def test_search_from_refuses_another_config_a_missing_search_and_a_missing_folder(serial, tmp_path, capsys):
    def error(*extra: str) -> str:
        assert cli.main(["run", *SEARCHED, *extra, "--out", str(tmp_path / "x"), "--no-progress"]) == 2
        return capsys.readouterr().err

    err = error("--set", "train.epochs=2", "--search-from", str(serial))
    assert "differs at train.epochs (1 -> 2)" in err and str(serial) in err
    err = error("--set", "methods.finetune.search={train.lr: [1.0e-5, 1.0e-3]}", "--search-from", str(serial))
    assert "methods.finetune.search" in err
    assert "does not exist" in error("--search-from", str(tmp_path / "nowhere"))
    bare = tmp_path / "bare"
    assert cli.main(["run", *SEARCHED, "--set", "tuning.protocol=none", "--out", str(bare), "--no-progress"]) == 0
    capsys.readouterr()
    assert "tuning.protocol" in error("--search-from", str(bare))  # its config did not search
    (serial / "tuning" / "finetune" / "search.json").rename(serial / "search.json.away")
    try:
        err = error("--search-from", str(serial))
        assert "no finished search of method 'finetune'" in err and "--search-only" in err
    finally:
        (serial / "search.json.away").rename(serial / "tuning" / "finetune" / "search.json")


def _sweep(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


TUNED = {"preset": "smoke", "set": {"scenario.n_tasks": 2, "tuning.protocol": "first_tasks", "tuning.budget": 2}}


def test_a_plan_runs_each_search_once_under_the_first_seed_before_the_cells_that_apply_it(tmp_path):
    sweep = load_sweep(_sweep(tmp_path, {"base": TUNED, "axes": {"method": ["finetune", "aicl-gsa"],
                                                                  "seed": [3, 1, 2]}}))
    cells = grid(sweep).cells
    searches = [c for c in cells if c.kind == "search"]
    assert [c.id for c in searches] == ["search,method=finetune", "search,method=aicl-gsa"]
    assert all(c.seed == 3 for c in searches)  # the first seed of the axis, as ticl run --seeds 3,1,2 searches
    runs = [c for c in cells if c.kind == "run"]
    assert [c.id for c in runs] == [f"method={m},seed={s}" for m in ("finetune", "aicl-gsa") for s in (3, 1, 2)]
    assert cells.index(searches[-1]) < cells.index(runs[0])
    for run in runs:
        method = run.id.split(",")[0].removeprefix("method=")
        assert run.after == (f"search,method={method}",)
        args = run.run_args(tmp_path / "out")
        assert args[args.index("--search-from") + 1] == str(tmp_path / "out" / f"search,method={method}")
    assert "--search-only" in searches[0].run_args(tmp_path / "out")
    assert set(validate(sweep, cells).methods.values()) == {("finetune",), ("aicl-gsa",)}


def test_a_declared_tuning_seed_is_the_search_seed_and_a_config_without_search_has_no_search_cells(tmp_path):
    tuned = {**TUNED, "set": {**TUNED["set"], "tuning.seed": 7}}
    cells = grid(load_sweep(_sweep(tmp_path, {"base": tuned, "axes": {"seed": [0, 1]}}))).cells
    assert [(c.id, c.seed) for c in cells if c.kind == "search"] == [("search", 7)]
    assert all(c.search == "search" for c in cells if c.kind == "run")
    plain = grid(load_sweep(_sweep(tmp_path, {"base": {"preset": "smoke"}, "axes": {"seed": [0, 1]}}))).cells
    assert [c.kind for c in plain] == ["run", "run"] and all(c.after == () for c in plain)


def test_methods_without_a_search_are_left_out_of_the_search_cell(tmp_path):
    base = {**TUNED, "set": {**TUNED["set"], "methods.aicl-fta.search": {}}}
    cells = grid(load_sweep(_sweep(tmp_path, {"base": base, "axes": {"seed": [0, 1]}}))).cells
    search = next(c for c in cells if c.kind == "search")
    assert search.methods == ("aicl-gsa", "finetune") and search.id == "search,methods=aicl-gsa+finetune"


@pytest.mark.parametrize("name", ["fsdd", "esc10"])
def test_the_committed_baseline_sweeps_plan_exactly_their_tables_cells(name):
    from audio_ticl.benchmark.checkpoint import plain_config
    from audio_ticl.benchmark.config import to_dict
    from audio_ticl.benchmark.run_folder import differences

    folder = Path(__file__).resolve().parents[1] / "results" / "baselines" / name
    cells = grid(load_sweep(folder / f"baselines-{name}-sweep.yaml")).cells
    saved = plain_config(yaml.safe_load((folder / "config.yaml").read_text()))
    methods = [m["name"] for m in saved["methods"]]
    table = {(m, s) for m in methods for s in saved["seeds"] if (folder / m / f"seed{s}" / "summary.json").is_file()}
    assert len(table) == len(methods) * len(saved["seeds"]) == 36
    assert {(c.methods[0], c.seed) for c in cells if c.kind == "run"} == table
    searches = [c for c in cells if c.kind == "search"]
    assert sorted(c.methods[0] for c in searches) == sorted(p.parent.name for p in folder.glob("tuning/*/search.json"))
    assert {c.seed for c in searches} == {saved["seeds"][0]}
    for cell in cells:  # the table's config, seeds and data root aside (and keys added since, absent from it)
        cfg = plain_config(to_dict(cell.load()))
        found = [(k, old, new) for k, old, new in differences(
            {k: v for k, v in saved.items() if k not in ("seed", "seeds", "methods")},
            {k: v for k, v in cfg.items() if k not in ("seed", "methods")}) if k != "data.root" and old is not None]
        assert not found, (cell.id, found)
        (method,) = cfg["methods"]
        assert method == next(m for m in saved["methods"] if m["name"] == method["name"]), cell.id
