"""Clips far shorter than their dataset's nominal length (a truncated or cut recording that still decodes) are
counted in the log and the summary, or refused with ``data.short_clips: error``, naming them."""
from __future__ import annotations

import pytest
from fixtures import make_esc50_fixture, shared_data, tone, write_wav

from audio_ticl.benchmark.config import load_config
from audio_ticl.benchmark.errors import DataError
from audio_ticl.benchmark.scenarios import build_tasks


def _config(root, *extra):
    return load_config("esc50-cpu", overrides=[f"data.root={root}", "scenario.classes_per_task=1", *extra])


@pytest.fixture
def esc50_with_one_short_clip(tmp_path):
    root = make_esc50_fixture(tmp_path / "esc50", seconds=5.0, sample_rate=16000)
    short = root / "audio" / "3-1030-A-0.wav"
    write_wav(short, tone(1.0, 16000), 16000)  # 1 s of a 5 s dataset
    return root, short


def test_a_short_clip_is_counted_and_named(esc50_with_one_short_clip, caplog):
    root, short = esc50_with_one_short_clip
    _, report = build_tasks(_config(root), progress=False)
    assert report.short_clips == 1 and report.short_examples == [str(short)]
    assert "1 of 15 clips of source 'esc50' are shorter than half its nominal 5 s" in caplog.text


def test_a_short_clip_is_refused_under_short_clips_error(esc50_with_one_short_clip):
    root, short = esc50_with_one_short_clip
    with pytest.raises(DataError, match=rf"shorter than half its nominal 5 s \(data.short_clips: error\): {short}"):
        build_tasks(_config(root, "data.short_clips=error"), progress=False)


def test_the_real_esc10_clips_are_not_short():
    _, report = build_tasks(_config(shared_data("esc50-subset"), "scenario.classes_per_task=2",
                                    "data.short_clips=error"), progress=False, splits=("val",))
    assert report.short_clips == 0 and report.clips == 80
