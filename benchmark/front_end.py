"""The config's front end (``features.kind``: fbank or MFCC) as feature settings, and the input width it gives the
model; one place, so that the scenario, the model and the upstream backbone agree."""
from __future__ import annotations

from .audio.settings import FbankSettings
from .config_schema import FeatureConfig

__all__ = ["front_end", "input_bins"]


def front_end(features: FeatureConfig, target_frames: int) -> FbankSettings:
    """The settings that compute a clip's features for this config at ``target_frames`` frames."""
    return FbankSettings(num_mel_bins=features.num_mel_bins, target_frames=target_frames, kind=features.kind,
                         n_mfcc=features.n_mfcc)


def input_bins(features: FeatureConfig) -> int:
    """Values per frame the model reads (its ``num_mel_bins``): mel bins for fbank, coefficients for MFCC."""
    return features.n_mfcc if features.kind == "mfcc" else features.num_mel_bins
