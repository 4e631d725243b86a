"""Every failure to write is a ``ticl: error:`` line naming the path, found before any work where it can be: an
output that is a file, lies under a file or cannot be written; a table or figures sent to the wrong kind of path;
a malformed ``summary.json`` read by ``ticl table`` names the file and the key."""
from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from audio_ticl.benchmark.cli import main

RESULTS = Path(__file__).resolve().parents[1] / "results" / "ssamba" / "fsdd" / "ast"


@pytest.fixture
def run_folder(tmp_path):
    """A finished multi-seed run folder (committed results), copied so that it can be damaged."""
    if not RESULTS.is_dir():
        pytest.skip("the committed results are not in this checkout")
    out = tmp_path / "run"
    shutil.copytree(RESULTS, out, ignore=shutil.ignore_patterns("tuning", "seed*"))
    return out


@pytest.mark.parametrize("command", [["run", "--preset", "smoke"], ["pretrain", "--preset", "smoke"]])
def test_an_output_that_is_a_file_or_lies_under_one_is_refused_before_any_work(tmp_path, capsys, command):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main([*command, "--out", str(blocker), "--no-progress"]) == 2
    assert f"--out {blocker} is a file, not a folder" in capsys.readouterr().err
    assert main([*command, "--out", str(blocker / "inside"), "--no-progress"]) == 2
    assert f"lies under {blocker}, which is a file" in capsys.readouterr().err


def test_an_output_that_cannot_be_written_is_refused(tmp_path, capsys, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    if os.geteuid() != 0:
        locked.chmod(0o500)
    else:  # root writes anywhere: the refusal is simulated where the probe writes
        real = tempfile.mkstemp

        def denied(*args, dir=None, **kwargs):
            if Path(dir) == locked:
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
            return real(*args, dir=dir, **kwargs)

        monkeypatch.setattr(tempfile, "mkstemp", denied)
    assert main(["run", "--preset", "smoke", "--out", str(locked / "run"), "--no-progress"]) == 2
    assert f"--out {locked / 'run'}: cannot write in {locked} (Permission denied)" in capsys.readouterr().err


def test_table_and_plot_outputs_of_the_wrong_kind_are_named(run_folder, tmp_path, capsys):
    assert main(["table", str(run_folder), "--out", str(tmp_path)]) == 2
    assert f"--out {tmp_path} is a folder; give a file name" in capsys.readouterr().err
    blocker = tmp_path / "figures"
    blocker.write_text("")
    assert main(["plot", str(run_folder), "--out", str(blocker)]) == 2
    assert f"--out {blocker} is a file, not a folder" in capsys.readouterr().err


@pytest.mark.parametrize("damage, message", [
    (lambda d: d["per_seed"][0]["per_task"][2].update(train_seconds="x"),
     "(seed 0): per_task[2]: key 'train_seconds' should be float, got 'x'"),
    (lambda d: d["per_seed"][1]["accuracy_matrix"][3].pop(),
     "(seed 1): key 'accuracy_matrix' row 3 has 4 values, expected 5"),
    (lambda d: d["per_seed"][0].pop("tasks"), "(seed 0): not a run summary of this suite"),
    (lambda d: d["per_seed"][2].update(avg_accuracy=None), "(seed 2): key 'avg_accuracy' should be float, got None"),
])
def test_a_malformed_summary_names_the_file_and_the_key(run_folder, capsys, damage, message):
    path = run_folder / "houlsby" / "summary.json"
    data = json.loads(path.read_text())
    damage(data)
    path.write_text(json.dumps(data))
    assert main(["table", str(run_folder)]) == 2
    err = capsys.readouterr().err
    assert f"ticl: error: {path}" in err and message in err
    assert main(["plot", str(run_folder), "--out", str(run_folder / "plots")]) == 2
    assert message in capsys.readouterr().err


def test_an_internal_failure_keeps_its_traceback_and_exits_1(tmp_path):
    """User errors are one line and status 2; anything else is a bug: Python's traceback and status 1."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import sys
        from audio_ticl.benchmark import preflight
        def broken(cfg):
            raise RuntimeError("an internal failure")
        preflight.preflight = broken
        from audio_ticl.benchmark.cli import main
        sys.exit(main(["run", "--preset", "smoke", "--check"]))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "RuntimeError: an internal failure" in done.stderr
    assert "ticl: error:" not in done.stderr
