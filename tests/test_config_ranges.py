"""Numeric config keys have declared ranges, checked at load time: a value outside one is a ConfigError naming the
key, the range and the value (never a traceback mid-run, nor an untrained model's finished-looking summary)."""
from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path

import pytest

from audio_ticl.benchmark import cli
from audio_ticl.benchmark.config import RunConfig, list_presets, load_config, load_raw
from audio_ticl.benchmark.config_build import build
from audio_ticl.benchmark.config_docs import (
    PRETRAIN_END,
    PRETRAIN_START,
    config_reference_markdown,
    pretrain_reference_markdown,
    read_section,
)
from audio_ticl.benchmark.config_fields import Bounds, bounds_of, setting
from audio_ticl.benchmark.config_load import apply_override
from audio_ticl.benchmark.config_schema import TrainConfig, UpstreamConfig
from audio_ticl.benchmark.errors import ConfigError
from audio_ticl.benchmark.pretrain.schema import PRETRAIN_PRESETS, PretrainConfig, load_pretrain_config

README = Path(__file__).resolve().parents[1] / "README.md"


def _message(load, *overrides: str) -> str:
    with pytest.raises(ConfigError) as info:
        load(list(overrides))
    return str(info.value)


def _run(overrides: list[str]) -> RunConfig:
    return load_config("default", overrides=overrides)


def _pretrain(overrides: list[str]) -> PretrainConfig:
    return load_pretrain_config("smoke", overrides=overrides)


# ------------------------------------------------------------------------------------------- out of range
@pytest.mark.parametrize(
    "assignment, expected",
    [
        # top level and scenario
        ("seed=-1", "config key 'seed' must be >= 0, got -1"),
        ("scenario.n_tasks=0", "config key 'scenario.n_tasks' must be >= 1 or null, got 0"),
        ("scenario.classes_per_task=0", "config key 'scenario.classes_per_task' must be >= 1, got 0"),
        ("scenario.order_seed=-3", "config key 'scenario.order_seed' must be >= 0 or null, got -3"),
        # features
        ("features.num_mel_bins=0", "config key 'features.num_mel_bins' must be >= 1, got 0"),
        ("features.n_mfcc=-1", "config key 'features.n_mfcc' must be >= 1, got -1"),
        ("features.target_frames=0", "config key 'features.target_frames' must be >= 1 or null, got 0"),
        ("features.std=0", "config key 'features.std' must be > 0 or null, got 0.0"),
        ("features.std=-5.3", "config key 'features.std' must be > 0 or null, got -5.3"),
        ("features.freqm=-1", "config key 'features.freqm' must be >= 0 or null, got -1"),
        ("features.timem=-2", "config key 'features.timem' must be >= 0 or null, got -2"),
        ("features.mean=.nan", "config key 'features.mean' must be a finite number or null, got nan"),
        # model
        ("model.fstride=0", "config key 'model.fstride' must be >= 1, got 0"),
        ("model.tstride=-10", "config key 'model.tstride' must be >= 1, got -10"),
        ("model.patch_size=[16, 0]", "config key 'model.patch_size.1' must be >= 1, got 0"),
        ("model.embed_dim=0", "config key 'model.embed_dim' must be >= 1 or null, got 0"),
        ("model.depth=0", "config key 'model.depth' must be >= 1 or null, got 0"),
        ("model.num_heads=0", "config key 'model.num_heads' must be >= 1 or null, got 0"),
        ("model.mlp_ratio=0", "config key 'model.mlp_ratio' must be > 0 or null, got 0.0"),
        ("model.upstream.epochs=0", "config key 'model.upstream.epochs' must be >= 1, got 0"),
        ("model.upstream.lr=-1e-3", "config key 'model.upstream.lr' must be > 0, got -0.001"),
        ("model.upstream.duration_s=0.25", "config key 'model.upstream.duration_s' must be >= 0.5, got 0.25"),
        # train
        ("train.lr=-0.1", "config key 'train.lr' must be > 0, got -0.1"),
        ("train.lr=0", "config key 'train.lr' must be > 0, got 0.0"),
        ("train.lr=.inf", "config key 'train.lr' must be a finite number > 0, got inf"),
        ("train.weight_decay=-0.01", "config key 'train.weight_decay' must be >= 0, got -0.01"),
        ("train.momentum=1.5", "config key 'train.momentum' must be in [0, 1], got 1.5"),
        ("train.epochs=0", "config key 'train.epochs' must be >= 1, got 0"),
        ("train.epochs=-3", "config key 'train.epochs' must be >= 1, got -3"),
        ("train.batch_size=0", "config key 'train.batch_size' must be >= 1, got 0"),
        ("train.eval_batch_size=-1", "config key 'train.eval_batch_size' must be >= 1, got -1"),
        ("train.max_batches=0", "config key 'train.max_batches' must be >= 1 or null, got 0"),
        ("train.threads=0", "config key 'train.threads' must be >= 1 or null, got 0"),
        # tuning
        ("tuning.budget=0", "config key 'tuning.budget' must be >= 1, got 0"),
        ("tuning.tasks=0", "config key 'tuning.tasks' must be >= 1, got 0"),
        ("tuning.seed=-1", "config key 'tuning.seed' must be >= 0 or null, got -1"),
        # a method's train overrides and search values, named by the method's index
        ("methods.0.train={lr: -1}", "config key 'methods.0.train.lr' must be > 0, got -1.0"),
        ("methods.finetune.train.batch_size=0", "config key 'methods.2.train.batch_size' must be >= 1, got 0"),
        ("methods.finetune.train.epochs=0", "config key 'methods.2.train.epochs' must be >= 1, got 0"),
        ("methods.finetune.search={train.lr: [1.0e-3, -1]}",
         "config key 'methods.2.search.train.lr' must be > 0, got -1.0"),
        ("methods.0.search={train.epochs: [2, 0]}", "config key 'methods.0.search.train.epochs' must be >= 1, got 0"),
        ("methods.0.search={train.weight_decay: [-1.0e-4]}",
         "config key 'methods.0.search.train.weight_decay' must be >= 0, got -0.0001"),
    ],
)
def test_a_run_key_out_of_range_names_the_key_the_range_and_the_value(assignment, expected):
    assert _message(_run, assignment) == expected


def test_a_search_value_is_type_checked_like_its_key():
    message = _message(_run, "methods.0.search={train.epochs: [2, 1.5]}")
    assert message == "config key 'methods.0.search.train.epochs' expects int, got 1.5"


def test_a_sequence_step_override_is_checked_like_the_train_key():
    load = lambda overrides: load_config("aicl-paper", overrides=overrides)  # noqa: E731
    assert _message(load, "scenario.sequence.0.train={epochs: 0}") == (
        "config key 'scenario.sequence.0.train.epochs' must be >= 1, got 0"
    )
    assert _message(load, "scenario.sequence.1.train={batch_size: -4}") == (
        "config key 'scenario.sequence.1.train.batch_size' must be >= 1, got -4"
    )


def test_bool_is_not_a_number():
    assert _message(_run, "train.momentum=true") == "config key 'train.momentum' expects float, got True"
    assert _message(_run, "train.batch_size=false") == "config key 'train.batch_size' expects an integer, got False"


@pytest.mark.parametrize(
    "assignment, expected",
    [
        ("seed=-1", "config key 'seed' must be >= 0, got -1"),
        ("epochs=0", "config key 'epochs' must be >= 1, got 0"),
        ("batch_size=0", "config key 'batch_size' must be >= 1, got 0"),
        ("n_mask=0", "config key 'n_mask' must be >= 1, got 0"),
        ("lr=0", "config key 'lr' must be > 0, got 0.0"),
        ("weight_decay=-1", "config key 'weight_decay' must be >= 0, got -1.0"),
        ("warmup=1", "config key 'warmup' must be in [0, 1), got 1.0"),
        ("warmup=-0.1", "config key 'warmup' must be in [0, 1), got -0.1"),
        ("window_frames=0", "config key 'window_frames' must be >= 1 or null, got 0"),
        ("window_min_signal=1.5", "config key 'window_min_signal' must be in [0, 1], got 1.5"),
        ("checkpoint_every=-1", "config key 'checkpoint_every' must be >= 0, got -1"),
        ("threads=0", "config key 'threads' must be >= 1 or null, got 0"),
        ("reconstruction.time_ratio=1.2", "config key 'reconstruction.time_ratio' must be in [0, 1], got 1.2"),
        ("reconstruction.time_block=0", "config key 'reconstruction.time_block' must be >= 1, got 0"),
        ("reconstruction.freq_max=-0.2", "config key 'reconstruction.freq_max' must be in [0, 1], got -0.2"),
        ("reconstruction.noise_prob=2", "config key 'reconstruction.noise_prob' must be in [0, 1], got 2.0"),
        ("reconstruction.noise_std=-1", "config key 'reconstruction.noise_std' must be >= 0, got -1.0"),
        ("features.num_mel_bins=0", "config key 'features.num_mel_bins' must be >= 1, got 0"),
        ("model.fstride=0", "config key 'model.fstride' must be >= 1, got 0"),
    ],
)
def test_a_pretraining_key_out_of_range_names_the_key_the_range_and_the_value(assignment, expected):
    assert _message(_pretrain, assignment) == expected


def test_window_frames_above_the_clip_length_is_still_a_cross_key_error():
    assert _message(_pretrain, "window_frames=65") == (
        "config key 'window_frames' must be in [1, features.target_frames = 64] or null, got 65"
    )


# ------------------------------------------------------------------------------------------- allowed edges
def test_boundary_values_and_null_load():
    cfg = _run([
        "train.weight_decay=0", "train.momentum=1", "train.epochs=1", "train.batch_size=1", "train.max_batches=1",
        "train.lr=1.0e-9", "train.threads=1", "train.threads=null", "features.freqm=0", "features.timem=0",
        "features.mean=-100",
        "features.std=1.0e-6", "scenario.order_seed=null", "tuning.seed=0", "seed=0", "model.upstream.duration_s=0.5",
        "model.patch_size=[1, 1]", "methods.0.train={lr: 1.0e-9, weight_decay: 0}",
        "methods.0.search={train.momentum: [0, 1]}",
    ])
    assert (cfg.train.weight_decay, cfg.train.momentum, cfg.train.epochs, cfg.train.max_batches) == (0.0, 1.0, 1, 1)
    assert (cfg.features.freqm, cfg.features.timem, cfg.features.mean, cfg.scenario.order_seed) == (0, 0, -100.0, None)
    assert cfg.model.upstream.duration_s == 0.5 and cfg.model.patch_size == [1, 1]
    assert cfg.method_train(cfg.methods[0]).lr == 1.0e-9
    nulls = _run(["features.std=null", "train.max_batches=null", "scenario.n_tasks=null", "model.embed_dim=null"])
    assert (nulls.features.std, nulls.train.max_batches, nulls.scenario.n_tasks, nulls.model.embed_dim) == (
        None, None, None, None)


def test_pretraining_boundary_values_load():
    cfg = _pretrain(["warmup=0", "window_min_signal=1", "checkpoint_every=0", "threads=1", "window_frames=64",
                     "reconstruction.noise_prob=1", "reconstruction.time_ratio=0", "reconstruction.noise_std=0"])
    assert (cfg.warmup, cfg.window_min_signal, cfg.checkpoint_every, cfg.threads, cfg.window_frames) == (
        0.0, 1.0, 0, 1, 64)
    assert _pretrain(["threads=null", "window_frames=null"]).threads is None


# ------------------------------------------------------------------------------------------- presets
def test_every_shipped_run_preset_and_smoke_variant_loads():
    for name in list_presets():
        load_config(preset=name, overrides=["data.root=/x"])
        if isinstance(load_raw(name).get("smoke"), dict):
            load_config(preset=name, overrides=["data.root=/x"], smoke=True)


def test_every_shipped_pretraining_preset_loads():
    names = list_presets(PRETRAIN_PRESETS)
    assert names
    for name in names:
        load_pretrain_config(name)


# ------------------------------------------------------------------------------------------- declarations
def _numeric_fields(cls: type, prefix: str = "", seen: tuple[type, ...] = ()) -> list[tuple[str, dataclasses.Field]]:
    """(key, field) of every int / float key (or list of them) under ``cls``, sections recursed into."""
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        hint = hints[f.name]
        if type(None) in typing.get_args(hint):  # Optional[T] -> T
            (hint,) = [a for a in typing.get_args(hint) if a is not type(None)]
        item = typing.get_args(hint)[0] if typing.get_origin(hint) is list else hint
        if dataclasses.is_dataclass(item):
            if item not in seen:
                out += _numeric_fields(item, f"{prefix}{f.name}.", seen + (cls,))
        elif item in (int, float):
            out.append((f"{prefix}{f.name}", f))
    return out


@pytest.mark.parametrize("cls", [RunConfig, PretrainConfig])
def test_every_numeric_key_declares_a_range_that_its_default_satisfies(cls):
    fields = _numeric_fields(cls)
    assert len(fields) > 15
    undeclared = [key for key, f in fields if bounds_of(f) is None]
    assert not undeclared, f"numeric keys without a declared range: {undeclared}"
    for key, f in fields:
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        for value in default if isinstance(default, list) else [default]:
            assert value is None or bounds_of(f).accepts(value), key


def test_the_upstream_duration_bound_is_the_synthetic_sources_minimum():
    from audio_ticl.benchmark.datasets.synthetic.source import MIN_DURATION_S

    (duration,) = [f for f in dataclasses.fields(UpstreamConfig) if f.name == "duration_s"]
    assert bounds_of(duration).minimum == MIN_DURATION_S


def test_bounds_describe_and_check():
    assert Bounds(0, exclusive_minimum=True).describe() == "> 0"
    assert Bounds(1).describe() == ">= 1"
    assert Bounds(0, 1, exclusive_maximum=True).describe() == "in [0, 1)"
    assert Bounds(0, 1, exclusive_minimum=True).describe() == "in (0, 1]"
    assert Bounds(maximum=2.5).describe() == "<= 2.5"
    assert Bounds().describe() == "a finite number"
    assert not Bounds().accepts(math.nan) and not Bounds(0).accepts(math.inf) and Bounds().accepts(-1e300)
    assert Bounds(0, 1, exclusive_maximum=True).accepts(0) and not Bounds(0, 1, exclusive_maximum=True).accepts(1)
    with pytest.raises(ValueError, match="exclusive limit needs the limit"):
        setting(1, doc="x", exclusive_minimum=True)


def test_build_checks_ranges_on_any_section():
    with pytest.raises(ConfigError) as info:
        build(TrainConfig, {"lr": -1}, "methods.x.train")
    assert str(info.value) == "config key 'methods.x.train.lr' must be > 0, got -1.0"


# ------------------------------------------------------------------------------------------- README
def test_the_readme_reference_shows_the_ranges():
    run_table, pretrain_table = config_reference_markdown(), pretrain_reference_markdown()
    assert "| key | default | range | meaning |" in run_table
    assert "| `train.lr` | `0.0003` | `> 0` | learning rate |" in run_table
    assert "| `train.max_batches` | null | `>= 1` or null |" in run_table
    assert "| `model.patch_size` | null | each `>= 1` or null |" in run_table
    assert "| `features.mean` | null | a finite number or null |" in run_table
    assert "| `train.optimizer` | `adam` |  |" in run_table  # no range for a non-numeric key
    assert "| `warmup` | `0.05` | `in [0, 1)` |" in pretrain_table
    readme = README.read_text()
    assert "| `train.epochs` | `5` | `>= 1` | epochs per task |" in readme
    assert read_section(readme, PRETRAIN_START, PRETRAIN_END) == pretrain_table


# ------------------------------------------------------------------------------------------- --set into a value
def test_set_into_a_scalar_is_a_clear_error():
    assert _message(_run, "train.lr.x=1") == (
        "--set train.lr.x: config key 'train.lr' holds the value 0.003, not a section, so it has no key 'x'"
    )
    assert _message(_run, "seed.a.b=1") == (
        "--set seed.a.b: config key 'seed' holds the value 0, not a section, so it has no key 'a.b'"
    )
    assert _message(_run, "methods.0.name.x=1") == (
        "--set methods.0.name.x: config key 'methods.0.name' holds the value 'aicl-gsa', not a section, so it has "
        "no key 'x'"
    )
    # a key the preset leaves at its default: the builder names it
    assert _message(_run, "train.momentum.x=1") == "config key 'train.momentum' expects float, got {'x': 1}"


def test_set_into_an_empty_section_fills_it():
    raw = {"model": None}
    apply_override(raw, "model.name=ast_base")
    assert raw == {"model": {"name": "ast_base"}}


def test_the_cli_refuses_an_out_of_range_value_before_any_work(tmp_path, capsys):
    out = tmp_path / "run"
    for assignment, expected in [
        ("train.epochs=0", "ticl: error: config key 'train.epochs' must be >= 1, got 0\n"),
        ("train.lr.x=1", "ticl: error: --set train.lr.x: config key 'train.lr' holds the value"),
    ]:
        assert cli.main(["run", "--preset", "smoke", "--no-progress", "--out", str(out), "--set", assignment]) == 2
        err = capsys.readouterr().err
        assert err.startswith(expected) and "Traceback" not in err
        assert not (out / "results.md").exists() and not any(out.glob("*/summary.json"))
