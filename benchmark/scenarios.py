"""Turn a config into tasks (features + local labels per split) and an Avalanche task-incremental benchmark.

Two scenario kinds share one path: ``class_split`` cuts one dataset's classes into tasks; ``dataset_sequence``
makes each dataset one task (the AI-CL protocol). Either way every task gets train/val/test splits, a constant
task label, and class ids from zero, so one generic Avalanche benchmark serves both.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import Dataset

from .audio.cache import FeatureCache, extract_features
from .audio.features import SpecAugment, feature_stats, normalize
from .config import FeatureConfig, RunConfig, SequenceStep
from .datasets import SOURCES
from .datasets.base import SPLITS, Clip, ClipSource
from .errors import ConfigError, DataError
from .front_end import front_end

log = logging.getLogger(__name__)


@dataclass
class FeatureSplit:
    """Un-normalised fbank features ``(N, T, F)`` and local labels ``(N,)`` of one task split."""

    features: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class TaskData:
    """Everything the runner needs about one task."""

    id: int
    name: str
    source: str
    classes: list[str]
    splits: dict[str, FeatureSplit]
    mean: float
    std: float
    freqm: int
    timem: int
    #: this task's overrides of ``train.epochs`` / ``train.batch_size`` (dataset_sequence steps)
    train: dict = field(default_factory=dict)

    def dataset(self, split: str, augment: bool | None = None) -> FeatureDataset:
        """A torch dataset for ``split``: normalised features, SpecAugment on ``train`` only (or as ``augment``
        says)."""
        augment = (split == "train") if augment is None else augment
        part = self.splits[split]
        spec = self.spec_augment() if augment else None
        return FeatureDataset(part.features, part.labels, self.mean, self.std, spec)

    def spec_augment(self) -> SpecAugment:
        return SpecAugment(self.freqm, self.timem)

    def avalanche_dataset(self, split: str):
        """The task's ``split`` as an Avalanche task-aware dataset whose augmentation follows its mode.

        SpecAugment is in Avalanche's *train* transform group and normalisation in both groups, so
        ``dataset.train()`` augments and ``dataset.eval()`` does not. A strategy that reads training data outside
        the training loop (EWC's Fisher, the replay and A-GEM memories) calls ``.eval()`` and sees the clips as
        they are. Only the ``train`` split has an augmenting train group, and it starts in train mode.
        """
        from audio_ticl.strategies.avalanche_compat import make_taskaware_dataset

        part = self.splits[split]
        raw = FeatureDataset(part.features, part.labels, self.mean, self.std, augment=None, normalise=False)
        norm = _Normalise(self.mean, self.std)
        train_tf = _Compose(self.spec_augment(), norm) if split == "train" else norm
        return make_taskaware_dataset(
            raw, task_labels=self.id, transform_groups={"train": (train_tf, None), "eval": (norm, None)},
            initial_transform_group="train" if split == "train" else "eval",
        )


class _Normalise:
    """AST normalisation as a picklable transform."""

    def __init__(self, mean: float, std: float) -> None:
        self.mean, self.std = mean, std

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return normalize(x, self.mean, self.std)


class _Compose:
    """Apply transforms in order (SpecAugment before normalisation, as the AST recipe orders it)."""

    def __init__(self, *transforms) -> None:
        self.transforms = transforms

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for transform in self.transforms:
            x = transform(x)
        return x


class FeatureDataset(Dataset):
    """Cached fbank features, masked (if ``augment``) then normalised on the fly, as the AST recipe orders it."""

    def __init__(
        self,
        features: torch.Tensor,
        labels: torch.Tensor,
        mean: float,
        std: float,
        augment: SpecAugment | None = None,
        normalise: bool = True,
    ) -> None:
        self.features = features
        self.labels = labels
        self.targets = labels.tolist()
        self.mean = mean
        self.std = std
        self.augment = augment
        self.normalise = normalise

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        x = self.features[index]
        if self.augment is not None:
            x = self.augment(x)
        return (normalize(x, self.mean, self.std) if self.normalise else x), self.targets[index]


# ------------------------------------------------------------------------------------------------- sources
def make_source(name: str, root: str | None, options: dict, where: str) -> ClipSource:
    """Instantiate a registered dataset source, with config-level errors for bad names or options."""
    if name not in SOURCES:
        raise ConfigError(f"config key '{where}.source': unknown source '{name}'; available: {', '.join(SOURCES)}")
    cls = SOURCES[name]
    kwargs = dict(options or {})
    if name != "synthetic":
        if not root:
            raise ConfigError(
                f"dataset '{name}' needs a root folder in its official layout: set '{where}.root' or pass --data-root"
            )
        kwargs["root"] = Path(root).expanduser()
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"config key '{where}.options' does not fit source '{name}': {exc}") from None


# ---------------------------------------------------------------------------------------------- task plans
def plan_class_split(source: ClipSource, scenario, seed: int) -> list[tuple[str, list[str]]]:
    """(task name, classes) per task for a class-split scenario."""
    classes = source.classes()
    k = scenario.classes_per_task
    order = scenario.class_order
    if order == "groups":
        groups = source.class_groups()
        if not groups:
            raise ConfigError(f"scenario.class_order=groups, but source '{source.name}' defines no class groups")
        plan = [(name, members) for name, members in groups.items()]
    elif order == "explicit":
        if not scenario.groups:
            raise ConfigError("scenario.class_order=explicit needs 'scenario.groups': a list of class-name lists")
        known = set(classes)
        plan = []
        for i, group in enumerate(scenario.groups):
            missing = [c for c in group if c not in known]
            if missing:
                raise ConfigError(
                    f"config key 'scenario.groups.{i}': classes {missing} are not in source '{source.name}'; "
                    f"available: {', '.join(classes)}"
                )
            plan.append(("+".join(group), list(group)))
    else:
        if k < 1:
            raise ConfigError(f"config key 'scenario.classes_per_task' must be >= 1, got {k}")
        ordered = list(classes)
        if order == "seeded":
            # one fixed order across run seeds unless scenario.order_seed is null
            order_seed = scenario.order_seed if scenario.order_seed is not None else seed
            random.Random(order_seed).shuffle(ordered)
        n_tasks = scenario.n_tasks or len(ordered) // k
        if n_tasks * k > len(ordered) or n_tasks < 1:
            raise ConfigError(
                f"scenario asks for {n_tasks} tasks of {k} classes, but source '{source.name}' has "
                f"{len(ordered)} classes: {', '.join(classes)}"
            )
        plan = [("+".join(ordered[i * k : (i + 1) * k]), ordered[i * k : (i + 1) * k]) for i in range(n_tasks)]
    if scenario.n_tasks and order in ("groups", "explicit"):
        plan = plan[: scenario.n_tasks]
    seen: set[str] = set()
    for name, members in plan:
        overlap = seen.intersection(members)
        if overlap:
            raise ConfigError(f"class(es) {sorted(overlap)} appear in more than one task (task '{name}')")
        seen.update(members)
    return plan


# ------------------------------------------------------------------------------------------------ building
def default_cache_dir(features: FeatureConfig) -> Path:
    """The feature cache folder: config key, then $TICL_CACHE, then ~/.cache/audio-ticl."""
    import os

    if features.cache_dir:
        return Path(features.cache_dir).expanduser()
    return Path(os.environ.get("TICL_CACHE", Path.home() / ".cache" / "audio-ticl")).expanduser()


@dataclass
class BuildReport:
    """How the features were obtained, for the closing log line and the summary."""

    clips: int = 0
    cache_hits: int = 0
    cache_misses: int = 0
    seconds: float = 0.0
    #: clips shorter than half their dataset's nominal length (``ClipSource.nominal_seconds``), and a few of them
    short_clips: int = 0
    short_examples: list[str] = field(default_factory=list)
    #: sources without published normalisation constants (own data): what each was normalised by, and how
    normalisation: list[dict] = field(default_factory=list)


#: a clip with less signal than this share of its dataset's nominal length is short
SHORT_SHARE = 0.5


def _count_short_clips(source: ClipSource, clips: list[Clip], features: torch.Tensor, settings, report: BuildReport,
                       policy: str) -> None:
    """Count (or, with ``policy == "error"``, refuse) clips far shorter than the dataset's nominal length. A clip's
    length is read from its features: the front end zero-pads a clip at the end, so its frames of signal are its
    rows that are not all zero; a truncated or cut recording that decodes shows up here."""
    if source.nominal_seconds is None or not clips:
        return
    frames_per_second = 1000.0 / settings.frame_shift_ms
    expected = min(features.shape[1], source.nominal_seconds * frames_per_second)
    signal = features.ne(0).any(dim=-1).sum(dim=-1)
    short = [clips[i] for i in torch.nonzero(signal < SHORT_SHARE * expected).flatten().tolist()]
    if not short:
        return
    names = [str(clip.path or clip.key) for clip in short]
    what = (f"{len(short)} of {len(clips)} clips of source '{source.name}' are shorter than half its nominal "
            f"{source.nominal_seconds:g} s")
    if policy == "error":
        raise DataError(f"{what} (data.short_clips: error): {', '.join(names[:10])}"
                        + (f" and {len(names) - 10} more" if len(names) > 10 else ""))
    log.warning("%s, e.g. %s; counted in the summary (data.short_clips), refused with data.short_clips: error",
                what, ", ".join(names[:3]))
    report.short_clips += len(short)
    report.short_examples += names[: max(0, 10 - len(report.short_examples))]


def _tasks_from_source(
    source: ClipSource,
    plan: list[tuple[str, list[str]]],
    first_id: int,
    features: FeatureConfig,
    target_frames: int,
    cache: FeatureCache,
    report: BuildReport,
    progress: bool,
    splits: tuple[str, ...] = SPLITS,
    short_clips: str = "warn",
) -> list[TaskData]:
    """Features for every task of ``plan`` (one pass over the source, one progress bar), split per task.

    Only clips of ``splits`` are read: a hyperparameter search builds its tasks without ``test``, so no test clip
    is decoded, cached or seen."""
    defaults = source.feature_defaults
    settings = front_end(features, target_frames)
    wanted = {c for _, classes in plan for c in classes}
    clips = [clip for clip in source.clips() if clip.label in wanted and clip.split in splits]
    batch = extract_features(clips, settings, cache, progress=progress, desc=f"features {source.name}")
    report.clips += len(clips)
    report.cache_hits += batch.hits
    report.cache_misses += batch.misses
    report.seconds += batch.seconds
    _count_short_clips(source, clips, batch.features, settings, report, short_clips)
    mean, std = defaults.mean, defaults.std
    if features.kind == "mfcc":  # the datasets' constants are fbank's; MFCC's: the first task's training clips
        first_classes = set(plan[0][1])
        first = [i for i, clip in enumerate(clips) if clip.split == "train" and clip.label in first_classes]
        mean, std = feature_stats(batch.features[first])
    elif mean is None or std is None:  # own data: no published constants
        mean, std = _own_stats(source, clips, batch.features, wanted, features, settings, cache, report, progress)
    tasks = []
    for offset, (name, classes) in enumerate(plan):
        index = {c: i for i, c in enumerate(classes)}
        task_splits = {}
        for split in splits:
            rows = [i for i, clip in enumerate(clips) if clip.split == split and clip.label in index]
            present = {clips[i].label for i in rows}
            missing = [c for c in classes if c not in present]
            if missing:
                raise DataError(
                    f"task '{name}' of source '{source.name}' has no {split} clips for class(es) {missing}; "
                    "every class needs train, val and test clips"
                )
            labels = torch.tensor([index[clips[i].label] for i in rows], dtype=torch.long)
            task_splits[split] = FeatureSplit(batch.features[rows], labels)
        tasks.append(
            TaskData(
                id=first_id + offset,
                name=name,
                source=source.name,
                classes=list(classes),
                splits=task_splits,
                mean=features.mean if features.mean is not None else mean,
                std=features.std if features.std is not None else std,
                freqm=features.freqm if features.freqm is not None else defaults.freqm,
                timem=features.timem if features.timem is not None else defaults.timem,
            )
        )
    return tasks


def _own_stats(source: ClipSource, clips: list[Clip], batch: torch.Tensor, wanted: set[str], features: FeatureConfig,
               settings, cache: FeatureCache, report: BuildReport, progress: bool) -> tuple[float, float]:
    """Mean and std of a source without published constants: ``features.mean`` / ``std`` where the config sets
    both, else computed on the training clips of every class in ``wanted`` (cached; :mod:`.datasets.stats`)."""
    if features.mean is not None and features.std is not None:
        report.normalisation.append({"source": source.name, "from": "features.mean / features.std (config)",
                                     "mean": features.mean, "std": features.std})
        return features.mean, features.std
    from .datasets.stats import training_stats

    train = [i for i, clip in enumerate(clips) if clip.split == "train"]
    if train:
        stats = training_stats([clips[i] for i in train], settings, cache, batch[train], progress)
    else:  # built without the training split (e.g. only "val"): the statistics still come from the training clips
        train_clips = [clip for clip in source.clips() if clip.label in wanted and clip.split == "train"]
        stats = training_stats(train_clips, settings, cache, None, progress)
    report.normalisation.append(stats.report(source.name))
    log.info("%s: no published normalisation constants; mean %.4f, std %.4f computed on %d training clips%s",
             source.name, stats.mean, stats.std, stats.clips, " (cached)" if stats.cached else "")
    return stats.mean, stats.std


def build_tasks(
    cfg: RunConfig, progress: bool = True, splits: tuple[str, ...] = SPLITS
) -> tuple[list[TaskData], BuildReport]:
    """Load the sources named by ``cfg`` and compute (or read cached) features of ``splits`` for every task."""
    cache = FeatureCache(default_cache_dir(cfg.features) / "features")
    report = BuildReport()
    if cfg.scenario.kind == "class_split":
        source = make_source(cfg.data.source, cfg.data.root, cfg.data.options, "data")
        frames = cfg.features.target_frames or source.feature_defaults.target_frames
        plan = plan_class_split(source, cfg.scenario, cfg.seed)
        tasks = _tasks_from_source(source, plan, 0, cfg.features, frames, cache, report, progress, splits,
                                   cfg.data.short_clips)
        return tasks, report
    steps = []
    for i, step in enumerate(cfg.scenario.sequence):
        step, where = resolve_step(step, cfg.data.root, f"scenario.sequence.{i}")
        steps.append((step, make_source(step.source, step_root(step, cfg.data.root), step.options, where)))
    # Each dataset keeps its own input length (AI-CL: Speech Commands 128 frames, ESC-50 512, AVE 1006), unless
    # features.target_frames forces one common length on every task.
    tasks: list[TaskData] = []
    for task_id, (step, source) in enumerate(steps):
        frames = cfg.features.target_frames or source.feature_defaults.target_frames
        plan = [(step.name or source.name, source.classes())]
        step_tasks = _tasks_from_source(source, plan, task_id, cfg.features, frames, cache, report, progress, splits,
                                        cfg.data.short_clips)
        for task in step_tasks:
            task.train = dict(step.train)
        tasks += step_tasks
    return tasks, report


def step_root(step: SequenceStep, base: str | None) -> str | None:
    """The step's root, taken inside ``base`` (``data.root``) when it is relative and a base is given."""
    if step.root is None:
        return base if step.source != "synthetic" else None
    root = Path(step.root).expanduser()
    if base and not root.is_absolute():
        root = Path(base).expanduser() / root
    return str(root)


def resolve_step(step: SequenceStep, base: str | None, where: str) -> tuple[SequenceStep, str]:
    """The step itself, or its ``fallback`` when the step's root folder does not exist.

    Only a missing folder falls back: a folder that exists but is malformed raises in its loader, so a broken
    dataset is never silently replaced by another one.
    """
    if step.fallback is None or step.source == "synthetic":
        return step, where
    root = step_root(step, base)
    if root is not None and Path(root).is_dir():
        return step, where
    fallback = step.fallback
    log.warning(
        "%s: %s not found at %s; using the fallback %s at %s instead (see the README to place %s there)",
        where, step.source, root, fallback.source, step_root(fallback, base), step.source,
    )
    return fallback, f"{where}.fallback"


def task_frames(tasks: list[TaskData]) -> dict[int, int]:
    """Each task's number of input frames, ``{task id: frames}`` (a dataset_sequence keeps one per dataset)."""
    out: dict[int, int] = {}
    for task in tasks:
        lengths = {int(part.features.shape[1]) for part in task.splits.values() if part.features.ndim == 3}
        if len(lengths) != 1:
            raise DataError(f"task {task.id} ('{task.name}') has splits of different lengths {sorted(lengths)}")
        out[task.id] = lengths.pop()
    return out


def model_frames(tasks: list[TaskData]) -> int:
    """The input length to build the backbone with: the longest task's.

    Tasks of other lengths get their position embedding resampled from the backbone's (``TaskIncrementalModel``).
    The longest is the choice that loses nothing: a shorter task's embedding is then a centre crop in time, and a
    crop of a crop is the crop AST would take straight from the checkpoint (exact whenever the pretrained grid is
    at least as long as every task, e.g. AST's AudioSet 1024 frames), while building at a shorter length would
    throw away learned time columns and interpolate them back for the longer tasks. It also sizes the backbone's
    own forward for the largest input. With one common length it is that length, as before.
    """
    frames = task_frames(tasks)
    if not frames:
        raise ConfigError("no tasks: cannot choose an input length for the model")
    return max(frames.values())


def input_frames(tasks: list[TaskData]) -> int:
    """The one input length all tasks share; a ConfigError when they differ.

    Models no longer need it (see :func:`task_frames` and :func:`model_frames`); it remains the check for code
    that puts samples of several tasks into one batch (replay, A-GEM, cumulative, joint training), which cannot
    stack inputs of different lengths.
    """
    frames = task_frames(tasks)
    if len(set(frames.values())) != 1:
        raise ConfigError(
            "tasks have different input lengths (task: frames "
            f"{frames}); this needs one common length: set features.target_frames"
        )
    return next(iter(frames.values()))


def make_benchmark(tasks: list[TaskData]):
    """An Avalanche benchmark with ``train``, ``valid`` and ``test`` streams, one experience per task.

    Built the new-API way (one task-aware classification dataset per task, local labels, constant task label);
    This route works with every Avalanche 0.6 strategy on this stack (checked when the suite was built).
    """
    from avalanche.benchmarks.scenarios import benchmark_from_datasets, with_task_labels
    from avalanche.benchmarks.scenarios.supervised import with_classes_timeline
    streams: dict[str, list] = {}
    for task in tasks:
        for split, stream in (("train", "train"), ("val", "valid"), ("test", "test")):
            if split in task.splits:  # a search's tasks have no test split
                streams.setdefault(stream, []).append(task.avalanche_dataset(split))
    return with_classes_timeline(with_task_labels(benchmark_from_datasets(**streams)))
