"""The built-in synthetic sound set: the class registry, determinism, shapes, splits, errors (numpy only, fast)."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from audio_ticl.benchmark.audio.settings import FbankSettings
from audio_ticl.benchmark.datasets.base import SPLITS, ClipSource
from audio_ticl.benchmark.datasets.synthetic import (
    DEFAULT_TASK_CLASSES,
    GENERATOR_VERSION,
    GENERATORS,
    SYNTHETIC_CLASSES,
    UPSTREAM_CLASSES,
    SyntheticSource,
    render_clip,
    sound_class,
    target_frames,
)
from audio_ticl.benchmark.datasets.synthetic.registry import ROLES
from audio_ticl.benchmark.errors import ConfigError

SMALL = {"train": 2, "val": 1, "test": 1}


def _by_key(source: SyntheticSource) -> dict:
    return {c.key: c for c in source.clips()}


def test_class_lists():
    assert len(SYNTHETIC_CLASSES) >= 24
    assert len(set(SYNTHETIC_CLASSES)) == len(SYNTHETIC_CLASSES)
    assert DEFAULT_TASK_CLASSES == SYNTHETIC_CLASSES[:10]
    assert not set(DEFAULT_TASK_CLASSES) & set(UPSTREAM_CLASSES)
    assert DEFAULT_TASK_CLASSES + UPSTREAM_CLASSES == SYNTHETIC_CLASSES
    assert len(UPSTREAM_CLASSES) >= 14


def test_class_names_and_order_are_pinned():
    """The order makes the default tasks (consecutive pairs) and the upstream head's labels: it must never drift."""
    assert DEFAULT_TASK_CLASSES == [
        "harmonic_few", "harmonic_many", "chirp_up", "chirp_down", "am_slow", "am_fast", "clicks_slow", "clicks_fast",
        "vowel_a", "vowel_i",
    ]
    assert UPSTREAM_CLASSES == [
        "pure_tone", "two_tone_chord", "square_buzz", "fm_vibrato", "noise_low_band", "noise_high_band", "noise_sweep",
        "pluck", "rain", "beeps_2", "beeps_4", "noise_burst", "crescendo", "tremolo_noise", "bird_tweets", "siren",
        "speech_syllables",
    ]


def test_classes_register_themselves_with_their_role():
    assert list(GENERATORS) == SYNTHETIC_CLASSES
    assert {name for name, role in ROLES.items() if role == "task"} == set(DEFAULT_TASK_CLASSES)
    assert all(GENERATORS[name].__name__ == name and GENERATORS[name].__doc__ for name in SYNTHETIC_CLASSES)
    with pytest.raises(ValueError, match="registered twice"):
        @sound_class("task")
        def pure_tone(rng, sr, n):  # a second class of an existing name
            return np.zeros(n)
    with pytest.raises(ValueError, match="role"):
        sound_class("pretraining")  # type: ignore[arg-type]
    assert list(GENERATORS) == SYNTHETIC_CLASSES  # the failed registration left the registry as it was


def test_target_frames_follow_the_fbank_settings():
    # 1 s at 16 kHz, 25 ms windows every 10 ms: 98 frames, padded to 100
    assert FbankSettings().num_frames(16000) == 98 and target_frames(1.0) == 100
    assert [target_frames(d) for d in (0.5, 1.5, 2.0, 4.0)] == [50, 150, 200, 400]
    assert target_frames(1.0, FbankSettings(frame_shift_ms=20.0)) == 50  # 49 frames
    assert SyntheticSource(duration_s=2.0).feature_defaults.target_frames == 200


def test_source_interface_and_defaults():
    src = SyntheticSource()
    assert isinstance(src, ClipSource) and src.name == "synthetic"
    assert src.classes() == DEFAULT_TASK_CLASSES
    assert src.class_groups() == {}
    fd = src.feature_defaults
    assert fd.target_frames == 100 and fd.freqm == 24 and fd.timem == 24
    assert np.isfinite(fd.mean) and fd.std > 0
    clips = src.clips()
    assert len(clips) == 10 * (40 + 10 + 20)
    for label in DEFAULT_TASK_CLASSES:
        for split, count in {"train": 40, "val": 10, "test": 20}.items():
            assert sum(c.label == label and c.split == split for c in clips) == count
    assert len({c.key for c in clips}) == len(clips)
    assert all(c.path is None and c.render is not None for c in clips)
    assert all(GENERATOR_VERSION in c.key for c in clips)


def test_custom_counts_and_class_order():
    src = SyntheticSource(classes=["siren", "rain"], clips_per_class={"train": 3, "test": 2})
    assert src.classes() == ["siren", "rain"]
    clips = src.clips()
    assert len(clips) == 2 * 5
    assert {c.split for c in clips} == {"train", "test"}
    assert all(c.split in SPLITS for c in clips)


def test_every_class_renders_valid_audio():
    for label in SYNTHETIC_CLASSES:
        wav, sr = render_clip(0, label, "train", 0)
        assert sr == 16000 and wav.dtype == np.float32 and wav.ndim == 1
        assert wav.shape == (16000,)
        assert np.all(np.isfinite(wav))
        assert 0.0 < np.max(np.abs(wav)) <= 1.0, label


def test_families_are_float32_functions_of_rng_sr_n():
    assert list(GENERATORS) == SYNTHETIC_CLASSES
    for label, family in GENERATORS.items():
        a = family(np.random.default_rng(5), 16000, 12345)
        b = family(np.random.default_rng(5), 16000, 12345)
        assert a.dtype == np.float32 and a.shape == (12345,), label
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("duration, sr", [(1.0, 16000), (0.5, 8000), (1.5, 22050)])
def test_length_is_duration_times_rate(duration, sr):
    src = SyntheticSource(classes=["chirp_up", "beeps_4", "speech_syllables"], clips_per_class={"test": 1},
                          duration_s=duration, sample_rate=sr)
    for clip in src.clips():
        wav, rate = clip.render()
        assert rate == sr and len(wav) == int(round(duration * sr))
        assert np.all(np.isfinite(wav)) and np.max(np.abs(wav)) <= 1.0


def test_determinism_independent_of_class_subset():
    a = _by_key(SyntheticSource(classes=["vowel_a", "clicks_fast"], clips_per_class=SMALL, seed=3))
    b = _by_key(SyntheticSource(classes=["pluck", "clicks_fast", "siren"], clips_per_class=SMALL, seed=3))
    shared = set(a) & set(b)
    assert len(shared) == 4
    for key in shared:
        wa, _ = a[key].render()
        wb, _ = b[key].render()
        np.testing.assert_array_equal(wa, wb)
        np.testing.assert_array_equal(wa, a[key].render()[0])  # rendering twice gives the same samples


def test_distinct_clips_differ():
    base, _ = render_clip(0, "am_slow", "train", 0)
    for other in [render_clip(0, "am_slow", "train", 1), render_clip(0, "am_slow", "val", 0),
                  render_clip(1, "am_slow", "train", 0), render_clip(0, "am_fast", "train", 0)]:
        assert not np.array_equal(base, other[0])
    keys = {c.key for c in SyntheticSource(seed=0, clips_per_class=SMALL).clips()}
    keys_other_seed = {c.key for c in SyntheticSource(seed=1, clips_per_class=SMALL).clips()}
    assert not keys & keys_other_seed


def test_render_pickles():
    clip = SyntheticSource(classes=["noise_sweep"], clips_per_class={"val": 1}).clips()[0]
    restored = pickle.loads(pickle.dumps(clip))
    assert restored.key == clip.key
    np.testing.assert_array_equal(restored.render()[0], clip.render()[0])


def test_unknown_class_is_a_config_error():
    with pytest.raises(ConfigError, match="no_such_sound") as info:
        SyntheticSource(classes=["chirp_up", "no_such_sound"])
    assert "chirp_up" in str(info.value) and "vowel_i" in str(info.value)  # lists the available classes
    with pytest.raises(ConfigError, match="no_such_sound"):
        render_clip(0, "no_such_sound", "train", 0)


@pytest.mark.parametrize("kwargs", [
    {"classes": []},
    {"classes": ["rain", "rain"]},
    {"clips_per_class": {"training": 3}},
    {"clips_per_class": {"train": -1}},
    {"clips_per_class": {"train": 1.5}},
    {"duration_s": 0.1},
    {"sample_rate": 4000},
])
def test_invalid_arguments_are_config_errors(kwargs):
    with pytest.raises(ConfigError):
        SyntheticSource(**kwargs)
