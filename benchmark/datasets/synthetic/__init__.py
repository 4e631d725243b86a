"""The built-in synthetic sound set: procedurally generated, deterministic, no download needed.

Every class is a small pure function ``(rng, sr, n) -> float32 waveform of n samples`` that draws its own random
parameters (pitch, onset, event durations, rates) from ``rng`` and registers itself with
:func:`~.registry.sound_class`. :func:`render_clip` normalises the event to a random peak gain (-30..-6 dBFS) and
adds coloured background noise at a random SNR (10..30 dB); a clip depends only on ``(seed, class, split, index)``
and its length. Bump :data:`GENERATOR_VERSION` whenever a generator changes, so that feature caches keyed by
:attr:`Clip.key` are invalidated.

The first ten classes (:data:`DEFAULT_TASK_CLASSES`) form five task-incremental tasks of two similar classes each;
the remaining classes (:data:`UPSTREAM_CLASSES`, disjoint) are for a short upstream pretraining of the backbone.

Modules, one job each: :mod:`.signals` (primitives), :mod:`.registry` (the decorator), :mod:`.task_sounds` and
:mod:`.upstream_sounds` (the classes), :mod:`.catalogue` (class lists), :mod:`.render` (one clip),
:mod:`.source` (the :class:`~audio_ticl.benchmark.datasets.base.ClipSource`).
"""
from __future__ import annotations

from .catalogue import DEFAULT_TASK_CLASSES, SYNTHETIC_CLASSES, UPSTREAM_CLASSES
from .registry import GENERATORS, Generator, sound_class
from .render import GAIN_DB_RANGE, GENERATOR_VERSION, SNR_DB_RANGE, clip_rng, render_clip
from .source import DEFAULT_CLIPS_PER_CLASS, MIN_DURATION_S, SyntheticSource, target_frames

__all__ = [
    "DEFAULT_CLIPS_PER_CLASS",
    "DEFAULT_TASK_CLASSES",
    "GAIN_DB_RANGE",
    "GENERATORS",
    "GENERATOR_VERSION",
    "MIN_DURATION_S",
    "SNR_DB_RANGE",
    "SYNTHETIC_CLASSES",
    "UPSTREAM_CLASSES",
    "Generator",
    "SyntheticSource",
    "clip_rng",
    "render_clip",
    "sound_class",
    "target_frames",
]
