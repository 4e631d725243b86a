"""The MFCC front end: torchaudio's MFCC on a real clip with the documented settings, the fbank's frame count, a
cache key of its own (fbank's unchanged), and a task-incremental run whose model reads n_mfcc values a frame."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torchaudio.transforms as T

from audio_ticl.benchmark.audio.features import fbank, feature_stats, mfcc, pad_or_crop
from audio_ticl.benchmark.audio.io import load_audio
from audio_ticl.benchmark.audio.settings import FbankSettings

SHARED_FSDD = Path(__file__).resolve().parents[2] / "shared" / "data" / "fsdd"


def _a_real_clip() -> Path:
    clips = sorted(SHARED_FSDD.rglob("*.wav"))
    if not clips:
        pytest.skip(f"no FSDD recordings under {SHARED_FSDD}")
    return clips[0]


def test_mfcc_equals_torchaudios_on_a_real_clip():
    settings = FbankSettings(kind="mfcc", n_mfcc=40, target_frames=64)
    wave = load_audio(_a_real_clip(), 16000)
    expected = T.MFCC(sample_rate=16000, n_mfcc=40, melkwargs={
        "n_fft": 400, "win_length": 400, "hop_length": 160, "n_mels": 128, "center": False, "mel_scale": "htk"})
    reference = pad_or_crop(expected(wave - wave.mean()).T, 64)
    got = mfcc(wave, settings)
    assert got.shape == (64, 40)
    torch.testing.assert_close(got, reference)
    frames = settings.num_frames(wave.shape[0])  # the fbank's frame count: real values up to it, zeros after
    assert fbank(wave, FbankSettings(target_frames=64)).shape == (64, 128)
    if frames < 64:
        assert got[frames:].abs().sum() == 0 and got[frames - 1].abs().sum() > 0


def test_each_front_end_has_its_cache_key_and_fbanks_is_the_old_one():
    fbank_token = FbankSettings().cache_token()
    assert fbank_token == ("fbank-v1(sample_rate=16000,num_mel_bins=128,frame_shift_ms=10.0,frame_length_ms=25.0,"
                           "target_frames=1024)")
    assert FbankSettings(kind="mfcc").cache_token().startswith("mfcc-v1(") and "n_mfcc=128" in \
        FbankSettings(kind="mfcc").cache_token()
    assert FbankSettings(kind="mfcc", n_mfcc=40).cache_token() != FbankSettings(kind="mfcc").cache_token()
    assert FbankSettings(n_mfcc=40).cache_token() == fbank_token  # fbank ignores the MFCC fields
    with pytest.raises(ValueError, match="at most num_mel_bins"):
        FbankSettings(kind="mfcc", n_mfcc=200)


def test_feature_stats_are_those_of_every_value():
    x = torch.tensor([[[1.0, 3.0]], [[5.0, 7.0]]])
    mean, std = feature_stats(x)
    assert mean == 4.0 and std == pytest.approx(float(torch.tensor([1.0, 3.0, 5.0, 7.0]).std()))


def test_a_run_on_mfcc_feeds_the_model_n_mfcc_values_a_frame(tmp_path):
    from audio_ticl.benchmark import cli
    from audio_ticl.benchmark.config import load_config
    from audio_ticl.benchmark.errors import ConfigError

    config = tmp_path / "mfcc.yaml"
    config.write_text(
        "extends: smoke\n"
        "features: {kind: mfcc, n_mfcc: 40}\n"
        "model: {init: random}\n"
        "methods: [{name: finetune, strategy: finetune, mixer: gsa}]\n"
    )
    assert cli.main(["run", "--config", str(config), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    summary = json.loads((tmp_path / "out" / "finetune" / "summary.json").read_text())
    assert len(summary["accuracy_matrix"]) == 3
    assert "kind: mfcc" in (tmp_path / "out" / "finetune" / "config.yaml").read_text()
    bad = tmp_path / "bad.yaml"
    bad.write_text("extends: smoke\nfeatures: {kind: mfcc, n_mfcc: 200}\n")
    with pytest.raises(ConfigError, match=r"'features.n_mfcc' must be between 1 and features.num_mel_bins \(128\)"):
        load_config(config_file=bad)
