"""The one interface between dataset layouts on disk and the rest of the suite.

A source lists :class:`Clip` records (one per recording, with its split already decided by the dataset's
official protocol). Nothing here decodes audio: :mod:`benchmark.audio` turns clips into features.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from audio_ticl.benchmark.errors import DataError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class FeatureDefaults:
    """Per-dataset feature constants of the AST recipe (Gong et al. 2021) (fbank normalisation, length, SpecAugment)."""

    mean: float
    std: float
    target_frames: int
    freqm: int
    timem: int


@dataclass(frozen=True)
class Clip:
    """One recording.

    ``key`` is a stable identity used by the feature cache (for files: the resolved path; for generated
    clips: a string that fully determines the waveform). Exactly one of ``path`` and ``render`` is set.
    ``render`` returns ``(mono float32 waveform, sample_rate)`` for generated audio.
    """

    key: str
    label: str
    split: str
    path: Optional[Path] = None
    render: Optional[Callable[[], tuple[np.ndarray, int]]] = field(default=None, compare=False, repr=False)


class ClipSource(ABC):
    """A dataset on disk (or generated) in its official layout and split protocol."""

    #: short name used in configs and task names, e.g. ``"esc50"``
    name: str = ""

    @property
    @abstractmethod
    def feature_defaults(self) -> FeatureDefaults:
        """Feature constants for this dataset."""

    @abstractmethod
    def classes(self) -> list[str]:
        """All class names present, in the dataset's canonical order (e.g. ESC-50 target id order)."""

    @abstractmethod
    def clips(self) -> list[Clip]:
        """Every clip of the selected classes, each with split in ``SPLITS``."""

    def class_groups(self) -> dict[str, list[str]]:
        """Named groups of classes the dataset defines (ESC-50's five categories); empty if none."""
        return {}


def select_classes(available: list[str], wanted: Optional[Sequence[str]], where: Path, dataset: str) -> list[str]:
    """``wanted`` (class names; None = all) as a subset of ``available``, kept in the dataset's canonical order."""
    if wanted is None:
        return list(available)
    if isinstance(wanted, str):
        raise DataError(f"{where}: {dataset} classes must be a list of class names, got {wanted!r}")
    unknown = [c for c in wanted if c not in available]
    if unknown:
        raise DataError(
            f"{where}: unknown {dataset} class(es) {', '.join(map(repr, unknown))}; available: {', '.join(available)}"
        )
    keep = set(wanted)
    return [c for c in available if c in keep]
