"""The one interface between dataset layouts on disk and the rest of the suite.

A source lists :class:`Clip` records (one per recording, with its split already decided by the dataset's
official protocol). Nothing here decodes audio: :mod:`benchmark.audio` turns clips into features.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audio_ticl.benchmark.errors import DataError, TICLError

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class FeatureDefaults:
    """Per-dataset feature constants of the AST recipe (Gong et al. 2021): fbank normalisation, length, SpecAugment."""

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
    path: Path | None = None
    render: Callable[[], tuple[np.ndarray, int]] | None = field(default=None, compare=False, repr=False)


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


def select_classes(
    available: Sequence[str],
    wanted: Sequence[str] | None,
    where: str | Path,
    dataset: str,
    *,
    keep_order: bool = False,
    hint: str = "",
    error: type[TICLError] = DataError,
) -> list[str]:
    """``wanted`` (class names; None = all of ``available``) checked against ``available``: every source's check.

    The result is in the dataset's canonical order, unless ``keep_order``: then in the order asked for, for sources
    where that order makes the tasks (Speech Commands' word list, the synthetic task pairs). A name that is unknown,
    asked for twice, or an empty list is an ``error`` naming ``where`` (the file or folder the classes come from) and
    listing the available classes; ``hint`` is appended to the unknown-class message.
    """
    if wanted is None:
        return list(available)
    listing = ", ".join(available) or "(none)"
    if isinstance(wanted, (str, bytes)) or not isinstance(wanted, Iterable):
        raise error(f"{where}: {dataset} classes must be a list of class names, got {wanted!r}")
    wanted = list(wanted)
    if not wanted:
        raise error(f"{where}: the {dataset} class list is empty; available: {listing}")
    odd = [c for c in wanted if not isinstance(c, str)]
    if odd:
        raise error(f"{where}: {dataset} class names must be strings, got {odd[0]!r} ({type(odd[0]).__name__})")
    unknown = list(dict.fromkeys(c for c in wanted if c not in available))
    if unknown:
        names = ", ".join(map(repr, unknown))
        raise error(f"{where}: unknown {dataset} class(es) {names}; available: {listing}{hint}")
    twice = list(dict.fromkeys(c for c in wanted if wanted.count(c) > 1))
    if twice:
        raise error(f"{where}: {dataset} class(es) {', '.join(map(repr, twice))} requested more than once")
    if keep_order:
        return wanted
    keep = set(wanted)
    return [c for c in available if c in keep]
