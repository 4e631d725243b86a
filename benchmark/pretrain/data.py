"""The unlabelled clips of a pretraining config, as one feature tensor: the named splits of each dataset source
(labels ignored) and every audio file under the audio folders; features from the shared cache, normalised by
their own statistics unless the config sets them."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from einops import rearrange

from audio_ticl.benchmark.audio.cache import FeatureCache, extract_features
from audio_ticl.benchmark.audio.features import feature_stats
from audio_ticl.benchmark.datasets.base import Clip
from audio_ticl.benchmark.errors import ConfigError, DataError
from audio_ticl.benchmark.front_end import front_end
from audio_ticl.benchmark.pretrain.schema import PretrainConfig
from audio_ticl.benchmark.scenarios import default_cache_dir, make_source

__all__ = ["AUDIO_SUFFIXES", "PretrainData", "folder_clips", "pretrain_clips", "split_windows", "load_pretrain_data"]

#: what soundfile decodes
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif")


@dataclass
class PretrainData:
    """The examples' features (N, T, F), un-normalised, and the normalisation to apply; how many clips each source
    gave, and how many examples the clips made (more than the clips when they are cut into windows)."""

    features: torch.Tensor
    mean: float
    std: float
    counts: dict[str, int]
    clips: int = 0


def folder_clips(folder: Path) -> list[Clip]:
    """Every audio file under ``folder`` (recursively, sorted), as unlabelled training clips."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise ConfigError(f"audio folder {folder} does not exist or is not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise DataError(f"audio folder {folder} holds no audio file ({', '.join(AUDIO_SUFFIXES)}), searched "
                        "recursively")
    return [Clip(key=str(p.resolve()), label="", split="train", path=p) for p in files]


def pretrain_clips(cfg: PretrainConfig) -> tuple[list[Clip], dict[str, int]]:
    """The clips of every source (its ``splits`` only) and folder, and how many each gave."""
    clips: list[Clip] = []
    counts: dict[str, int] = {}
    for i, entry in enumerate(cfg.sources):
        source = make_source(entry.source, entry.root, entry.options, f"sources.{i}")
        own = [c for c in source.clips() if c.split in entry.splits]
        if not own:
            raise DataError(f"source '{entry.source}' (sources.{i}) has no clips in the splits {entry.splits}")
        counts[f"{entry.source}:{'+'.join(entry.splits)}"] = len(own)
        clips += own
    for folder in cfg.audio_dirs:
        own = folder_clips(Path(folder))
        counts[f"folder:{folder}"] = len(own)
        clips += own
    return clips, counts


def split_windows(features: torch.Tensor, frames: int, min_signal: float) -> torch.Tensor:
    """Cut ``features`` (N, T, F) into non-overlapping windows of ``frames`` frames (a last partial window is
    dropped). A clip's first window is always kept, so a short clip (a spoken digit) stays one example, as it is
    downstream; a later window is kept when at least ``min_signal`` of its frames are signal. A padding frame is an
    all-zero row: the front end zero-pads clips at the end (``pad_or_crop``)."""
    n, total, bins = features.shape
    count = total // frames
    if count < 1:
        raise ValueError(f"windows of {frames} frames do not fit clips of {total} frames")
    windows = rearrange(features[:, : count * frames], "n (w t) f -> n w t f", t=frames)
    signal = windows.ne(0).any(dim=-1).float().mean(dim=-1)  # (n, w): share of frames that are not padding
    keep = signal >= min_signal
    keep[:, 0] = True
    return windows[keep].contiguous()


def load_pretrain_data(cfg: PretrainConfig, progress: bool = True) -> PretrainData:
    """Features of every pretraining clip (cached), and their normalisation."""
    clips, counts = pretrain_clips(cfg)
    settings = front_end(cfg.features, int(cfg.features.target_frames))
    cache = FeatureCache(default_cache_dir(cfg.features) / "features")
    features = extract_features(clips, settings, cache, progress=progress, desc="pretraining features").features
    if cfg.window_frames is not None:
        features = split_windows(features, cfg.window_frames, cfg.window_min_signal)
    mean, std = feature_stats(features)
    mean = cfg.features.mean if cfg.features.mean is not None else mean
    std = cfg.features.std if cfg.features.std is not None else std
    return PretrainData(features, mean, std, counts, clips=len(clips))
