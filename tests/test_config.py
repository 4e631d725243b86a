"""Config loading: presets, overrides, and errors that name the bad key."""
import pytest

from audio_ticl.benchmark.config import (
    MethodConfig,
    SequenceStep,
    TrainConfig,
    build,
    list_presets,
    load_config,
)
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


# --------------------------------------------------------------------------------- the typed builder
def test_a_typo_in_a_list_item_names_the_closest_key_with_its_path():
    expected = r"unknown config key 'methods\.1\.stratgy'; did you mean 'methods\.1\.strategy'"
    with pytest.raises(ConfigError, match=expected):
        load_config("default", overrides=["methods.1.stratgy=finetune"])


def test_a_typo_names_the_closest_key_and_lists_the_allowed_ones():
    with pytest.raises(ConfigError, match=r"'train\.epoch'; did you mean 'train\.epochs'\?; allowed keys in 'train'"):
        load_config("default", overrides=["train.epoch=3"])


def _sequence_file(tmp_path, fallback: str):
    path = tmp_path / "seq.yaml"
    path.write_text(
        "extends: default\nscenario:\n  kind: dataset_sequence\n  sequence:\n"
        f"    - {{source: esc50, root: ESC-50, fallback: {fallback}}}\n"
    )
    return path


def test_a_fallback_is_built_as_a_sequence_step(tmp_path):
    cfg = load_config(config_file=_sequence_file(tmp_path, "{source: urbansound8k, train: {epochs: 2}}"))
    fallback = cfg.scenario.sequence[0].fallback
    assert isinstance(fallback, SequenceStep) and fallback.source == "urbansound8k" and fallback.train == {"epochs": 2}
    assert isinstance(load_config("aicl-paper").scenario.sequence[2].fallback, SequenceStep)


def test_a_fallback_is_validated_like_a_step(tmp_path):
    expected = r"'scenario\.sequence\.0\.fallback\.sorce'; did you mean 'scenario\.sequence\.0\.fallback\.source'"
    with pytest.raises(ConfigError, match=expected):
        load_config(config_file=_sequence_file(tmp_path, "{sorce: urbansound8k}"))
    with pytest.raises(ConfigError, match=r"scenario\.sequence\.0\.fallback\.source' is required"):
        load_config(config_file=_sequence_file(tmp_path, "{root: UrbanSound8K}"))
    with pytest.raises(ConfigError, match=r"fallback\.train\.lr'; a step may override: epochs, batch_size"):
        load_config(config_file=_sequence_file(tmp_path, "{source: urbansound8k, train: {lr: 1}}"))
    with pytest.raises(ConfigError, match=r"fallback\.fallback': a fallback cannot have one"):
        load_config(config_file=_sequence_file(tmp_path, "{source: fsdd, fallback: {source: fsdd}}"))


@pytest.mark.parametrize(
    "assignment, allowed",
    [
        ("scenario.kind=class_splt", "'class_split' (the closest) or one of class_split, dataset_sequence"),
        ("scenario.class_order=random", "one of seeded, canonical, groups, explicit"),
        ("model.pooling=max", "one of cls, cls_dist, mean"),
        ("train.optimizer=rmsprop", "one of adam, adamw, sgd"),
        ("methods.2.train.optimizer=rmsprop", "one of adam, adamw, sgd"),  # named by index, as every methods.N error
        ("tuning.protocol=test_set", "one of none, first_tasks, full"),
    ],
)
def test_a_fixed_choice_rejects_an_invalid_value_listing_the_allowed_ones(assignment, allowed):
    key, _, value = assignment.partition("=")
    with pytest.raises(ConfigError) as info:
        load_config("default", overrides=[assignment])
    message = str(info.value)
    assert f"config key '{key}' must be " in message and allowed in message and repr(value) in message


def test_devices_follow_a_pattern():
    assert load_config("default", overrides=["train.device=cuda:1"]).train.device == "cuda:1"
    expected = r"'train\.device' must be .*one of auto, cpu, cuda, mps, or `cuda:<index>`, got 'gpu'"
    with pytest.raises(ConfigError, match=expected):
        load_config("default", overrides=["train.device=gpu"])


def test_registry_choices_are_the_registries():
    from audio_ticl.benchmark import config_schema
    from audio_ticl.benchmark.datasets import SOURCES
    from audio_ticl.models import PET_METHODS, list_mixers, list_models
    from audio_ticl.strategies import STRATEGIES

    assert config_schema.STRATEGIES.allowed() == sorted(STRATEGIES)
    assert config_schema.PET_METHODS.allowed() == sorted(PET_METHODS)
    assert config_schema.MIXERS.allowed() == sorted(list_mixers())  # the attention mixers and mamba
    assert config_schema.SOURCES.allowed() == sorted(SOURCES)
    assert config_schema.MODELS.allowed() == sorted(list_models())


def test_registry_choices_include_a_newly_registered_name(monkeypatch):
    from audio_ticl.models import PET_METHODS
    from audio_ticl.strategies import STRATEGIES

    overrides = ["methods.0.strategy=dummy_strategy", "methods.0.pet=dummy_pet"]
    with pytest.raises(ConfigError, match=r"'methods\.0\.strategy' must be .*adapter_incremental.*'dummy_strategy'"):
        load_config("default", overrides=overrides)
    with monkeypatch.context() as patch:
        patch.setitem(STRATEGIES, "dummy_strategy", object)
        patch.setitem(PET_METHODS, "dummy_pet", object)
        method = load_config("default", overrides=overrides).methods[0]
        assert (method.strategy, method.pet) == ("dummy_strategy", "dummy_pet")
    assert "dummy_strategy" not in STRATEGIES and "dummy_pet" not in PET_METHODS
    with pytest.raises(ConfigError, match=r"'methods\.0\.pet' must be .*convpass.*, got 'dummy_pet'"):
        load_config("default", overrides=["methods.0.pet=dummy_pet"])


def test_registry_names_are_checked_with_the_closest_one_named():
    with pytest.raises(ConfigError, match=r"'data\.source' must be 'esc50' \(the closest\) or one of .*, got 'esc5'"):
        load_config("default", overrides=["data.source=esc5"])
    with pytest.raises(ConfigError, match=r"'model\.name' must be 'ast_tiny' \(the closest\)"):
        load_config("default", overrides=["model.name=ast_tin"])
    with pytest.raises(ConfigError, match=r"'methods\.0\.mixer' must be .*fta, gsa"):
        load_config("default", overrides=["methods.0.mixer=dense"])


def test_a_strategy_may_be_an_import_path_checked_only_for_its_form():
    cfg = load_config("default", overrides=["methods.0.strategy=my_pkg.module:MyStrategy"])
    assert cfg.methods[0].strategy == "my_pkg.module:MyStrategy"  # resolved when the run builds it
    with pytest.raises(ConfigError, match="or an import path `pkg.module:Class`, got 'my-pkg:Thing'"):
        load_config("default", overrides=["methods.0.strategy=my-pkg:Thing"])


def test_the_builder_follows_the_annotations():
    groups = [["dog", "rooster"], ["rain"]]
    cfg = load_config("default", overrides=[f"scenario.groups={groups}", "model.upstream.lr=1", "data.options={}"])
    assert cfg.scenario.groups == groups and cfg.model.upstream.lr == 1.0 and isinstance(cfg.model.upstream.lr, float)
    assert isinstance(cfg.methods[0], MethodConfig)
    with pytest.raises(ConfigError, match=r"config key 'scenario\.groups\.1\.0' expects str, got 3"):
        load_config("default", overrides=["scenario.groups=[[dog], [3]]"])
    with pytest.raises(ConfigError, match=r"config key 'methods' must be a list"):
        load_config("default", overrides=["methods={name: x}"])
    with pytest.raises(ConfigError, match=r"config key 'model' must be a mapping, got int: 3"):
        load_config("default", overrides=["model=3"])
    with pytest.raises(ConfigError, match=r"config key 'train\.epochs' expects an integer, got True"):
        load_config("default", overrides=["train.epochs=true"])
    with pytest.raises(ConfigError, match=r"config key 'data\.options' expects str keys, got the key 1"):
        load_config("default", overrides=["data.options={1: 2}"])


def test_build_works_on_any_section():
    step = build(SequenceStep, {"source": "esc50", "fallback": {"source": "fsdd"}}, "step")
    assert step.fallback == SequenceStep(source="fsdd")
    assert build(TrainConfig, None, "train") == TrainConfig()
