"""The config's ``logging`` section: TensorBoard and Weights & Biases (offline) through Avalanche's loggers.

Two smoke runs (fine-tuning, 2 tasks, 2 epochs each), one with both loggers on and one with both off: what each
logger wrote (read back with TensorBoard's EventAccumulator and from W&B's offline run file), and that the results
are the same to the last digit. W&B runs offline, its own folders in a temporary directory; nothing is sent.
"""
from __future__ import annotations

import importlib.util
import json
import random
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from audio_ticl.benchmark import loggers as L
from audio_ticl.benchmark.cli import main
from audio_ticl.benchmark.config import load_config
from audio_ticl.benchmark.errors import ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")

RUN = ["run", "--preset", "smoke", "--methods", "finetune", "--set", "scenario.n_tasks=2", "--set", "train.epochs=2",
       "--no-progress"]
ON = ["--set", "logging.tensorboard=true", "--set", "logging.wandb=true"]
TASKS = 2


@pytest.fixture(scope="module")
def wandb_env(tmp_path_factory):
    """W&B offline, its config, cache and data folders private to the tests, no key: nothing can be sent."""
    home = tmp_path_factory.mktemp("wandb-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("WANDB_MODE", "offline")
        patch.setenv("WANDB_SILENT", "true")
        for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
            patch.setenv(name, str(home / name.lower()))
        patch.delenv("WANDB_API_KEY", raising=False)
        yield home


@pytest.fixture(scope="module")
def runs(tmp_path_factory, wandb_env):
    pytest.importorskip("tensorboard")
    pytest.importorskip("wandb")
    root = tmp_path_factory.mktemp("logging")
    folders = {}
    for name, extra in (("off", []), ("on", ON)):
        out = root / f"smoke-{name}"
        assert main([*RUN, *extra, "--out", str(out)]) == 0
        folders[name] = out / "finetune"
    return folders


def _summary(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


# ------------------------------------------------------------------------------------------------ the config
def test_logging_is_off_by_default_and_offline_when_on():
    cfg = load_config(preset="smoke")
    assert (cfg.logging.tensorboard, cfg.logging.wandb) == (False, False)
    logging = cfg.logging
    assert (logging.wandb_project, logging.wandb_mode, logging.wandb_dir) == ("audio-ticl", "offline", None)
    with pytest.raises(ConfigError, match="logging.wandb_mode"):
        load_config(preset="smoke", overrides=["logging.wandb_mode=sometimes"])
    with pytest.raises(ConfigError, match="logging.wandb_project"):
        load_config(preset="smoke", overrides=["logging.wandb=true", "logging.wandb_project=''"])


@pytest.mark.parametrize("key", ["tensorboard", "wandb"])
def test_a_missing_package_is_a_config_error_with_the_install_hint_before_any_work(key, monkeypatch, tmp_path,
                                                                                  capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == key else real(name, *a))
    with pytest.raises(ConfigError, match=rf"logging\.{key}.*pip install 'audio-ticl\[logging\]'"):
        load_config(preset="smoke", overrides=[f"logging.{key}=true"])
    out = tmp_path / "run"
    assert main([*RUN, "--set", f"logging.{key}=true", "--out", str(out)]) == 2
    assert "pip install 'audio-ticl[logging]'" in capsys.readouterr().err
    assert not out.exists()  # refused before any folder, feature or model


# ------------------------------------------------------------------------------------------- no result changes
def test_both_loggers_on_give_the_results_of_both_off(runs):
    off, on = _summary(runs["off"]), _summary(runs["on"])
    assert on["accuracy_matrix"] == off["accuracy_matrix"]
    assert on["correct"] == off["correct"]
    for a, b in zip(on["per_task"], off["per_task"]):  # validation per epoch and the epoch it kept
        for key in ("val_accuracy", "val_loss", "best_epoch"):
            assert a[key] == b[key], key
    # every training loss and accuracy of every epoch: any change in batch order would show here
    pd.testing.assert_frame_equal(pd.read_csv(runs["on"] / "metrics.csv"), pd.read_csv(runs["off"] / "metrics.csv"))
    assert not (runs["off"] / L.TENSORBOARD_DIR).exists() and not (runs["off"] / "wandb").exists()


def _states():
    return (random.getstate(), np.random.get_state()[1].tolist(), np.random.get_state()[2],
            torch.get_rng_state().tolist())


def test_a_logger_that_draws_random_numbers_leaves_the_run_s_random_stream_as_it_was():
    class Drawing:
        def log_single_metric(self, name, value, x_plot):
            random.random(), np.random.rand(), torch.rand(3)

        def close(self, failed=False):
            torch.rand(3)

    before = _states()
    loggers = L.MethodLoggers([Drawing()])
    loggers.log({"a": 1.0}, 3)
    loggers.after_task(0, [0.5, 0.25], 4)
    loggers.close()
    assert _states() == before


def test_creating_logging_and_closing_both_loggers_draws_nothing(tmp_path, wandb_env):
    pytest.importorskip("tensorboard")
    pytest.importorskip("wandb")
    from avalanche.evaluation.metric_results import MetricValue

    cfg = load_config(preset="smoke", overrides=[
        "logging.tensorboard=true", "logging.wandb=true", f"logging.wandb_dir={tmp_path / 'elsewhere'}"])
    folder = tmp_path / "run" / "finetune"
    folder.mkdir(parents=True)
    random.seed(1), np.random.seed(1), torch.manual_seed(1)
    before = _states()
    with L.method_loggers(cfg, folder, {"seed": 0}) as loggers:
        for logger in loggers.loggers:  # what the EvaluationPlugin calls
            logger.log_metrics([MetricValue(None, "Top1_Acc_Epoch/train_phase/train_stream/Task000", 0.5, 7)])
        loggers.after_task(0, [0.5, 0.25], 7)
    assert _states() == before
    assert list((folder / L.TENSORBOARD_DIR).glob("events.out.tfevents.*"))
    assert list((tmp_path / "elsewhere" / "wandb").glob("offline-run-*/run-*.wandb"))  # logging.wandb_dir
    assert not (folder / "wandb").exists()


# ---------------------------------------------------------------------------------------------- TensorBoard
def _tensorboard(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder / L.TENSORBOARD_DIR))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tensorboard_holds_training_validation_and_per_task_accuracy(runs):
    scalars = _tensorboard(runs["on"])
    summary = _summary(runs["on"])
    metrics = pd.read_csv(runs["on"] / "metrics.csv")
    R = summary["accuracy_matrix"]
    for t in range(TASKS):
        for name in (f"Top1_Acc_Epoch/train_phase/train_stream/Task{t:03d}",
                     f"Loss_Epoch/train_phase/train_stream/Task{t:03d}"):
            rows = metrics[metrics["metric"] == name]
            assert [s for s, _ in scalars[name]] == rows["step"].tolist()
            assert [v for _, v in scalars[name]] == pytest.approx(rows["value"].tolist(), rel=1e-6)
        epochs = scalars[f"Top1_Acc_Epoch/train_phase/train_stream/Task{t:03d}"]
        per_task = summary["per_task"][t]
        assert [v for _, v in scalars[L.val_accuracy_name(t)]] == pytest.approx(per_task["val_accuracy"], rel=1e-6)
        assert [v for _, v in scalars[L.val_loss_name(t)]] == pytest.approx(per_task["val_loss"], rel=1e-6)
        assert [s for s, _ in scalars[L.val_accuracy_name(t)]] == [s for s, _ in epochs]  # one x axis
        # the accuracy matrix column of task t: R[i][t] after each task i, at that task's last training step
        assert [v for _, v in scalars[L.accuracy_name(t)]] == pytest.approx([row[t] for row in R], rel=1e-6)
    ends = [_tensorboard_last_step(scalars, i) for i in range(TASKS)]
    assert [s for s, _ in scalars[L.accuracy_name(0)]] == ends
    assert [v for _, v in scalars[L.mean_trained_name()]] == pytest.approx(
        [sum(R[i][: i + 1]) / (i + 1) for i in range(TASKS)], rel=1e-6)
    assert [v for _, v in scalars[L.TASKS_TRAINED]] == [1.0, 2.0]


def _tensorboard_last_step(scalars: dict, task: int) -> int:
    return scalars[f"Top1_Acc_Epoch/train_phase/train_stream/Task{task:03d}"][-1][0]


# ------------------------------------------------------------------------------------------------------ W&B
def _wandb_records(path: Path):
    """The protobuf records of W&B's offline run file (LevelDB's log format: 32 KiB blocks of checksummed
    chunks, after a 7-byte ``:W&B`` header)."""
    from wandb.proto import wandb_internal_pb2

    data, block, pos, pending = path.read_bytes(), 32768, 7, b""
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a chunk header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:
            pos += left
            continue
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):  # full, or last of a split record
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            yield record


def test_wandb_offline_writes_a_run_with_every_key(runs):
    files = list((runs["on"] / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1  # offline: a run folder on disk, nothing sent
    records = list(_wandb_records(files[0]))
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    out_name = runs["on"].parent.name
    assert (run.display_name, run.project, run.run_group) == (f"{out_name}/finetune/seed0", "audio-ticl", out_name)
    updates = [r.run.config.update if r.WhichOneof("record_type") == "run" else r.config.update
               for r in records if r.WhichOneof("record_type") in ("run", "config")]
    config = {item.key: json.loads(item.value_json) for update in updates for item in update}
    assert config["seed"] == 0 and config["methods"][0]["name"] == "finetune" and config["logging"]["wandb"] is True
    history: dict[str, list[tuple[int, float]]] = {}
    for r in records:
        if r.WhichOneof("record_type") == "history":
            for item in r.history.item:
                key = item.key or "/".join(item.nested_key)
                if not key.startswith("_"):
                    history.setdefault(key, []).append((r.history.step.num, json.loads(item.value_json)))
    scalars = _tensorboard(runs["on"])  # the same values at the same steps as TensorBoard's
    R = _summary(runs["on"])["accuracy_matrix"]
    for t in range(TASKS):
        for name in (f"Top1_Acc_Epoch/train_phase/train_stream/Task{t:03d}", L.val_accuracy_name(t),
                     L.val_loss_name(t), L.accuracy_name(t)):
            assert [s for s, _ in history[name]] == [s for s, _ in scalars[name]], name
            assert [v for _, v in history[name]] == pytest.approx([v for _, v in scalars[name]], rel=1e-6), name
        assert [v for _, v in history[L.accuracy_name(t)]] == [row[t] for row in R]  # exact: no float32 here
    assert [v for _, v in history[L.TASKS_TRAINED]] == [1, 2]
    assert any(r.WhichOneof("record_type") == "exit" and r.exit.exit_code == 0 for r in records)  # finished


def test_run_names_follow_the_run_folder_layout(tmp_path):
    out = tmp_path / "esc-seed0"
    for sub in ("finetune", "ewc/seed1", "tuning/ewc/trial_03"):
        (out / sub).mkdir(parents=True)
    (out / "config.yaml").write_text("{}")
    assert L.run_name(out / "finetune", 0) == ("esc-seed0/finetune/seed0", "esc-seed0")
    assert L.run_name(out / "ewc" / "seed1", 1) == ("esc-seed0/ewc/seed1", "esc-seed0")
    assert L.run_name(out / "tuning" / "ewc" / "trial_03", 2) == ("esc-seed0/tuning/ewc/trial_03/seed2", "esc-seed0")
