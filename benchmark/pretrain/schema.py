"""The ``ticl pretrain`` config: where the unlabelled clips come from, the front end, the backbone, the objective
and the optimisation. Presets live in ``audio_ticl.benchmark.presets.pretrain``; ``extends:`` and ``--set`` work
as for ``ticl run``."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from audio_ticl.benchmark.config_build import build
from audio_ticl.benchmark.config_fields import from_registry, setting
from audio_ticl.benchmark.config_load import apply_override, list_presets, load_raw
from audio_ticl.benchmark.config_schema import FeatureConfig, ModelConfig
from audio_ticl.benchmark.errors import ConfigError

__all__ = ["PRETRAIN_PRESETS", "PretrainSource", "ReconstructionConfig", "PretrainConfig", "load_pretrain_config"]

PRETRAIN_PRESETS = "audio_ticl.benchmark.presets.pretrain"
SOURCES = from_registry("audio_ticl.benchmark.datasets:SOURCES")


@dataclasses.dataclass
class PretrainSource:
    """One dataset in its official layout; its labels are ignored and only the clips of ``splits`` are read (so
    that no validation or test clip of a downstream run is ever seen)."""

    source: str = setting("", doc="a registered dataset source (`ticl datasets` lists them)", choices=SOURCES)
    root: str | None = setting(None, doc="its root folder (`--data-root` sets the first source's)")
    options: dict[str, Any] = setting(factory=dict, doc="keyword arguments of the source, as `data.options`")
    splits: list[str] = setting(factory=lambda: ["train"], doc="the splits whose clips are used")


@dataclasses.dataclass
class ReconstructionConfig:
    """The alterations of ``objective: frame_reconstruction`` (``models.frame_reconstruction``; TERA's defaults)."""

    time_ratio: float = setting(
        0.15, doc="share of the frames in altered time blocks (80 % zeroed, 10 % swapped)", minimum=0, maximum=1
    )
    time_block: int = setting(7, doc="frames in one time block", minimum=1)
    freq_max: float = setting(0.2, doc="widest zeroed band, as a share of the coefficients", minimum=0, maximum=1)
    noise_prob: float = setting(0.1, doc="probability of Gaussian noise on a clip", minimum=0, maximum=1)
    noise_std: float = setting(0.2, doc="the noise's standard deviation (normalised features)", minimum=0)


@dataclasses.dataclass
class PretrainConfig:
    """Self-supervised pretraining: SSAST's masked spectrogram patch modelling (``objective: mspm``) or the
    MFCC-gram transformers' masked frame reconstruction (``objective: frame_reconstruction``)."""

    name: str = setting("pretrain", doc="the preset's or file's own name")
    description: str = setting("", doc="one paragraph")
    seed: int = setting(0, doc="initialisation, data order and masks", minimum=0)
    sources: list[PretrainSource] = setting(factory=list, doc="datasets whose clips are used (labels ignored)")
    audio_dirs: list[str] = setting(
        factory=list, doc="folders of audio files, searched recursively (wav, flac, ogg, aiff); `--audio-dir` adds one"
    )
    features: FeatureConfig = setting(factory=FeatureConfig)
    model: ModelConfig = setting(factory=ModelConfig)
    window_frames: int | None = setting(
        None,
        doc="cut each clip's `features.target_frames` frames into non-overlapping windows of this many frames, each "
        "one pretraining example, so that long and short clips mix at the downstream length (null: whole clips)",
        minimum=1,
    )
    window_min_signal: float = setting(
        0.25, doc="a window after a clip's first is kept when at least this share of its frames is signal, not the "
        "front end's zero padding",
        minimum=0,
        maximum=1,
    )
    objective: Literal["mspm", "frame_reconstruction"] = setting(
        "mspm",
        doc="`mspm`: SSAST's joint discriminative (InfoNCE) and generative (MSE) masked patch modelling; "
        "`frame_reconstruction`: the MFCC-gram transformers' (Mockingjay / TERA) L1 reconstruction of time-masked, "
        "frequency-masked and noised frames, for frame models",
    )
    reconstruction: ReconstructionConfig = setting(factory=lambda: ReconstructionConfig())
    n_mask: int = setting(
        400, doc="patches (frames, for a frame model) masked per clip; SSAST: 400 of 512", minimum=1
    )
    epochs: int = setting(10, doc="passes over the clips", minimum=1)
    batch_size: int = setting(24, doc="clips a step", minimum=1)
    lr: float = setting(1e-4, doc="peak learning rate (SSAST: 1e-4)", minimum=0, exclusive_minimum=True)
    weight_decay: float = setting(5e-7, doc="Adam's weight decay (SSAST: 5e-7)", minimum=0)
    warmup: float = setting(
        0.05,
        doc="share of the steps with a linear warm-up, then cosine decay to zero",
        minimum=0,
        maximum=1,
        exclusive_maximum=True,
    )
    #: 0, not null, says "after every epoch": shipped presets write `checkpoint_every: 0`
    checkpoint_every: int = setting(0, doc="steps between checkpoints (0: after every epoch)", minimum=0)
    threads: int | None = setting(None, doc="torch threads (null: torch's default)", minimum=1)


def _validate(cfg: PretrainConfig) -> None:
    """Cross-key checks the declared ranges cannot express."""
    if not cfg.sources and not cfg.audio_dirs:
        raise ConfigError("a pretraining config needs clips: list 'sources' or 'audio_dirs' (or pass --audio-dir)")
    if cfg.features.target_frames is None:
        raise ConfigError("config key 'features.target_frames' must be set for pretraining (SSAST: 1024)")
    if cfg.model.init not in ("random",):
        raise ConfigError(f"config key 'model.init' must be 'random' for pretraining, got '{cfg.model.init}'")
    # each key's own range (n_mask, epochs, window_min_signal, warmup ...) is its declared bound, checked by build
    if cfg.window_frames is not None and cfg.window_frames > cfg.features.target_frames:
        raise ConfigError(f"config key 'window_frames' must be in [1, features.target_frames = "
                          f"{cfg.features.target_frames}] or null, got {cfg.window_frames}")
    for i, source in enumerate(cfg.sources):
        if not source.splits:
            raise ConfigError(f"config key 'sources.{i}.splits' must name at least one split")


def load_pretrain_config(preset: str | None = None, config_file: Path | None = None,
                         overrides: list[str] | tuple[str, ...] = (), audio_dirs: list[str] | None = None
                         ) -> PretrainConfig:
    """A pretraining preset or YAML file (which may ``extends:`` a pretraining preset), with ``--set`` overrides and
    extra audio folders (``--audio-dir``)."""
    if preset is None and config_file is None:
        names = ", ".join(list_presets(PRETRAIN_PRESETS))
        raise ConfigError(f"ticl pretrain needs --preset NAME or --config FILE; pretraining presets: {names}")
    raw = load_raw(preset, config_file, package=PRETRAIN_PRESETS)
    for assignment in overrides:
        apply_override(raw, assignment)
    if audio_dirs:
        raw["audio_dirs"] = [*raw.get("audio_dirs", []), *audio_dirs]
    cfg = build(PretrainConfig, raw)
    _validate(cfg)
    return cfg
