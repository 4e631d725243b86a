"""Config loading: presets, overrides, and errors that name the bad key."""
import pytest

from audio_ticl.benchmark.config import list_presets, load_config
from audio_ticl.benchmark.errors import ConfigError


def test_every_shipped_preset_loads_and_has_a_description():
    presets = list_presets()
    assert {"default", "smoke", "esc50-cpu", "speechcommands-cpu", "fsdd-cpu"} <= set(presets)
    for name, description in presets.items():
        assert description, name
        load_config(name)


def test_default_compares_aicl_gsa_fta_and_finetune():
    cfg = load_config()
    assert [(m.strategy, m.mixer) for m in cfg.methods] == [
        ("adapter_incremental", "gsa"),
        ("adapter_incremental", "fta"),
        ("finetune", "gsa"),
    ]
    assert cfg.scenario.n_tasks >= 5 and cfg.scenario.classes_per_task >= 2


def test_overrides_reach_nested_keys_and_methods_by_name():
    cfg = load_config("default", overrides=["train.epochs=2", "methods.finetune.train={lr: 0.01}", "seed=3"])
    assert cfg.train.epochs == 2
    assert cfg.seed == 3
    finetune = next(m for m in cfg.methods if m.name == "finetune")
    assert cfg.method_train(finetune).lr == 0.01
    assert cfg.method_train(cfg.methods[0]).lr == cfg.train.lr


def test_speech_command_words_stay_strings():
    cfg = load_config("speechcommands-cpu")
    assert cfg.data.options["words"][:2] == ["yes", "no"]  # YAML 1.1 would read bare yes/no as booleans


def test_unknown_key_names_the_key_and_the_allowed_ones():
    with pytest.raises(ConfigError, match=r"train\.epoch'.*allowed keys in 'train': epochs"):
        load_config("default", overrides=["train.epoch=3"])


def test_wrong_type_is_rejected():
    with pytest.raises(ConfigError, match="train.epochs' expects int"):
        load_config("default", overrides=["train.epochs=many"])


def test_unknown_preset_lists_the_available_ones():
    with pytest.raises(ConfigError, match="unknown preset 'nope'.*default"):
        load_config("nope")


def test_config_file_can_extend_a_preset(tmp_path):
    path = tmp_path / "my.yaml"
    path.write_text("extends: default\ntrain:\n  epochs: 1\n")
    cfg = load_config(config_file=path)
    assert cfg.train.epochs == 1 and len(cfg.methods) == 3


def test_missing_config_file_names_it(tmp_path):
    with pytest.raises(ConfigError, match="nothere.yaml"):
        load_config(config_file=tmp_path / "nothere.yaml")


def test_bad_mixer_is_rejected():
    with pytest.raises(ConfigError, match="mixer"):
        load_config("default", overrides=["methods.0.mixer=dense"])


def test_exponent_floats_without_a_dot_are_accepted():
    assert load_config("default", overrides=["train.lr=3e-3"]).train.lr == 0.003
