"""The ``ticl`` command's error handling and progress output.

Every project error (:class:`TICLError`) is one line on stderr and exit status 2; anything else is a bug and keeps
its traceback. Progress bars appear only on a terminal: a redirected run writes no carriage-return frames.
"""
from __future__ import annotations

import argparse
import io
import logging
import warnings

import pytest
import torch
from avalanche.training.plugins import EvaluationPlugin
from test_baselines import _net, _tasks

from audio_ticl.benchmark import cli
from audio_ticl.benchmark.errors import ConfigError
from audio_ticl.benchmark.scenarios import make_benchmark
from audio_ticl.strategies import StrategyError, get_strategy, make_optimizer_factory
from audio_ticl.strategies.progress import ProgressPlugin


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


# ------------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("error", [StrategyError("strategy 'x': bad\n  option"), ConfigError("config key 'y'")])
def test_a_project_error_is_one_line_and_status_2(monkeypatch, capsys, error):
    def fail(_args):
        raise error

    monkeypatch.setitem(cli.COMMANDS, "presets", fail)
    assert cli.main(["presets"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ticl: error: ") and "Traceback" not in err


def test_a_bug_keeps_its_traceback(monkeypatch):
    def bug(_args):
        raise RuntimeError("a real bug")

    monkeypatch.setitem(cli.COMMANDS, "presets", bug)
    with pytest.raises(RuntimeError, match="a real bug"):
        cli.main(["presets"])


def test_a_strategy_refusing_its_options_is_a_clear_cli_error(tmp_path, capsys):
    args = ["run", "--preset", "smoke", "--no-progress", "--out", str(tmp_path / "run"),
            "--set", "scenario.n_tasks=2",
            "--set", "methods=[{name: replay, strategy: replay, strategy_options: {mem_size: 0}}]"]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert ("ticl: error: config key 'methods.0.strategy_options' (replay): strategy 'replay': mem_size must be at "
            "least 1") in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # refused before any work


# ----------------------------------------------------------------------------------------------- progress
def test_bars_only_on_a_terminal_and_never_with_no_progress():
    on, off = argparse.Namespace(no_progress=False), argparse.Namespace(no_progress=True)
    assert cli.wants_progress(on, _Terminal()) is True
    assert cli.wants_progress(on, io.StringIO()) is False  # a log file
    assert cli.wants_progress(off, _Terminal()) is False
    closed = io.StringIO()
    closed.close()
    assert cli.wants_progress(on, closed) is False


@pytest.mark.parametrize("argv", [["run"], ["datasets", "download", "esc50", "--root", "x"]])
def test_every_long_running_subcommand_takes_no_progress(argv):
    assert cli.build_parser().parse_args([*argv, "--no-progress"]).no_progress is True


def _train_with_progress(stream, enabled):
    bm = make_benchmark(_tasks())
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No loggers specified")
        evaluator = EvaluationPlugin(loggers=[])
    strategy = get_strategy("finetune")(
        model=_net(), optimizer_factory=make_optimizer_factory("adam", 1e-3, 0.0, 0.9), train_mb_size=4,
        train_epochs=2, eval_mb_size=8, device="cpu", evaluator=evaluator,
        plugins=[ProgressPlugin("probe", enabled=enabled, stream=stream)],
    )
    torch.manual_seed(0)
    strategy.train(bm.train_stream[0])


def test_training_progress_off_a_terminal_is_plain_log_lines(capsys, caplog):
    stream = io.StringIO()  # what a redirected stderr is: not a terminal
    enabled = cli.wants_progress(argparse.Namespace(no_progress=False), stream)
    with caplog.at_level(logging.INFO, logger="ticl"):
        _train_with_progress(stream, enabled)
        _train_with_progress(stream, True)  # even when asked for: the stream is not a terminal
    captured = capsys.readouterr()
    assert "\r" not in stream.getvalue() + captured.err + captured.out
    assert caplog.text.count("probe task 0 epoch") == 4 and "epoch 2/2: train loss" in caplog.text


def test_training_progress_on_a_terminal_is_a_bar():
    terminal = _Terminal()  # proves the check above would see a bar's frames
    _train_with_progress(terminal, True)
    assert "\r" in terminal.getvalue() and "probe task 0" in terminal.getvalue()


def test_a_closed_pipe_ends_quietly() -> None:
    """``ticl presets | head -1``: the reader goes away before the output is written; no BrokenPipeError traceback."""
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-c", "from audio_ticl.benchmark.cli import main; raise SystemExit(main(['presets']))"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    proc.stdout.close()  # the reader is gone before the CLI (still importing) writes a byte: every write fails
    stderr = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in stderr and "BrokenPipeError" not in stderr
