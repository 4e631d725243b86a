"""The run configuration: one dataclass tree, loaded from YAML presets plus ``--set key=value`` overrides.

Every key is documented on its dataclass field. An unknown or misspelled key is a :class:`ConfigError` that
names the key and lists the allowed ones, so a typo never silently falls back to a default.
"""
from __future__ import annotations

import copy
import dataclasses
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Optional

import yaml

from .errors import ConfigError


@dataclass
class DataConfig:
    """Where the clips come from."""

    #: dataset source: synthetic | esc50 | speechcommands | fsdd | urbansound8k (see ``benchmark.datasets.SOURCES``)
    source: str = "synthetic"
    #: dataset root in the official layout (ignored by ``synthetic``); ``ticl run --data-root`` overrides it
    root: Optional[str] = None
    #: keyword arguments for the source, e.g. ``{words: [yes, no]}`` or ``{clips_per_class: {train: 40}}``
    options: dict = field(default_factory=dict)


@dataclass
class SequenceStep:
    """One task of a ``dataset_sequence`` scenario: a whole dataset (all its classes) as one task."""

    source: str = ""
    #: dataset root; a relative path is taken inside ``data.root`` (``ticl run --data-root``) when that is set
    root: Optional[str] = None
    options: dict = field(default_factory=dict)
    #: task name in tables (defaults to the source name)
    name: Optional[str] = None
    #: per-task overrides of ``train.epochs`` / ``train.batch_size`` (AI-CL trains each dataset its own way)
    train: dict = field(default_factory=dict)
    #: a step ``{source, root, options, name, train}`` used instead when this step's root folder does not exist
    #: (e.g. AVE, which cannot be downloaded, falling back to UrbanSound8K); a root that exists but is broken is
    #: an error, never a silent fallback
    fallback: Optional[dict] = None


@dataclass
class ScenarioConfig:
    """How the classes become tasks."""

    #: class_split (N tasks of K classes of one dataset) | dataset_sequence (one dataset per task, AI-CL)
    kind: str = "class_split"
    #: class_split: number of tasks (null: as many as the classes allow)
    n_tasks: Optional[int] = 5
    #: class_split: classes per task
    classes_per_task: int = 2
    #: class_split: seeded (shuffle with the run seed) | canonical (dataset order) | groups (dataset's own
    #: groups such as ESC-50's categories) | explicit (the ``groups`` key)
    class_order: str = "seeded"
    #: class_split with class_order seeded: the seed of the class order. One fixed order (0) by default, so that
    #: T0..T4 name the same tasks under every run seed and per-task columns average like with like; null: the
    #: run seed draws each seed's own order
    order_seed: Optional[int] = 0
    #: class_split with class_order explicit: a list of class-name lists, one per task
    groups: Optional[list] = None
    #: dataset_sequence: the tasks in order
    sequence: list = field(default_factory=list)


@dataclass
class FeatureConfig:
    """Kaldi fbank front end; null values take the dataset's published constants (README, "Facts the code relies on")."""

    target_frames: Optional[int] = None
    num_mel_bins: int = 128
    #: normalisation mean/std: null = the dataset's published constants
    mean: Optional[float] = None
    std: Optional[float] = None
    #: SpecAugment mask widths (training only); null = dataset default, 0 = off
    freqm: Optional[int] = None
    timem: Optional[int] = None
    #: feature cache directory; null = $TICL_CACHE or ~/.cache/audio-ticl
    cache_dir: Optional[str] = None


@dataclass
class UpstreamConfig:
    """Short supervised pretraining of the shared backbone on synthetic classes disjoint from every task.

    It stands in for AudioSet/ImageNet weights, which cannot be downloaded here, and is cached on disk.
    """

    epochs: int = 6
    clips_per_class: int = 60
    batch_size: int = 32
    lr: float = 1.0e-3
    #: clip length of the upstream data, in seconds
    duration_s: float = 1.0


@dataclass
class ModelConfig:
    """The AST backbone. ``name`` picks a registered size; explicit dims override it."""

    name: str = "ast_tiny"
    embed_dim: Optional[int] = None
    depth: Optional[int] = None
    num_heads: Optional[int] = None
    mlp_ratio: Optional[float] = None
    fstride: int = 10
    tstride: int = 10
    #: cls | cls_dist (AST: mean of CLS and distillation token) | mean (SSAST: mean of patch tokens)
    pooling: str = "cls"
    distill_token: bool = False
    #: backbone weights: upstream (synthetic pretraining, cached) | random | a path to a state dict |
    #: timm:<model> (ImageNet ViT / DeiT converted as AST does, e.g. timm:vit_base_patch16_384; timm downloads
    #: them, which needs network access and ``pip install timm``) | timm:<model>:<file> (the same from a local
    #: .pth / .bin / .safetensors timm state dict, no network). Set model.name / dims to the source's size.
    init: str = "upstream"
    upstream: UpstreamConfig = field(default_factory=UpstreamConfig)
    #: give every task its own trainable position embedding, resampled from the backbone's (AST crop /
    #: interpolate) for the task's input length and owned by the task like its head (AI-CL, Selvaraj et al.,
    #: Interspeech 2023, trains one per dataset). false: tasks whose patch grid differs from the backbone's get a
    #: frozen resampled copy, and tasks of the backbone's length share its embedding
    per_task_pos_embed: bool = False


@dataclass
class TrainConfig:
    """Optimisation of every task. A method may override any of these keys."""

    epochs: int = 5
    batch_size: int = 32
    eval_batch_size: int = 64
    #: adam | adamw | sgd
    optimizer: str = "adam"
    lr: float = 3.0e-4
    weight_decay: float = 0.0
    momentum: float = 0.9
    #: keep the epoch with the best validation accuracy of the current task (never the test set)
    select_on_val: bool = True
    #: train each epoch on at most this many mini-batches (smoke runs); null: the whole task
    max_batches: Optional[int] = None
    #: cpu | cuda | auto
    device: str = "auto"
    #: torch threads on CPU (0 = torch's default)
    threads: int = 0


@dataclass
class MethodConfig:
    """One row of the comparison: a strategy with its token mixer and PET method."""

    name: str = ""
    #: a registered strategy name (``ticl strategies``) or an import path ``pkg.module:Class``
    strategy: str = "adapter_incremental"
    #: gsa (global self-attention) | fta (frequency-time factorized attention)
    mixer: str = "gsa"
    #: PET method injected per task (convpass) or null for none
    pet: Optional[str] = None
    pet_options: dict = field(default_factory=dict)
    #: keyword arguments for the strategy's constructor
    strategy_options: dict = field(default_factory=dict)
    #: per-method overrides of the ``train`` section
    train: dict = field(default_factory=dict)
    #: hyperparameter search space, used when ``tuning.protocol`` is not ``none``: dotted keys of this method
    #: (``train.lr``, ``strategy_options.ewc_lambda``, ``pet_options.dim`` ...) mapped to lists of values; the
    #: grid is their product, cut to ``tuning.budget`` trials (see ``benchmark.tuning``)
    search: dict = field(default_factory=dict)


@dataclass
class TuningConfig:
    """Hyperparameter selection on validation data only (``benchmark.tuning``); the test splits are not loaded.

    ``first_tasks``: each trial trains the first ``tasks`` tasks and is scored by the mean validation accuracy over
    them after the last one; the best values are then fixed for the whole sequence (Lee et al., "Hyperparameter
    Selection in Continual Learning", 2024, find this as good as the costlier realistic protocols). ``full``: each
    trial trains the whole sequence, scored the same way on every task's validation split.
    """

    #: none | first_tasks | full
    protocol: str = "none"
    #: first_tasks: how many of the first tasks a trial trains
    tasks: int = 2
    #: the most trials any method gets (the same for every method); a larger grid is cut to a seeded sample
    budget: int = 6
    #: seed of the search runs and of the grid sample; null: the run's (first) seed
    seed: Optional[int] = None


@dataclass
class RunConfig:
    """A whole run: data, scenario, features, model, training and the methods to compare."""

    name: str = "run"
    description: str = ""
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    scenario: ScenarioConfig = field(default_factory=ScenarioConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    tuning: TuningConfig = field(default_factory=TuningConfig)
    methods: list = field(default_factory=list)

    def method_train(self, method: MethodConfig) -> TrainConfig:
        """The train section with the method's overrides applied."""
        merged = dataclasses.asdict(self.train) | dict(method.train)
        return build(TrainConfig, merged, "methods.%s.train" % method.name)


_LIST_ITEM_TYPES = {("RunConfig", "methods"): MethodConfig, ("ScenarioConfig", "sequence"): SequenceStep}


def build(cls: type, values: Any, where: str) -> Any:
    """Build dataclass ``cls`` from a mapping, rejecting unknown keys with the allowed ones listed."""
    if values is None:
        values = {}
    if not isinstance(values, dict):
        raise ConfigError(f"config key '{where}' must be a mapping, got {type(values).__name__}: {values!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(
            f"unknown config key '{_join(where, unknown[0])}'; allowed keys in '{where or 'top level'}': "
            + ", ".join(names)
        )
    kwargs = {}
    for name, value in values.items():
        key = _join(where, name)
        hint = hints[name]
        item_type = _LIST_ITEM_TYPES.get((cls.__name__, name))
        if dataclasses.is_dataclass(hint):
            kwargs[name] = build(hint, value, key)
        elif item_type is not None:
            if not isinstance(value, list):
                raise ConfigError(f"config key '{key}' must be a list, got {value!r}")
            kwargs[name] = [build(item_type, v, f"{key}.{i}") for i, v in enumerate(value)]
        else:
            kwargs[name] = _check_scalar(hint, value, key)
    return cls(**kwargs)


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _check_scalar(hint: Any, value: Any, key: str) -> Any:
    """Check a leaf value against its annotation (with int -> float promotion)."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is typing.Union and type(None) in args:
        if value is None:
            return None
        hint = next(a for a in args if a is not type(None))
        origin = typing.get_origin(hint)
    expected = origin or hint
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is float and isinstance(value, str):
        try:  # PyYAML (YAML 1.1) reads "3e-4" without a dot as a string
            return float(value)
        except ValueError:
            pass
    if expected is int and isinstance(value, bool):
        raise ConfigError(f"config key '{key}' expects an integer, got {value!r}")
    if expected in (int, float, str, bool, dict, list) and not isinstance(value, expected):
        raise ConfigError(f"config key '{key}' expects {expected.__name__}, got {value!r}")
    return value


# ----------------------------------------------------------------------------------------------- loading
PRESET_PACKAGE = "audio_ticl.benchmark.presets"


def list_presets() -> dict[str, str]:
    """Shipped preset names and their one-line descriptions."""
    out = {}
    for entry in sorted(resources.files(PRESET_PACKAGE).iterdir(), key=lambda p: p.name):
        if entry.name.endswith(".yaml"):
            raw = yaml.safe_load(entry.read_text()) or {}
            description = str(raw.get("description", "")).strip()
            if isinstance(raw.get("smoke"), dict):
                description += " [--smoke: a tiny CPU variant]"
            out[entry.name[: -len(".yaml")]] = description
    return out


def load_raw(preset: Optional[str] = None, config_file: Optional[Path] = None) -> dict:
    """The raw mapping of a preset or a YAML file (a file may ``extends: PRESET`` to start from one)."""
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"config file not found: {path}")
        try:
            raw = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"config file {path} must hold a mapping at the top level")
        base = raw.pop("extends", None)
        own_name = raw.get("name", path.stem)  # a file's own name, never the preset it extends
        raw = _deep_merge(load_raw(base), raw) if base else raw
        raw["name"] = own_name
        return raw
    name = preset or "default"
    presets = list_presets()
    if name not in presets:
        raise ConfigError(f"unknown preset '{name}'; available presets: {', '.join(presets)}")
    raw = yaml.safe_load(resources.files(PRESET_PACKAGE).joinpath(f"{name}.yaml").read_text()) or {}
    base = raw.pop("extends", None)
    own_name = raw.get("name", name)  # the preset's own name, never the one it extends
    raw = _deep_merge(load_raw(base), raw) if base else raw
    raw["name"] = own_name
    return raw


def _deep_merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def apply_override(raw: dict, assignment: str) -> None:
    """Apply one ``dotted.key=value`` (value parsed as YAML; list items addressed by index or method name)."""
    if "=" not in assignment:
        raise ConfigError(f"--set expects key=value, got '{assignment}'")
    dotted, text = assignment.split("=", 1)
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = text
    parts = dotted.strip().split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        node = _descend(node, part, ".".join(parts[: i + 1]))
    last = parts[-1]
    if isinstance(node, list):
        node[_list_index(node, last, dotted)] = value
    else:
        node[last] = value


def _descend(node: Any, part: str, where: str) -> Any:
    if isinstance(node, list):
        return node[_list_index(node, part, where)]
    if not isinstance(node, dict):
        raise ConfigError(f"--set: '{where}' is not a section")
    return node.setdefault(part, {})


def _list_index(items: list, part: str, where: str) -> int:
    if part.isdigit() and int(part) < len(items):
        return int(part)
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get("name") == part:
            return i
    names = [str(item.get("name", i)) if isinstance(item, dict) else str(i) for i, item in enumerate(items)]
    raise ConfigError(f"--set: no list item '{part}' at '{where}'; items: {', '.join(names)}")


def load_config(
    preset: Optional[str] = None,
    config_file: Optional[Path] = None,
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
        raw = _deep_merge(raw, smoke_section)
        raw["name"] = f"{raw.get('name', 'run')}-smoke"
    for assignment in overrides:
        apply_override(raw, assignment)
    cfg = build(RunConfig, raw, "")
    validate(cfg)
    return cfg


def validate(cfg: RunConfig) -> None:
    """Cross-field checks that the dataclass types cannot express."""
    if not cfg.methods:
        raise ConfigError("config key 'methods' must list at least one method")
    seen = set()
    for i, method in enumerate(cfg.methods):
        if not method.name:
            raise ConfigError(f"config key 'methods.{i}.name' is required")
        if method.name in seen:
            raise ConfigError(f"config key 'methods.{i}.name': duplicate method name '{method.name}'")
        seen.add(method.name)
        if method.mixer not in ("gsa", "fta"):
            raise ConfigError(f"config key 'methods.{i}.mixer' must be gsa or fta, got '{method.mixer}'")
        cfg.method_train(method)  # validates the per-method train overrides
    if cfg.scenario.kind not in ("class_split", "dataset_sequence"):
        raise ConfigError(
            f"config key 'scenario.kind' must be class_split or dataset_sequence, got '{cfg.scenario.kind}'"
        )
    if cfg.scenario.class_order not in ("seeded", "canonical", "groups", "explicit"):
        raise ConfigError(
            "config key 'scenario.class_order' must be seeded, canonical, groups or explicit, "
            f"got '{cfg.scenario.class_order}'"
        )
    if cfg.scenario.kind == "dataset_sequence" and not cfg.scenario.sequence:
        raise ConfigError("config key 'scenario.sequence' must list the datasets of a dataset_sequence scenario")
    for i, step in enumerate(cfg.scenario.sequence):
        _validate_step(step, f"scenario.sequence.{i}")
        if step.fallback is not None:
            step.fallback = build(SequenceStep, step.fallback, f"scenario.sequence.{i}.fallback")
            if step.fallback.fallback is not None:
                raise ConfigError(f"config key 'scenario.sequence.{i}.fallback.fallback': a fallback cannot have one")
            _validate_step(step.fallback, f"scenario.sequence.{i}.fallback")
    _validate_tuning(cfg)
    if cfg.train.optimizer not in ("adam", "adamw", "sgd"):
        raise ConfigError(f"config key 'train.optimizer' must be adam, adamw or sgd, got '{cfg.train.optimizer}'")


#: the sections of a method a search key may address
SEARCH_SECTIONS = ("train", "strategy_options", "pet_options")


def _validate_tuning(cfg: RunConfig) -> None:
    tuning = cfg.tuning
    if tuning.protocol not in ("none", "first_tasks", "full"):
        raise ConfigError(f"config key 'tuning.protocol' must be none, first_tasks or full, got '{tuning.protocol}'")
    if tuning.budget < 1:
        raise ConfigError(f"config key 'tuning.budget' must be >= 1, got {tuning.budget}")
    if tuning.tasks < 1:
        raise ConfigError(f"config key 'tuning.tasks' must be >= 1, got {tuning.tasks}")
    train_keys = {f.name for f in dataclasses.fields(TrainConfig)}
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
                raise ConfigError(f"config key '{where}': unknown train key '{name}'; allowed: {', '.join(sorted(train_keys))}")
            if not isinstance(values, list) or not values:
                raise ConfigError(f"config key '{where}' must be a non-empty list of values, got {values!r}")


#: the train keys a dataset_sequence step may override
STEP_TRAIN_KEYS = ("epochs", "batch_size")


def _validate_step(step: SequenceStep, where: str) -> None:
    if not step.source:
        raise ConfigError(f"config key '{where}.source' is required")
    unknown = sorted(set(step.train) - set(STEP_TRAIN_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown config key '{where}.train.{unknown[0]}'; a step may override: {', '.join(STEP_TRAIN_KEYS)}"
        )
    for key, value in step.train.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"config key '{where}.train.{key}' expects a positive integer, got {value!r}")


def to_dict(cfg: RunConfig) -> dict:
    """Plain mapping for ``config.yaml``."""
    return dataclasses.asdict(cfg)
