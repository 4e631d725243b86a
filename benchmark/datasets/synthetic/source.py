"""The synthetic clip source: which clips a config asks for, and the feature constants of the set."""
from __future__ import annotations

import functools

import numpy as np

from audio_ticl.benchmark.audio.settings import FbankSettings
from audio_ticl.benchmark.datasets.base import SPLITS, Clip, ClipSource, FeatureDefaults, select_classes
from audio_ticl.benchmark.errors import ConfigError

from .catalogue import DEFAULT_TASK_CLASSES, SYNTHETIC_CLASSES
from .render import GENERATOR_VERSION, render_clip

__all__ = ["DEFAULT_CLIPS_PER_CLASS", "MIN_DURATION_S", "SyntheticSource", "target_frames"]

DEFAULT_CLIPS_PER_CLASS: dict[str, int] = {"train": 40, "val": 10, "test": 20}

#: the suite's front end (16 kHz, 25 ms windows, 10 ms shift), whatever rate the clips are rendered at
FRONT_END = FbankSettings()
#: shortest supported clip, so every event family fits and kaldi fbank gets at least one whole window
MIN_DURATION_S = 0.5
#: target_frames is the clip's frame count rounded up to a multiple of this (1 s: 98 frames -> 100)
FRAME_MULTIPLE = 10

#: fbank normalisation of the default set (how: see SyntheticSource.feature_defaults); remeasure when
#: GENERATOR_VERSION changes
_FBANK_MEAN = -6.992082
_FBANK_STD = 3.705376


def target_frames(duration_s: float, settings: FbankSettings = FRONT_END) -> int:
    """Input frames for clips of ``duration_s``: the fbank's frame count, rounded up to :data:`FRAME_MULTIPLE`."""
    frames = settings.num_frames(int(round(duration_s * settings.sample_rate)))
    return int(-(-frames // FRAME_MULTIPLE) * FRAME_MULTIPLE)


class SyntheticSource(ClipSource):
    """The built-in procedurally generated sound set (no files; each clip carries a ``render`` callable).

    ``classes`` defaults to :data:`DEFAULT_TASK_CLASSES` and keeps the given order (consecutive pairs make the
    default tasks). ``clips_per_class`` maps split -> clips per class; splits left out get none.
    """

    name = "synthetic"

    def __init__(self, classes: list[str] | None = None, clips_per_class: dict[str, int] | None = None,
                 duration_s: float = 1.0, sample_rate: int = 16000, seed: int = 0) -> None:
        if classes is None:
            selected = list(DEFAULT_TASK_CLASSES)
        else:
            selected = select_classes(SYNTHETIC_CLASSES, classes, "synthetic source", "synthetic", keep_order=True,
                                      error=ConfigError)
        counts = dict(DEFAULT_CLIPS_PER_CLASS if clips_per_class is None else clips_per_class)
        for split, count in counts.items():
            if split not in SPLITS:
                raise ConfigError(f"synthetic: clips_per_class has unknown split {split!r}; expected {SPLITS}")
            if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
                raise ConfigError(f"synthetic: clips_per_class[{split!r}] = {count!r}; expected an integer >= 0")
        if not (isinstance(sample_rate, (int, np.integer)) and sample_rate >= 8000):
            raise ConfigError(f"synthetic: sample_rate = {sample_rate!r}; expected an integer >= 8000")
        numeric = isinstance(duration_s, (int, float, np.floating)) and not isinstance(duration_s, bool)
        if not (numeric and duration_s >= MIN_DURATION_S):
            raise ConfigError(f"synthetic: duration_s = {duration_s!r}; expected >= {MIN_DURATION_S}")
        self._classes = selected
        self._counts = {s: int(counts.get(s, 0)) for s in SPLITS}
        self.duration_s = float(duration_s)
        self.sample_rate = int(sample_rate)
        self.seed = int(seed)

    @property
    def feature_defaults(self) -> FeatureDefaults:
        # Measured on SyntheticSource() (the 10 default task classes, 40/10/20 clips per class, 1 s, 16 kHz,
        # seed 0): kaldi fbank (htk_compat, 16 kHz, hanning, 128 mel bins, dither 0, 10 ms shift, no energy) of
        # each mean-subtracted waveform, unpadded 98 frames; mean and std over all frames and bins of all 700
        # clips (generator v2) -> mean -6.992082, std 3.705376. 1 s clips give 98 frames, padded to 100.
        return FeatureDefaults(mean=_FBANK_MEAN, std=_FBANK_STD, target_frames=target_frames(self.duration_s),
                               freqm=24, timem=24)

    def classes(self) -> list[str]:
        return list(self._classes)

    def clips(self) -> list[Clip]:
        out = []
        for label in self._classes:
            for split in SPLITS:
                for index in range(self._counts[split]):
                    key = (f"synthetic:{GENERATOR_VERSION}:{self.seed}:{label}:{split}:{index}:"
                           f"{self.duration_s}:{self.sample_rate}")
                    render = functools.partial(render_clip, self.seed, label, split, index, self.duration_s,
                                               self.sample_rate)
                    out.append(Clip(key=key, label=label, split=split, render=render))
        return out
