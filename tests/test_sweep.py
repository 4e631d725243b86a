"""``ticl sweep``: the sweep file, its cells and ids, validation of every cell before any work, and runs on a real
local Ray (each cell one ``ticl run`` of the ``smoke`` preset): a failing cell reported without stopping the others, a
killed sweep resumed to the uninterrupted results, ``ticl table`` over a sweep folder, and the install hint without
Ray."""
from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from audio_ticl.benchmark import cli
from audio_ticl.benchmark.errors import ConfigError
from audio_ticl.benchmark.sweep.plan import MAX_ID, grid, validate
from audio_ticl.benchmark.sweep.record import SWEEP_FILE, prepare_folder, record
from audio_ticl.benchmark.sweep.schema import load_sweep, yaml_text

pytestmark = pytest.mark.usefixtures("one_thread")

BASE = {"preset": "smoke", "set": {"scenario.n_tasks": 2}}


def _write(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _summary(folder: Path, method: str) -> dict:
    return json.loads((folder / method / "summary.json").read_text())


# --------------------------------------------------------------------------------------- the file and its cells
def test_plan_counts_a_2x2_grid_with_an_exclusion_and_its_ids_are_stable(tmp_path, capsys):
    file = _write(tmp_path / "grid.yaml", {"base": BASE, "axes": {"method": ["finetune", "aicl-gsa"], "seed": [0, 1]},
                                           "exclude": [{"method": "aicl-gsa", "seed": 1}]})
    assert cli.main(["sweep", "plan", str(file), "--out", str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    ids = ["method=finetune,seed=0", "method=finetune,seed=1", "method=aicl-gsa,seed=0"]
    assert [line for line in out.splitlines() if not line.startswith(" ")][:3] == ids
    assert "3 cells (1 excluded)" in out
    assert (f"ticl run --preset smoke --seed 1 --set scenario.n_tasks=2 --methods finetune --out "
            f"{tmp_path / 'out' / 'method=finetune,seed=1'}") in out
    assert [c.id for c in grid(load_sweep(file)).cells] == ids  # the same ids every time the file is read
    assert not (tmp_path / "out").exists()  # plan writes nothing


def test_cell_ids_are_filesystem_safe_distinct_and_short(tmp_path):
    long = "x" * 150
    file = _write(tmp_path / "ids.yaml", {"base": BASE, "axes": {
        "set.features.cache_dir": ["/tmp/a/b", "/tmp/a_b", long], "set.train.lr": [1.0e-4]}})
    ids = [c.id for c in grid(load_sweep(file)).cells]
    assert len(set(ids)) == 3 and all(len(i) <= MAX_ID and "/" not in i and " " not in i for i in ids)
    # /tmp/a/b and /tmp/a_b read the same once made safe: each gets a hash of its values
    assert all(i.startswith("features.cache_dir=tmp_a_b,train.lr=0.0001-") for i in ids[:2])
    assert ids[2].startswith("features.cache_dir=xxxx") and ids[2][-9] == "-"  # a readable prefix and a hash
    assert ids == [c.id for c in grid(load_sweep(file)).cells]


@pytest.mark.parametrize("data, key", [
    ({"base": BASE, "axis": {}}, "'axis' is unknown"),
    ({"base": BASE, "axes": {"colour": ["red"]}}, "'axes.colour' is not an axis"),
    ({"base": BASE, "axes": {"seed": [0, "one"]}}, "'axes.seed[1]' must be an integer"),
    ({"base": BASE, "axes": {"seed": [0, 1]}, "exclude": [{"seed": 2}]}, "'exclude[0].seed' is 2"),
    ({"base": BASE, "axes": {"seed": [0]}, "exclude": [{"method": "x"}]}, "'exclude[0].method' is not an axis"),
    ({"base": BASE, "resources": {"gpus": -1}}, "'resources.gpus' must be a number >= 0"),
    ({"base": {"preset": "no-such-preset"}}, "'base.preset' names the unknown preset"),
    ({"base": {"config": "missing.yaml"}}, "'base.config' names the config file"),
    ({"axes": {"seed": [0]}}, "'base' must name a preset or a config file"),
])
def test_a_bad_sweep_file_names_the_file_and_the_key(tmp_path, data, key):
    file = _write(tmp_path / "bad.yaml", data)
    with pytest.raises(ConfigError, match="sweep file") as info:
        load_sweep(file)
    assert str(file) in str(info.value) and key in str(info.value)


def test_a_bad_key_in_one_cell_fails_before_anything_runs_naming_the_cell(tmp_path, capsys):
    file = _write(tmp_path / "bad.yaml", {"base": BASE, "axes": {
        "seed": [0, 1], "set.methods.finetune.strategy_options": [{}, {"no_such_option": 1}]}})
    out = tmp_path / "out"
    for command in ("plan", "run"):
        assert cli.main(["sweep", command, str(file), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("ticl: error: ") and err.count("\n") == 1
        assert "cell seed=0,methods.finetune.strategy_options=no_such_option_1:" in err
        assert "methods.2.strategy_options" in err and "no_such_option" in err
    assert not out.exists()


def test_identical_configs_are_built_once(tmp_path, monkeypatch):
    from audio_ticl.benchmark import preflight

    built = []
    monkeypatch.setattr(preflight, "preflight", lambda cfg: built.append([m.name for m in cfg.methods]))
    file = _write(tmp_path / "grid.yaml", {"base": BASE, "axes": {"method": ["finetune", "aicl-gsa"],
                                                                  "seed": [0, 1, 2]}})
    sweep = load_sweep(file)
    checked = validate(sweep, grid(sweep).cells)
    assert built == [["finetune"], ["aicl-gsa"]] and checked.builds == 2  # the seed does not change what is built
    assert checked.methods["method=aicl-gsa,seed=2"] == ("aicl-gsa",)


def test_without_ray_sweep_run_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    file = _write(tmp_path / "grid.yaml", {"base": BASE, "axes": {"method": ["finetune"]}})
    assert cli.main(["sweep", "run", str(file), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ticl: error: ") and "pip install 'audio-ticl[sweep]'" in err
    assert not (tmp_path / "out").exists()
    assert cli.main(["sweep", "plan", str(file)]) == 0  # plan needs no Ray


def test_a_folder_holds_one_sweep(tmp_path):
    a = load_sweep(_write(tmp_path / "a.yaml", {"base": BASE, "axes": {"seed": [0, 1]}}))
    b = load_sweep(_write(tmp_path / "b.yaml", {"base": BASE, "axes": {"seed": [0, 2]}}))
    out = tmp_path / "out"
    prepare_folder(out, record(a, grid(a).cells, out), resume=False)
    assert yaml.safe_load((out / SWEEP_FILE).read_text())["cells"][1]["id"] == "seed=1"
    with pytest.raises(ConfigError, match="pass --resume"):
        prepare_folder(out, record(a, grid(a).cells, out), resume=False)
    prepare_folder(out, record(a, grid(a).cells, out), resume=True)
    with pytest.raises(ConfigError, match="holds another sweep.*only in the folder: seed=1.*only in the sweep file: "
                                          "seed=2"):
        prepare_folder(out, record(b, grid(b).cells, out), resume=True)
    with pytest.raises(ConfigError, match="holds no sweep"):
        prepare_folder(tmp_path / "empty", record(a, grid(a).cells, out), resume=True)


# ------------------------------------------------------------------------------------------- on a local Ray
def _grid_file(folder: Path, exclude: list[dict]) -> Path:
    """The runs' sweep: smoke x {finetune, aicl-gsa} x seeds {0, 1}, plus one cell of a config whose dataset folder
    does not exist (it fails at run time, after validation)."""
    _write(folder / "missing-data.yaml", {
        "name": "missing-data", "data": {"source": "fsdd", "root": str(folder / "no-such-dataset")},
        "model": {"embed_dim": 32, "depth": 1, "num_heads": 2}, "train": {"epochs": 1},
        "methods": [{"name": "finetune", "strategy": "finetune"},
                    {"name": "aicl-gsa", "strategy": "adapter_incremental", "pet": "convpass"}]})
    return _write(folder / "sweep.yaml", {
        "base": {"set": {"scenario.n_tasks": 2}},
        "axes": {"preset": ["smoke", "missing-data.yaml"], "method": ["finetune", "aicl-gsa"], "seed": [0, 1]},
        "exclude": [{"preset": "missing-data.yaml", "method": "aicl-gsa"}, {"preset": "missing-data.yaml", "seed": 1},
                    *exclude]})


GOOD = [f"preset=smoke,method={m},seed={s}" for m in ("finetune", "aicl-gsa") for s in (0, 1)]
FAILING = "preset=missing-data.yaml,method=finetune,seed=0"


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray", reason="ticl sweep run needs Ray: pip install 'audio-ticl[sweep]'")
    ray.init(address="local", num_cpus=2, include_dashboard=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def grid_run(local_ray, tmp_path_factory):
    """One uninterrupted sweep of the 2x2 grid and the failing cell, on the module's local Ray (2 CPUs)."""
    folder = tmp_path_factory.mktemp("sweep")
    file, out = _grid_file(folder, []), folder / "out"
    logger = logging.getLogger("ticl")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        code = cli.main(["sweep", "run", str(file), "--out", str(out), "--no-progress"])
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return {"folder": folder, "file": file, "out": out, "code": code, "log": [r.getMessage() for r in records]}


@pytest.mark.slow
def test_a_local_ray_runs_a_2x2_grid_end_to_end(grid_run, capsys):
    out = grid_run["out"]
    for cid in GOOD:
        method = cid.split("method=")[1].split(",")[0]
        summary = _summary(out / cid, method)
        assert summary["seed"] == int(cid[-1]) and len(summary["accuracy_matrix"]) == 2
        assert "ticl run --preset smoke" in (out / cid / "cell.log").read_text()
    saved = yaml.safe_load((out / SWEEP_FILE).read_text())
    assert [c["id"] for c in saved["cells"]] == [*GOOD, FAILING]
    assert saved["file"]["axes"]["method"] == ["finetune", "aicl-gsa"]
    assert any(re.fullmatch(r"sweep: [0-4]/5 done, [12] running, [01] failed, [0-3] queued", line)
               for line in grid_run["log"])  # progress: the counts, as log lines
    # the same sweep again without --resume is refused
    assert cli.main(["sweep", "run", str(grid_run["file"]), "--out", str(out)]) == 2
    assert "pass --resume" in capsys.readouterr().err


@pytest.mark.slow
def test_a_failing_cell_is_reported_with_its_log_and_the_others_finish(grid_run, capsys):
    out, log = grid_run["out"], grid_run["log"]
    assert grid_run["code"] == 2  # a TICLError listing the failed cells
    assert all((out / cid / cid.split("method=")[1].split(",")[0] / "summary.json").is_file() for cid in GOOD)
    cell_log = out / FAILING / "cell.log"
    assert "FSDD folder not found" in cell_log.read_text()
    failed = [line for line in log if line.startswith(f"cell failed: {FAILING} ")]
    assert failed and "exit status 2" in failed[0] and str(cell_log) in failed[0]
    # a sweep folder with a failed cell is unfinished: ticl table names the cell's folder
    assert cli.main(["table", str(out)]) == 2
    err = capsys.readouterr().err
    assert FAILING in err and "unfinished" in err


def _processes_mentioning(*texts: str) -> list[int]:
    """Pids whose command line mentions every one of ``texts`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if all(text in line for text in texts):
                found.append(int(entry.name))
    return found


def _wait_for(condition, seconds: float, driver: subprocess.Popen, log: Path, poll: float = 0.05) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert driver.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(poll)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc: no cell outlives its sweep")
def test_a_killed_sweep_resumes_to_the_uninterrupted_results(grid_run, tmp_path, caplog, capsys):
    # the grid's finetune cells as a sweep of their own, one cell at a time
    file = _grid_file(tmp_path, [{"preset": "missing-data.yaml"}, {"method": "aicl-gsa"}])
    out, log = tmp_path / "out", tmp_path / "driver.log"
    first, second = out / GOOD[0], out / GOOD[1]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    with open(log, "w") as stream:
        driver = subprocess.Popen(
            [sys.executable, "-m", "audio_ticl.benchmark", "sweep", "run", str(file), "--out", str(out),
             "--num-cpus", "2", "--max-concurrent", "1", "--no-progress"],
            stdout=stream, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        _wait_for(lambda: (first / "finetune" / "summary.json").is_file(), 600, driver, log, poll=0.2)
        # the second cell half-way: its first task checkpointed; held there, then the sweep is SIGKILLed
        _wait_for(lambda: (second / "finetune" / "checkpoints" / "task_00.pt").is_file(), 300, driver, log)
        for pid in _processes_mentioning("audio_ticl.benchmark.sweep.cell", str(second)):
            os.kill(pid, signal.SIGSTOP)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        deadline = time.monotonic() + 60  # the cells die with their Ray workers, a stopped one too
        while _processes_mentioning(str(out)) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _processes_mentioning(str(out)) == []
    finally:
        try:
            os.killpg(driver.pid, signal.SIGKILL)  # what is left of the session it started (Ray's agents)
        except ProcessLookupError:
            pass
    partial = not (second / "finetune" / "summary.json").is_file()  # unless it finished before it was held
    with caplog.at_level(logging.INFO, logger="ticl"):
        assert cli.main(["sweep", "run", str(file), "--out", str(out), "--resume", "--no-progress"]) == 0
    assert f"sweep: {1 if partial else 2} of 2 cells finished before, skipped" in caplog.text
    if partial:  # held after its first checkpoint, or (on a loaded machine) after its second, before the summary
        assert re.search(r"finetune: resuming after task [01] ", (second / "cell.log").read_text())
    for cid in GOOD[:2]:
        got, want = _summary(out / cid, "finetune"), _summary(grid_run["out"] / cid, "finetune")
        np.testing.assert_allclose(got["accuracy_matrix"], want["accuracy_matrix"], rtol=0, atol=1e-6)
    # the finished sweep's table: one row over the two seeds, named by the axis that varies
    capsys.readouterr()
    assert cli.main(["table", str(out), "--format", "csv"]) == 0
    frame = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(frame["method"]) == ["finetune (preset=smoke)"] and list(frame["n_seeds"]) == [2]


@pytest.mark.slow
def test_table_and_plot_of_a_sweep_folder_group_its_cells_by_axis_values(grid_run, tmp_path, capsys):
    # the grid's four smoke cells as a sweep of their own (method x seed), its folder made from the finished runs
    sweep = load_sweep(_write(tmp_path / "grid.yaml", {"base": BASE, "axes": {"method": ["finetune", "aicl-gsa"],
                                                                              "seed": [0, 1]}}))
    out = tmp_path / "out"
    cells = grid(sweep).cells
    prepare_folder(out, record(sweep, cells, out), resume=False)
    for cell in cells:
        shutil.copytree(grid_run["out"] / f"preset=smoke,{cell.id}", out / cell.id)
    assert cli.main(["table", str(out), "--format", "csv"]) == 0
    frame = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert list(frame["method"]) == ["finetune", "aicl-gsa"] and list(frame["n_seeds"]) == [2, 2]
    assert cli.main(["plot", str(out), "--kind", "curves"]) == 0
    assert (out / "plots" / "curves.png").is_file()


@pytest.mark.slow
def test_search_cells_give_the_serial_runs_values_and_a_failed_search_fails_its_cells(local_ray, tmp_path, capsys):
    search = {"train.lr": [1.0e-5, 1.0e-2]}
    tuned = {"scenario.n_tasks": 2, "tuning.protocol": "first_tasks", "tuning.budget": 2,
             "methods.finetune.search": search}
    _write(tmp_path / "missing-data.yaml", {
        "name": "missing-data", "data": {"source": "fsdd", "root": str(tmp_path / "no-such-dataset")},
        "model": {"embed_dim": 32, "depth": 1, "num_heads": 2}, "train": {"epochs": 1},
        "methods": [{"name": "finetune", "strategy": "finetune"}]})
    file = _write(tmp_path / "sweep.yaml", {"base": {"set": tuned}, "axes": {
        "preset": ["smoke", "missing-data.yaml"], "method": ["finetune"], "seed": [0, 1]}})
    out = tmp_path / "out"
    assert cli.main(["sweep", "run", str(file), "--out", str(out), "--no-progress"]) == 2
    printed = capsys.readouterr().out
    failed_search = "search,preset=missing-data.yaml,method=finetune"
    for seed in (0, 1):
        assert (f"preset=missing-data.yaml,method=finetune,seed={seed} (no exit status, log "
                f"{out / f'preset=missing-data.yaml,method=finetune,seed={seed}' / 'cell.log'}): not run: cell "
                f"{failed_search}, whose search it applies, failed") in printed
        assert not (out / f"preset=missing-data.yaml,method=finetune,seed={seed}").exists()
    assert f"{failed_search} (exit status 2" in printed
    # the smoke cells: each search once, under the first seed, then the values of ticl run --seeds 0,1
    serial = tmp_path / "serial"
    sets = [arg for key, value in tuned.items() for arg in ("--set", f"{key}={yaml_text(value)}")]
    assert cli.main(["run", "--preset", "smoke", *sets, "--methods", "finetune", "--seeds", "0,1", "--out",
                     str(serial), "--no-progress"]) == 0
    searched = out / "search,preset=smoke,method=finetune"
    assert json.loads((searched / "tuning" / "finetune" / "search.json").read_text()) == \
        json.loads((serial / "tuning" / "finetune" / "search.json").read_text())
    for seed in (0, 1):
        cell = out / f"preset=smoke,method=finetune,seed={seed}"
        assert not list((cell / "tuning").rglob("trial_*"))  # it applied the search cell's, searching nothing
        mine, theirs = _summary(cell, "finetune"), _summary(serial / "finetune", f"seed{seed}")
        for key in ("hyperparameters", "accuracy_matrix", "correct"):
            assert mine[key] == theirs[key], (seed, key)


def _parent(pid: int) -> int:
    """The parent pid of ``pid`` (Linux /proc)."""
    return int((Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[1])


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to find the cell's Ray worker")
def test_ray_retries_a_cell_whose_worker_died_and_it_resumes_its_run(grid_run, tmp_path):
    file = _grid_file(tmp_path, [{"preset": "missing-data.yaml"}, {"method": "aicl-gsa"}, {"seed": 1}])
    data = yaml.safe_load(file.read_text())
    file = _write(file, {**data, "retries": 1})
    out, log = tmp_path / "out", tmp_path / "driver.log"
    cell = out / GOOD[0]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    with open(log, "w") as stream:
        driver = subprocess.Popen(
            [sys.executable, "-m", "audio_ticl.benchmark", "sweep", "run", str(file), "--out", str(out),
             "--num-cpus", "2", "--no-progress"],
            stdout=stream, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        _wait_for(lambda: (cell / "finetune" / "checkpoints" / "task_00.pt").is_file(), 600, driver, log)
        children = _processes_mentioning("audio_ticl.benchmark.sweep.cell", str(cell))
        assert len(children) == 1, children
        worker = _parent(children[0])
        os.kill(children[0], signal.SIGSTOP)  # held after its first task, then its Ray worker is killed
        os.kill(worker, signal.SIGKILL)
        assert driver.wait(timeout=600) == 0, log.read_text()
    finally:
        try:
            os.killpg(driver.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    text = (cell / "cell.log").read_text()
    starts = [line for line in text.splitlines() if line.startswith("# ")]
    assert len(starts) == 2 and "--resume" not in starts[0] and starts[1].endswith("--resume"), starts
    assert re.search(r"finetune: resuming after task [01] ", text) or "already complete" in text
    got, want = _summary(cell, "finetune"), _summary(grid_run["out"] / GOOD[0], "finetune")
    np.testing.assert_allclose(got["accuracy_matrix"], want["accuracy_matrix"], rtol=0, atol=1e-6)
