"""The keys of a run config: one dataclass per section, each field declared with :func:`setting` and its doc.

This file is the single source of the README's configuration reference (``python -m
audio_ticl.benchmark.config_docs --write README.md`` regenerates it). Fixed choices are ``Literal`` annotations;
names that live in a registry are :class:`Choices` read from it when checked. Every numeric key declares its
range (``minimum`` / ``maximum``), checked when the config is loaded; null, where a key takes it, is the only way
to ask for the default or "off", so 0 is never a second spelling of it.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Literal

from .config_build import build
from .config_fields import Choices, from_registry, setting

SOURCES = from_registry("audio_ticl.benchmark.datasets:SOURCES")
STRATEGIES = from_registry(
    "audio_ticl.strategies:STRATEGIES",
    pattern=r"[A-Za-z_][\w.]*:[A-Za-z_]\w*",
    pattern_doc="an import path `pkg.module:Class`",
)
PET_METHODS = from_registry("audio_ticl.models:PET_METHODS")
MIXERS = from_registry("audio_ticl.models:list_mixers")
MODELS = from_registry("audio_ticl.models:list_models")
DEVICES = Choices(("auto", "cpu", "cuda", "mps"), pattern=r"cuda:\d+", pattern_doc="`cuda:<index>`")
#: the optimizers ``strategies.make_optimizer_factory`` builds
Optimizer = Literal["adam", "adamw", "sgd"]


@dataclasses.dataclass
class DataConfig:
    """Where the clips come from."""

    source: str = setting("synthetic", doc="the dataset source", choices=SOURCES)
    root: str | None = setting(
        None,
        doc="dataset root in its official layout (ignored by `synthetic`; `ticl run --data-root` sets it); for a "
        "`dataset_sequence`, the folder that relative step roots are taken in",
    )
    options: dict[str, Any] = setting(
        factory=dict,
        doc="keyword arguments of the source: esc50 `train_folds` / `val_folds` / `test_folds` / `classes`; "
        "urbansound8k the same (folds 1-10); speechcommands `words`; fsdd `val_takes`, `train_takes` (default: "
        "all others); ave `classes`; synthetic `classes` / `clips_per_class` / `duration_s` / `seed`, e.g. "
        "`{clips_per_class: {train: 40}}`; your own data (README, \"Your own data\"): folder `split` (auto / "
        "folders / fractions), `fractions`, `split_seed`, `val_fraction`, `group_pattern`, `extensions`; csv "
        "`csv`, `delimiter`, `audio_dir`, `path_column`, `label_column`, `split_column` or `fold_column` with "
        "`train_folds` / `val_folds` / `test_folds`, `id_column`, `group_column` or `group_pattern`, `start_column` / "
        "`end_column`, `channel_column`, `fractions`, `split_seed`, `val_fraction`; both `classes` (a subset, in task "
        "order), "
        "`target_frames`, `freqm`, `timem`. Own data has no published normalisation constants: mean and std are "
        "computed on the training split unless `features.mean` and `features.std` are set",
    )
    short_clips: Literal["warn", "error"] = setting(
        "warn",
        doc="a clip shorter than half its dataset's nominal length (ESC-50 5 s, Speech Commands 1 s, AVE 10 s): "
        "`warn` counts them in the log and the summary's `data.short_clips`; `error` refuses the run, naming them",
    )


@dataclasses.dataclass
class SequenceStep:
    """One task of a ``dataset_sequence`` scenario: a whole dataset (all its classes) as one task."""

    source: str = setting("", doc="the dataset source of this task (required)", choices=SOURCES)
    root: str | None = setting(
        None, doc="dataset root; a relative path is taken inside `data.root` (`ticl run --data-root`) when that is set"
    )
    options: dict[str, Any] = setting(factory=dict, doc="keyword arguments of the source, as in `data.options`")
    name: str | None = setting(None, doc="task name in tables; null: the source name")
    train: dict[str, Any] = setting(
        factory=dict,
        doc="per-task overrides of `train.epochs` / `train.batch_size` (AI-CL trains each dataset its own way)",
    )
    fallback: SequenceStep | None = setting(
        None,
        doc="a step of the same keys (without a fallback of its own) used instead when this step's root folder does "
        "not exist (e.g. AVE, which cannot be downloaded, falling back to UrbanSound8K); a root that exists but is "
        "broken is an error, never a silent fallback",
    )


@dataclasses.dataclass
class ScenarioConfig:
    """How the classes become tasks."""

    kind: Literal["class_split", "dataset_sequence"] = setting(
        "class_split",
        doc="how the tasks are made",
        choice_docs={
            "class_split": "N tasks of K classes of one dataset",
            "dataset_sequence": "one dataset per task, AI-CL",
        },
    )
    n_tasks: int | None = setting(
        5, doc="class_split: number of tasks; null: as many as the classes allow", minimum=1
    )
    classes_per_task: int = setting(2, doc="class_split: classes per task (K)", minimum=1)
    class_order: Literal["seeded", "canonical", "groups", "explicit"] = setting(
        "seeded",
        doc="class_split: the order in which classes are dealt into tasks",
        choice_docs={
            "seeded": "shuffled with `scenario.order_seed`",
            "canonical": "the dataset's order",
            "groups": "the dataset's own groups, such as ESC-50's categories",
            "explicit": "the lists of `scenario.groups`",
        },
    )
    order_seed: int | None = setting(
        0,
        doc="class_split with class_order seeded: the seed of the class order. One fixed order (0) by default, so "
        "that T0..T4 name the same tasks under every run seed and per-task columns average like with like; null: "
        "the run seed draws each seed's own order",
        minimum=0,
    )
    groups: list[list[str]] | None = setting(
        None, doc="class_split with class_order explicit: a list of class-name lists, one per task"
    )
    sequence: list[SequenceStep] = setting(factory=list, doc="dataset_sequence: the tasks in order, one step each")


@dataclasses.dataclass
class FeatureConfig:
    """The front end: kaldi fbank (AST's) or MFCC (the MFCC-gram transformer's); null values take the dataset's
    published constants (README, "Facts the code relies on")."""

    kind: Literal["fbank", "mfcc"] = setting(
        "fbank",
        doc="`fbank`: 128-bin kaldi log-mel fbank; `mfcc`: torchaudio's MFCC of `num_mel_bins` mel bands on the same "
        "25 ms / 10 ms windows, `n_mfcc` coefficients a frame (the model's input width), normalised by the first "
        "task's training clips unless mean / std are set",
    )
    n_mfcc: int = setting(
        128, doc="MFCC coefficients a frame (`kind: mfcc`; the MFCC-gram paper keeps 128)", minimum=1
    )
    target_frames: int | None = setting(
        None,
        doc="frames after zero-padding / cropping; null: the dataset's (ESC-50 512, Speech Commands 128, synthetic "
        "100), so in a dataset_sequence each dataset keeps its own length",
        minimum=1,
    )
    num_mel_bins: int = setting(
        128, doc="mel bins (fbank's values a frame; the mel bands MFCC takes its DCT of)", minimum=1
    )
    mean: float | None = setting(
        None, doc="normalisation mean, `(x - mean) / (2 std)`; null: the dataset's published constant (own data "
        "and MFCC: computed on training clips)", any_number=True
    )
    std: float | None = setting(
        None, doc="normalisation std; null: the dataset's published constant (own data and MFCC: computed on "
        "training clips)", minimum=0, exclusive_minimum=True
    )
    freqm: int | None = setting(
        None, doc="SpecAugment frequency mask width (training only); null: the dataset's, 0: off", minimum=0
    )
    timem: int | None = setting(
        None, doc="SpecAugment time mask width (training only); null: the dataset's, 0: off", minimum=0
    )
    cache_dir: str | None = setting(
        None, doc="feature and upstream-backbone cache; null: `$TICL_CACHE` or `~/.cache/audio-ticl`"
    )


@dataclasses.dataclass
class UpstreamConfig:
    """Short supervised pretraining of the shared backbone on synthetic classes disjoint from every task.

    It stands in for AudioSet/ImageNet weights, which cannot be downloaded here, and is cached on disk.
    """

    epochs: int = setting(6, doc="epochs of the upstream pretraining", minimum=1)
    clips_per_class: int = setting(60, doc="synthetic clips per upstream class", minimum=1)
    batch_size: int = setting(32, doc="batch size of the upstream pretraining", minimum=1)
    lr: float = setting(1.0e-3, doc="learning rate of the upstream pretraining", minimum=0, exclusive_minimum=True)
    #: the synthetic source's MIN_DURATION_S (not imported: that would load the dataset code with the config)
    duration_s: float = setting(1.0, doc="clip length of the upstream data, in seconds", minimum=0.5)


@dataclasses.dataclass
class ModelConfig:
    """The AST backbone. ``name`` picks a registered size; explicit dims override it."""

    name: str = setting(
        "ast_tiny", doc="a registered backbone size (`ast_custom`: set the dims below)", choices=MODELS
    )
    embed_dim: int | None = setting(None, doc="token width; null: the size's", minimum=1)
    depth: int | None = setting(None, doc="number of blocks; null: the size's", minimum=1)
    num_heads: int | None = setting(None, doc="attention heads; null: the size's", minimum=1)
    mlp_ratio: float | None = setting(
        None, doc="MLP hidden width over the token width; null: the size's", minimum=0, exclusive_minimum=True
    )
    fstride: int = setting(10, doc="patch stride along frequency (16x16 patches; 16: no overlap)", minimum=1)
    tstride: int = setting(10, doc="patch stride along time (16x16 patches; 16: no overlap)", minimum=1)
    patch_size: list[int] | None = setting(
        None,
        doc="patch extent [frequency, time] in mel bins and frames, e.g. `[128, 2]` with strides 128 and 2 for an "
        "SSAST frame model (`model.init: ssast:<file>`); null: AST's 16 x 16",
        minimum=1,
    )
    pooling: Literal["cls", "cls_dist", "mean"] = setting(
        "cls",
        doc="how the tokens become one feature vector",
        choice_docs={
            "cls": "the CLS token",
            "cls_dist": "AST: mean of the CLS and distillation tokens",
            "mean": "SSAST: mean of the patch tokens",
        },
    )
    distill_token: bool = setting(False, doc="add a distillation token (needed by `cls_dist` pooling)")
    init: str = setting(
        "upstream",
        doc="backbone weights: `upstream` (synthetic pretraining, cached), `random`, a path to a state dict, "
        "`timm:<model>` (ImageNet ViT / DeiT converted as AST does, e.g. `timm:vit_base_patch16_384`; timm "
        "downloads them, which needs network access and `pip install timm`) or `timm:<model>:<file>` (the same "
        "from a local .pth / .bin / .safetensors timm state dict, no network; `deit_*_distilled_*` models give the "
        "distillation token), `ast:<file>` (the AST AudioSet checkpoint, head dropped), `ssast:<file>` (an SSAST "
        "patch or frame pretraining checkpoint) or `hf:<folder or hub name>` (a Hugging Face ASTModel / "
        "ASTForAudioClassification). Set `model.name` / dims to the source's size",
    )
    upstream: UpstreamConfig = setting(factory=UpstreamConfig)
    per_task_pos_embed: bool = setting(
        False,
        doc="give every task its own trainable position embedding, resampled from the backbone's (AST crop / "
        "interpolate) for the task's input length and owned by the task like its head (AI-CL, Selvaraj et al., "
        "Interspeech 2023, trains one per dataset; on in `aicl-paper`). false: tasks whose patch grid differs from "
        "the backbone's get a frozen resampled copy, and tasks of the backbone's length share its embedding",
    )


@dataclasses.dataclass
class TrainConfig:
    """Optimisation of every task. A method may override any of these keys."""

    epochs: int = setting(5, doc="epochs per task", minimum=1)
    batch_size: int = setting(32, doc="training batch size", minimum=1)
    eval_batch_size: int = setting(64, doc="evaluation batch size", minimum=1)
    optimizer: Optimizer = setting("adam", doc="a fresh optimizer per task")
    lr: float = setting(3.0e-4, doc="learning rate", minimum=0, exclusive_minimum=True)
    weight_decay: float = setting(0.0, doc="weight decay", minimum=0)
    momentum: float = setting(0.9, doc="momentum (`sgd` only)", minimum=0, maximum=1)
    select_on_val: bool = setting(
        True,
        doc="keep the epoch with the best validation accuracy of the current task, ties to the lower validation "
        "loss, then the later epoch (never the test set)",
    )
    max_batches: int | None = setting(
        None, doc="train each epoch on at most this many mini-batches (smoke runs); null: the whole task", minimum=1
    )
    device: str = setting(
        "auto", doc="where to train", choices=DEVICES, choice_docs={"auto": "CUDA when available, else the CPU"}
    )
    threads: int | None = setting(None, doc="torch threads on CPU (null: torch's default)", minimum=1)


@dataclasses.dataclass
class MethodConfig:
    """One row of the comparison: a strategy with its token mixer and PET method."""

    name: str = setting("", doc="folder and table row name (required, unique)")
    strategy: str = setting(
        "adapter_incremental", doc="the continual-learning strategy (`ticl strategies` lists them)", choices=STRATEGIES
    )
    mixer: str = setting(
        "gsa",
        doc="the token mixer",
        choices=MIXERS,
        choice_docs={
            "gsa": "global self-attention",
            "fta": "frequency-time factorized attention",
            "gsa_materialized": "global self-attention computed with the explicit L x L score matrix as in SSAST's "
            "and AI-CL's code: gsa's outputs, more memory",
            "mamba": "bidirectional Mamba, SSAMBA's layers: only with an `ssamba_*` model, which takes no other",
        },
    )
    pet: str | None = setting(None, doc="PET method injected per task (null: none)", choices=PET_METHODS)
    pet_options: dict[str, Any] = setting(
        factory=dict, doc="keyword arguments of the PET method (convpass: `dim_first_task`, `dim`, `dropout`, `scale`)"
    )
    strategy_options: dict[str, Any] = setting(
        factory=dict, doc="keyword arguments for the strategy's constructor (see Baselines and their defaults)"
    )
    train: dict[str, Any] = setting(
        factory=dict, doc="per-method overrides of the `train` section, each checked like the key it overrides"
    )
    search: dict[str, Any] = setting(
        factory=dict,
        doc="hyperparameter search space, used when `tuning.protocol` is not `none`: dotted keys of this method "
        "(`train.lr`, `strategy_options.ewc_lambda`, `pet_options.dim` ...) mapped to lists of values; the grid "
        "is their product, cut to `tuning.budget` trials (see `benchmark.tuning`); each value of a `train.*` key is "
        "checked like that key",
    )


@dataclasses.dataclass
class TuningConfig:
    """Hyperparameter selection on validation data only (``benchmark.tuning``); the test splits are not loaded.

    ``first_tasks``: each trial trains the first ``tasks`` tasks and is scored by the mean validation accuracy over
    them after the last one; the best values are then fixed for the whole sequence (Lee et al., "Hyperparameter
    Selection in Continual Learning", 2024, find this as good as the costlier realistic protocols). ``full``: each
    trial trains the whole sequence, scored the same way on every task's validation split.
    """

    protocol: Literal["none", "first_tasks", "full"] = setting(
        "none",
        doc="the search protocol (validation only, see Metrics and the evaluation protocol)",
        choice_docs={
            "none": "no search",
            "first_tasks": "a trial trains the first `tuning.tasks` tasks",
            "full": "a trial trains the whole sequence",
        },
    )
    tasks: int = setting(2, doc="first_tasks: how many of the first tasks a trial trains", minimum=1)
    budget: int = setting(
        6,
        doc="the most trials any method gets (the same for every method); a larger grid is cut to a seeded sample",
        minimum=1,
    )
    seed: int | None = setting(
        None, doc="seed of the search runs and of the grid sample; null: the run's (first) seed", minimum=0
    )


@dataclasses.dataclass
class LoggingConfig:
    """Logging beyond `metrics.csv`, through Avalanche's loggers (`benchmark.loggers`): per method and seed, the
    training accuracy and loss of each epoch, the validation accuracy and loss of each epoch and, after each task,
    its row of the accuracy matrix. Off by default; neither logger changes a result."""

    tensorboard: bool = setting(
        False,
        doc="write TensorBoard event files to `<method folder>/tensorboard/` (`tensorboard --logdir RUN_DIR`; "
        "`pip install 'audio-ticl[logging]'`)",
    )
    wandb: bool = setting(
        False,
        doc="log to one Weights & Biases run per method and seed, named `<run folder>/<method>/seed<N>` and grouped "
        "by run folder (`pip install 'audio-ticl[logging]'`)",
    )
    wandb_project: str = setting("audio-ticl", doc="the W&B project")
    wandb_mode: Literal["online", "offline", "disabled"] = setting(
        "offline",
        doc="W&B's mode",
        choice_docs={
            "online": "sent to the W&B server as it runs, after `wandb login` or with `WANDB_API_KEY` set",
            "offline": "written to disk only, nothing sent; `wandb sync` uploads it later",
            "disabled": "no W&B run at all",
        },
    )
    wandb_dir: str | None = setting(
        None, doc="the folder W&B writes its `wandb/` folder in; null: the method folder"
    )


@dataclasses.dataclass
class RunConfig:
    """A whole run: data, scenario, features, model, training and the methods to compare."""

    name: str = setting(
        "run", doc="shown in tables and `ticl presets`; a preset's or file's own name, never the one it extends"
    )
    description: str = setting("", doc="one paragraph, shown by `ticl presets`")
    seed: int = setting(
        0,
        doc="data order and initialisation (and the class order when `scenario.order_seed` is null); `--seed` "
        "sets it",
        minimum=0,
    )
    data: DataConfig = setting(factory=DataConfig)
    scenario: ScenarioConfig = setting(factory=ScenarioConfig)
    features: FeatureConfig = setting(factory=FeatureConfig)
    model: ModelConfig = setting(factory=ModelConfig)
    train: TrainConfig = setting(factory=TrainConfig)
    tuning: TuningConfig = setting(factory=TuningConfig)
    logging: LoggingConfig = setting(factory=LoggingConfig)
    methods: list[MethodConfig] = setting(
        factory=list, doc="the methods to compare, one table row each (at least one)"
    )

    def method_train(self, method: MethodConfig) -> TrainConfig:
        """The train section with the method's overrides applied."""
        merged = dataclasses.asdict(self.train) | dict(method.train)
        return build(TrainConfig, merged, f"methods.{method.name}.train")
