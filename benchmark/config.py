"""The run configuration: one typed dataclass tree, loaded from YAML presets plus ``--set key=value`` overrides.

The keys and their docs are in ``config_schema``, the raw preset / ``extends:`` / ``--set`` handling in
``config_load`` and the type-driven builder in ``config_build``; this module resolves a config and runs the
cross-field checks the types cannot express. An unknown or misspelled key is a :class:`ConfigError` that names
the closest valid key and lists the allowed ones, so a typo never silently falls back to a default.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from .config_build import build, build_field
from .config_load import PRESET_PACKAGE, apply_override, deep_merge, list_presets, load_raw
from .config_schema import (
    DataConfig,
    FeatureConfig,
    MethodConfig,
    ModelConfig,
    RunConfig,
    ScenarioConfig,
    SequenceStep,
    TrainConfig,
    TuningConfig,
    UpstreamConfig,
)
from .errors import ConfigError

__all__ = [
    "DataConfig",
    "FeatureConfig",
    "MethodConfig",
    "ModelConfig",
    "PRESET_PACKAGE",
    "RunConfig",
    "ScenarioConfig",
    "SEARCH_SECTIONS",
    "STEP_TRAIN_KEYS",
    "SequenceStep",
    "TrainConfig",
    "TuningConfig",
    "UpstreamConfig",
    "apply_override",
    "build",
    "list_presets",
    "load_config",
    "load_raw",
    "to_dict",
    "validate",
]

#: the sections of a method a search key may address
SEARCH_SECTIONS = ("train", "strategy_options", "pet_options")
#: the train keys a dataset_sequence step may override
STEP_TRAIN_KEYS = ("epochs", "batch_size")


def load_config(
    preset: str | None = None,
    config_file: Path | None = None,
    overrides: tuple[str, ...] | list[str] = (),
    smoke: bool = False,
) -> RunConfig:
    """Resolve preset/file (+ its ``smoke`` variant) + overrides into a validated :class:`RunConfig`.

    A preset may carry a ``smoke:`` section: a partial config merged on top when ``smoke`` is asked for (a tiny
    model, a few batches), so the paper presets stay runnable on CPU fixtures. ``--set`` applies after it.
    """
    if preset and config_file:
        raise ConfigError("give either --preset or --config, not both")
    raw = load_raw(preset, config_file)
    smoke_section = raw.pop("smoke", None)
    if smoke:
        if not isinstance(smoke_section, dict):
            raise ConfigError(f"preset '{raw.get('name', config_file)}' has no smoke variant (no 'smoke:' section)")
        raw = deep_merge(raw, smoke_section)
        raw["name"] = f"{raw.get('name', 'run')}-smoke"
    for assignment in overrides:
        apply_override(raw, assignment)
    cfg = build(RunConfig, raw, "")
    validate(cfg)
    return cfg


def validate(cfg: RunConfig) -> None:
    """Cross-field checks that the annotations cannot express (types and choices are the builder's)."""
    if not cfg.methods:
        raise ConfigError("config key 'methods' must list at least one method")
    features = cfg.features
    if features.kind == "mfcc" and not 1 <= features.n_mfcc <= features.num_mel_bins:
        raise ConfigError(f"config key 'features.n_mfcc' must be between 1 and features.num_mel_bins "
                          f"({features.num_mel_bins}): MFCC keeps that many of the mel bands' DCT coefficients; got "
                          f"{features.n_mfcc}")
    seen = set()
    for i, method in enumerate(cfg.methods):
        if not method.name:
            raise ConfigError(f"config key 'methods.{i}.name' is required")
        if method.name in seen:
            raise ConfigError(f"config key 'methods.{i}.name': duplicate method name '{method.name}'")
        seen.add(method.name)
        _validate_mixer(cfg.model.name, method.mixer, f"methods.{i}.mixer")
        _validate_frame_tokens(cfg, method.mixer, method.pet, i)
        if method.pet:
            _validate_pet(cfg.model.name, method.pet, f"methods.{i}.pet")
        _validate_method_train(cfg, method, i)
    if cfg.scenario.kind == "dataset_sequence" and not cfg.scenario.sequence:
        raise ConfigError("config key 'scenario.sequence' must list the datasets of a dataset_sequence scenario")
    for i, step in enumerate(cfg.scenario.sequence):
        _validate_step(step, f"scenario.sequence.{i}")
        if step.fallback is not None:
            if step.fallback.fallback is not None:
                raise ConfigError(f"config key 'scenario.sequence.{i}.fallback.fallback': a fallback cannot have one")
            _validate_step(step.fallback, f"scenario.sequence.{i}.fallback")
    _validate_tuning(cfg)
    _validate_logging(cfg)


def select_methods(cfg: RunConfig, names: list[str]) -> RunConfig:
    """``cfg`` with only the methods named (kept in the config's order); an unknown name is an error that lists the
    config's methods."""
    known = [m.name for m in cfg.methods]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"--methods: {', '.join(unknown)} not in '{cfg.name}', whose methods are {', '.join(known)}")
    return dataclasses.replace(cfg, methods=[m for m in cfg.methods if m.name in names])


def _validate_mixer(model: str, mixer: str, key: str) -> None:
    """A method's mixer must be one its model takes: SSAMBA takes only ``mamba``, AST only the attention mixers."""
    from audio_ticl.models import MIXERS
    from audio_ticl.models.registry import is_model, model_mixers

    if not is_model(model):
        return  # the builder reports an unknown model name
    allowed = model_mixers(model) or tuple(MIXERS)
    if mixer not in allowed:
        raise ConfigError(
            f"config key '{key}': model '{model}' takes the mixer(s) {', '.join(allowed)}, got '{mixer}'"
        )


def _validate_frame_tokens(cfg: RunConfig, mixer: str, pet: str | None, i: int) -> None:
    """FTA and ConvPass need a frequency x time patch grid: a frame model (patches as tall as the input, one row)
    has none."""
    from .front_end import input_bins

    size = cfg.model.patch_size
    height = int(size[0]) if size else 16
    bins = input_bins(cfg.features)
    if height > bins or (bins - height) // cfg.model.fstride + 1 != 1:
        return
    why = (f"model.patch_size {list(size) if size else [16, 16]} over {bins} input bins gives one frequency row "
           "(frame tokens), no frequency x time grid")
    if mixer == "fta":
        raise ConfigError(f"config key 'methods.{i}.mixer': 'fta' needs a frequency x time grid; {why}: use 'gsa'")
    if pet == "convpass":
        raise ConfigError(f"config key 'methods.{i}.pet': 'convpass' convolves over the frequency x time grid; {why}: "
                          "a sequence PET method applies (houlsby, lora, bitfit, conformer, ...)")


def _validate_pet(model: str, pet: str, key: str) -> None:
    """A method's PET method must apply to its model's family (no MLP adapters on SSAMBA), checked before any work."""
    from audio_ticl.models.pet import PET_METHODS
    from audio_ticl.models.registry import is_model, model_family

    if not is_model(model) or pet not in PET_METHODS:
        return  # the builders report unknown names
    family = model_family(model)

    def why_not(name: str) -> str:
        check = getattr(PET_METHODS[name], "not_applicable", None)  # a registered class without it: no claim
        return check(family) if check is not None else ""

    reason = why_not(pet)
    if reason:
        applicable = [name for name in sorted(PET_METHODS) if not why_not(name)]
        raise ConfigError(f"config key '{key}': PET method '{pet}' does not apply to model '{model}' ({family} "
                          f"layers): {reason}. It takes: {', '.join(applicable)}")


def _validate_method_train(cfg: RunConfig, method: MethodConfig, i: int) -> None:
    """A method's ``train`` overrides, each checked like the ``train`` key it replaces (type, choices, range) and
    named by the method's index, as every other ``methods.N`` error is."""
    build(TrainConfig, dataclasses.asdict(cfg.train) | dict(method.train), f"methods.{i}.train")


def _validate_tuning(cfg: RunConfig) -> None:
    """Search keys must address a method section, and each value of a ``train.*`` key must be one that key takes
    (``tuning.budget`` / ``tuning.tasks`` ranges are declared on their fields)."""
    train_keys = [f.name for f in dataclasses.fields(TrainConfig)]
    for i, method in enumerate(cfg.methods):
        for key, values in method.search.items():
            where = f"methods.{i}.search.{key}"
            section, _, name = str(key).partition(".")
            if section not in SEARCH_SECTIONS or not name:
                raise ConfigError(
                    f"config key '{where}': a search key is <section>.<name> with section one of "
                    f"{', '.join(SEARCH_SECTIONS)}, e.g. train.lr or strategy_options.ewc_lambda"
                )
            if section == "train" and name not in train_keys:
                raise ConfigError(
                    f"config key '{where}': unknown train key '{name}'; allowed: {', '.join(sorted(train_keys))}"
                )
            if not isinstance(values, list) or not values:
                raise ConfigError(f"config key '{where}' must be a non-empty list of values, got {values!r}")
            if section == "train":
                for value in values:  # one message per key, naming the bad value, wherever it is in the list
                    build_field(TrainConfig, name, value, where)


def _validate_logging(cfg: RunConfig) -> None:
    """A logger that is switched on needs its package (both are optional, the ``logging`` extra), found before any
    work rather than after the first task."""
    import importlib.util

    for key, package in (("tensorboard", "tensorboard"), ("wandb", "wandb")):
        if getattr(cfg.logging, key) and importlib.util.find_spec(package) is None:
            raise ConfigError(
                f"config key 'logging.{key}' is true, but the package '{package}' is not installed: "
                "pip install 'audio-ticl[logging]'"
            )
    if cfg.logging.wandb and not cfg.logging.wandb_project.strip():
        raise ConfigError("config key 'logging.wandb_project' must name a W&B project when logging.wandb is true")


def _validate_step(step: SequenceStep, where: str) -> None:
    if not step.source:
        raise ConfigError(f"config key '{where}.source' is required")
    unknown = sorted(set(step.train) - set(STEP_TRAIN_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown config key '{where}.train.{unknown[0]}'; a step may override: {', '.join(STEP_TRAIN_KEYS)}"
        )
    for key, value in step.train.items():  # checked like the train key it overrides (an integer >= 1)
        build_field(TrainConfig, key, value, f"{where}.train.{key}")


def to_dict(cfg: RunConfig) -> dict:
    """Plain mapping for ``config.yaml``."""
    return dataclasses.asdict(cfg)
