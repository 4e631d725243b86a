"""Normalisation statistics for data without published constants (the ``folder`` and ``csv`` sources).

The official loaders normalise with the constants AST's recipe publishes for their dataset. A user's own data has
none, so its mean and std are those of every feature value (padding included, as AST computed its constants; see
:func:`~benchmark.audio.features.feature_stats`) of the training split's clips, of every class the run uses:
never a validation or test clip. They are cached as a small json beside the feature cache (``<cache>/stats/``),
keyed by the clips' identities (path, size and mtime, or a segment's key) and the feature settings, so that a
changed file, clip list or front end computes them afresh.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch

from audio_ticl.benchmark.audio.cache import FeatureCache, clip_identity, extract_features
from audio_ticl.benchmark.audio.features import FbankSettings, feature_stats
from audio_ticl.benchmark.datasets.base import Clip
from audio_ticl.benchmark.errors import DataError
from audio_ticl.benchmark.results import write_json

__all__ = ["TrainingStats", "training_stats", "stats_path"]

#: the layout of a stats file; files of another format are recomputed
STATS_FORMAT = 1


@dataclass(frozen=True)
class TrainingStats:
    """Mean and std of the training features, how many clips they came from, and whether the cache had them."""

    mean: float
    std: float
    clips: int
    cached: bool

    def report(self, source: str) -> dict:
        """The summary's record (``data.normalisation``)."""
        return {"source": source, "from": "computed on the training split (no published constants)",
                "mean": self.mean, "std": self.std, "train_clips": self.clips, "cached": self.cached}


def stats_path(cache: FeatureCache, clips: list[Clip], settings: FbankSettings) -> Path:
    """Where the statistics of ``clips`` under ``settings`` are cached: ``<feature cache>/../stats/<sha1>.json``."""
    digest = hashlib.sha1()
    for identity in sorted(clip_identity(clip) for clip in clips):
        digest.update(identity.encode() + b"\n")
    digest.update(settings.cache_token().encode())
    return cache.root.parent / "stats" / f"{digest.hexdigest()}.json"


def training_stats(clips: list[Clip], settings: FbankSettings, cache: FeatureCache,
                   features: torch.Tensor | None = None, progress: bool = False) -> TrainingStats:
    """Mean and std of the features of ``clips`` (the training clips), from the stats cache when it has them.

    ``features`` are those clips' features when the caller has them already; otherwise they are read from the
    feature cache (or computed and cached).
    """
    if not clips:
        raise DataError("no training clips to compute the normalisation statistics on (expected train clips for "
                        "every class)")
    path = stats_path(cache, clips, settings)
    cached = _read(path, len(clips))
    if cached is not None:
        return TrainingStats(cached[0], cached[1], len(clips), cached=True)
    if features is None:
        features = extract_features(clips, settings, cache, progress=progress, desc="normalisation").features
    mean, std = feature_stats(features)
    if not (math.isfinite(mean) and math.isfinite(std)) or std <= 0:
        raise DataError(f"the training clips' features have mean {mean} and std {std}: cannot normalise by them "
                        "(are the training clips all silent or identical?); set features.mean and features.std")
    write_json(path, {"format": STATS_FORMAT, "mean": mean, "std": std, "clips": len(clips),
                      "settings": settings.cache_token()})
    return TrainingStats(mean, std, len(clips), cached=False)


def _read(path: Path, clips: int) -> tuple[float, float] | None:
    """The cached (mean, std), or None when absent, damaged or of another format (then it is recomputed)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != STATS_FORMAT or data.get("clips") != clips:
        return None
    mean, std = data.get("mean"), data.get("std")
    if not all(isinstance(v, float) and math.isfinite(v) for v in (mean, std)) or std <= 0:
        return None
    return mean, std
