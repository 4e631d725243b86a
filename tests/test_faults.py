"""Faults, for real: ``ticl run`` killed by SIGKILL in a subprocess while training, while evaluating and while a
checkpoint is being written, then ``--resume``, finishes with the summary of an uninterrupted run; a full disk and
a damaged checkpoint give a clear error or a fallback, and never a file that looks complete."""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from audio_ticl.benchmark.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")

RUN = ["run", "--preset", "smoke", "--methods", "finetune,aicl-gsa", "--no-progress"]

# Runs ``ticl run`` and SIGKILLs its own process at the N-th call of the patched function: no cleanup code runs.
KILLER = textwrap.dedent("""
    import os, signal, sys
    import torch
    torch.set_num_threads(1)
    from audio_ticl.benchmark import cli, results
    from audio_ticl.strategies import plugins
    point, n, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    calls = [0]
    def wrap(original, when=lambda *a, **k: True):
        def wrapped(*args, **kwargs):
            if when(*args, **kwargs):
                calls[0] += 1
                if calls[0] == n:
                    os.kill(os.getpid(), signal.SIGKILL)
            return original(*args, **kwargs)
        return wrapped
    if point == "train":
        plugins.FiniteLossPlugin.before_backward = wrap(plugins.FiniteLossPlugin.before_backward)
    elif point == "eval":
        plugins.evaluate = wrap(plugins.evaluate)
    elif point == "checkpoint":  # the temp file is whole, its rename has not happened
        results.os.replace = wrap(os.replace, lambda src, dst: str(dst).endswith(".pt"))
    sys.exit(cli.main([*sys.argv[4:], "--out", out]))
""")


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    out = tmp_path_factory.mktemp("faults") / "whole"
    assert main([*RUN, "--out", str(out)]) == 0
    return out


def _matrices(out):
    """Each method's accuracy matrix, flattened."""
    return {m: [v for row in json.loads((out / m / "summary.json").read_text())["accuracy_matrix"] for v in row]
            for m in ("finetune", "aicl-gsa")}


@pytest.mark.slow
@pytest.mark.parametrize("point, n", [("train", 5), ("eval", 4), ("checkpoint", 2)])
def test_a_run_killed_anywhere_resumes_to_the_uninterrupted_summary(uninterrupted, tmp_path, point, n):
    out = tmp_path / "killed"
    killed = subprocess.run([sys.executable, "-c", KILLER, point, str(n), str(out), *RUN],
                            capture_output=True, text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert not (out / "aicl-gsa" / "summary.json").exists()
    assert main([*RUN, "--out", str(out), "--resume"]) == 0
    for method, matrix in _matrices(uninterrupted).items():
        assert _matrices(out)[method] == pytest.approx(matrix, abs=1e-6), method
    assert not list(out.rglob("*.tmp")), "a temporary file was left behind"
    for name in ("metrics.csv", "accuracy_matrix.csv"):
        assert (out / "finetune" / name).read_text() == (uninterrupted / "finetune" / name).read_text()


def test_a_full_disk_is_a_clear_error_and_leaves_nothing_that_looks_complete(tmp_path, monkeypatch, capsys):
    from audio_ticl.benchmark import results

    def full(obj, path, *args, **kwargs):
        with open(path, "wb") as handle:
            handle.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(results.torch, "save", full)
    out = tmp_path / "run"
    assert main([*RUN, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "ticl: error: cannot write" in err and "task_00.pt: No space left on device" in err
    assert not list(out.rglob("summary.json")) and not list(out.rglob("*.pt")) and not list(out.rglob("*.tmp"))


def test_a_damaged_checkpoint_is_named_and_the_one_before_it_is_used(uninterrupted, tmp_path, caplog):
    out = tmp_path / "damaged"
    shutil.copytree(uninterrupted, out)
    (out / "finetune" / "summary.json").unlink()
    last = out / "finetune" / "checkpoints" / "task_02.pt"
    last.write_bytes(last.read_bytes()[:1000])  # truncated on disk
    assert main([*RUN, "--out", str(out), "--resume"]) == 0
    assert f"cannot read checkpoint {last}" in caplog.text and "resuming from the checkpoint before it" in caplog.text
    assert _matrices(out)["finetune"] == pytest.approx(_matrices(uninterrupted)["finetune"], abs=1e-6)
    assert torch.load(last, weights_only=True)["format_version"]  # rewritten whole
