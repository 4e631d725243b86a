"""Audio decoding, the AST fbank front end, SpecAugment and the feature cache."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torchaudio.compliance.kaldi as kaldi
from fixtures import shared_data, tone, write_wav

from audio_ticl.benchmark.audio.cache import FeatureCache, extract_features
from audio_ticl.benchmark.audio.features import FbankSettings, SpecAugment, fbank, normalize, pad_or_crop
from audio_ticl.benchmark.audio.io import load_audio, waveform_from_clip
from audio_ticl.benchmark.datasets.base import Clip
from audio_ticl.benchmark.errors import DataError


@pytest.fixture(scope="module")
def esc_clip() -> Path:
    """A real 5 s ESC-10 clip (44.1 kHz ogg); the tests that read it skip where the shared data is absent."""
    return shared_data("esc50-subset") / "audio" / "1-100032-A-0.ogg"


@pytest.fixture(scope="module")
def fsdd_clip() -> Path:
    """A real FSDD digit (8 kHz wav, under half a second)."""
    return shared_data("fsdd") / "recordings" / "0_george_0.wav"


def reference_fbank(wave: torch.Tensor) -> torch.Tensor:
    """The AST/SSAST recipe verbatim (the AST public code's fbank call), without padding."""
    wave = wave - wave.mean()
    return kaldi.fbank(wave[None], htk_compat=True, sample_frequency=16000, use_energy=False,
                       window_type="hanning", num_mel_bins=128, dither=0.0, frame_shift=10)


# -- decoding ------------------------------------------------------------------------------------------------

def test_load_real_esc_clip_resamples_to_16k(esc_clip: Path) -> None:
    wave = load_audio(esc_clip)
    assert wave.dtype == torch.float32 and wave.dim() == 1
    assert abs(wave.shape[0] - 80000) <= 16  # 5 s at 16 kHz (the file holds 5.001 s)


@pytest.mark.parametrize(
    "sample_rate, seconds, expected", [(44100, 1.0, 16000), (8000, 0.5, 8000), (16000, 1.0, 16000)]
)
def test_resampling_lengths(tmp_path: Path, sample_rate: int, seconds: float, expected: int) -> None:
    path = write_wav(tmp_path / "x.wav", tone(seconds, sample_rate), sample_rate)
    assert load_audio(path).shape == (expected,)


def test_stereo_is_downmixed_to_the_channel_mean(tmp_path: Path) -> None:
    stereo = tone(0.25, 16000, channels=2)
    path = write_wav(tmp_path / "stereo.wav", stereo, 16000, subtype="FLOAT")
    torch.testing.assert_close(load_audio(path), torch.from_numpy(stereo.mean(axis=1)))


@pytest.mark.parametrize("name, subtype", [("a.flac", "PCM_24"), ("b.wav", "PCM_32"), ("c.ogg", "VORBIS")])
def test_other_formats_and_bit_depths(tmp_path: Path, name: str, subtype: str) -> None:
    path = write_wav(tmp_path / name, tone(0.5, 22050, channels=2), 22050, subtype=subtype)
    wave = load_audio(path)
    assert wave.shape == (8000,) and wave.abs().max() > 0.1


def test_missing_and_garbage_files_raise_data_error_naming_the_path(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.wav"):
        load_audio(tmp_path / "nope.wav")
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(os.urandom(2048))
    with pytest.raises(DataError) as err:
        load_audio(garbage)
    assert str(garbage) in str(err.value)


def test_generated_clip_is_rendered_and_resampled() -> None:
    clip = Clip(key="gen:1", label="a", split="train", render=lambda: (tone(0.5, 8000), 8000))
    assert waveform_from_clip(clip).shape == (8000,)


# -- fbank -----------------------------------------------------------------------------------------------------

def test_fbank_matches_the_kaldi_recipe_on_a_real_esc_clip(esc_clip: Path) -> None:
    wave = load_audio(esc_clip)[:80000]
    expected = reference_fbank(wave)
    assert expected.shape == (498, 128)
    ours = fbank(wave, FbankSettings(target_frames=512))
    assert ours.shape == (512, 128)
    torch.testing.assert_close(ours[:498], expected)
    assert torch.all(ours[498:] == 0)


def test_one_second_gives_98_frames_and_short_clips_are_padded() -> None:
    wave = torch.from_numpy(tone(1.0, 16000))
    assert reference_fbank(wave).shape[0] == 98
    out = fbank(wave, FbankSettings(target_frames=128))
    torch.testing.assert_close(out[:98], reference_fbank(wave))
    assert torch.all(out[98:] == 0)
    # shorter than one 25 ms window: padded to 400 samples, one frame
    short = fbank(torch.from_numpy(tone(0.01, 16000)), FbankSettings(target_frames=4))
    assert short.shape == (4, 128) and torch.all(short[1:] == 0) and torch.all(short[0] != 0)


def test_fsdd_clip_8k_is_resampled_and_padded_to_128_frames(fsdd_clip: Path) -> None:
    wave = load_audio(fsdd_clip)
    frames = reference_fbank(wave).shape[0]
    assert frames == 1 + (wave.shape[0] - 400) // 160 < 128
    out = fbank(wave, FbankSettings(target_frames=128))
    torch.testing.assert_close(out[:frames], reference_fbank(wave))
    assert torch.all(out[frames:] == 0)


def test_fbank_crops_long_input(esc_clip: Path) -> None:
    wave = load_audio(esc_clip)[:80000]
    torch.testing.assert_close(fbank(wave, FbankSettings(target_frames=100)), reference_fbank(wave)[:100])


@pytest.mark.parametrize("samples", [1, 399, 400, 401, 559, 560, 8000, 16000, 16159, 16160, 80000])
@pytest.mark.parametrize("shift_ms, length_ms", [(10.0, 25.0), (20.0, 25.0), (10.0, 50.0)])
def test_num_frames_is_the_frame_count_of_fbank(samples: int, shift_ms: float, length_ms: float) -> None:
    """Sources size target_frames with num_frames: it must be what fbank computes before padding, exactly."""
    settings = FbankSettings(frame_shift_ms=shift_ms, frame_length_ms=length_ms, target_frames=10_000)
    wave = torch.from_numpy(tone(1.0 + samples / 16000, 16000, seed=samples))[:samples]
    computed = fbank(wave, settings)
    assert settings.num_frames(samples) == int((computed.abs().sum(dim=1) > 0).sum())  # padding frames are zero


def test_pad_or_crop() -> None:
    x = torch.randn(5, 3)
    assert torch.equal(pad_or_crop(x, 5), x)
    assert torch.equal(pad_or_crop(x, 2), x[:2])
    padded = pad_or_crop(x, 8)
    assert padded.shape == (8, 3) and torch.equal(padded[:5], x) and torch.all(padded[5:] == 0)


def test_cache_token_covers_every_setting() -> None:
    base = FbankSettings()
    assert base.cache_token() == FbankSettings().cache_token()
    variants = [FbankSettings(sample_rate=8000), FbankSettings(num_mel_bins=64), FbankSettings(frame_shift_ms=20.0),
                FbankSettings(frame_length_ms=50.0), FbankSettings(target_frames=128)]
    assert len({base.cache_token(), *(v.cache_token() for v in variants)}) == 6


def test_normalize() -> None:
    x = torch.tensor([-6.6268077, 0.0])
    torch.testing.assert_close(normalize(x, -6.6268077, 5.358466), torch.tensor([0.0, 6.6268077 / (2 * 5.358466)]))


# -- SpecAugment -------------------------------------------------------------------------------------------------

def test_specaugment_masks_only_in_training_mode() -> None:
    torch.manual_seed(0)
    x = torch.randn(128, 128) + 10.0  # no zeros before masking
    aug = SpecAugment(freqm=48, timem=48)
    aug.eval()
    assert torch.equal(aug(x), x)
    aug.train()
    outs = [aug(x) for _ in range(5)]
    assert all(o.shape == x.shape for o in outs)
    assert any((o == 0).any() for o in outs)
    for o in outs:  # masks zero whole frequency columns and whole time rows only
        zero = o == 0
        rows, cols = zero.all(dim=1), zero.all(dim=0)
        assert torch.equal(zero, rows[:, None] | cols[None, :])


def test_specaugment_zero_widths_disable_and_batches_keep_shape() -> None:
    x = torch.randn(4, 64, 128) + 10.0
    assert torch.equal(SpecAugment(0, 0).train()(x), x)
    only_time = SpecAugment(0, 32).train()
    torch.manual_seed(1)
    out = only_time(x)
    assert out.shape == x.shape and not torch.equal(out, x)
    zero = out == 0  # only whole time frames are zeroed
    assert torch.equal(zero, zero.all(dim=2, keepdim=True).expand_as(zero))


# -- cache -------------------------------------------------------------------------------------------------------

def _clips(folder: Path, n: int) -> list[Clip]:
    paths = [write_wav(folder / f"c{i}.wav", tone(0.3, 8000, 300 + 40 * i, seed=i), 8000) for i in range(n)]
    return [Clip(key=str(p), label="x", split="train", path=p) for p in paths]


def test_cache_hits_on_second_call_and_matches_direct_computation(tmp_path: Path) -> None:
    clips = _clips(tmp_path / "audio", 3)
    settings = FbankSettings(target_frames=64)
    cache = FeatureCache(tmp_path / "cache")
    first = extract_features(clips, settings, cache, progress=False)
    assert (first.hits, first.misses) == (0, 3) and first.features.shape == (3, 64, 128)
    second = extract_features(clips, settings, cache, progress=False)
    assert (second.hits, second.misses) == (3, 0)
    torch.testing.assert_close(second.features, first.features)
    torch.testing.assert_close(first.features[1], fbank(load_audio(clips[1].path), settings))
    assert len(list((tmp_path / "cache").rglob("*.pt"))) == 3
    assert not list((tmp_path / "cache").rglob("*.tmp"))
    torch.testing.assert_close(cache.get_or_compute(clips[0], settings), first.features[0])


def test_cache_invalidated_by_settings_and_by_file_changes(tmp_path: Path) -> None:
    clips = _clips(tmp_path / "audio", 2)
    cache = FeatureCache(tmp_path / "cache")
    extract_features(clips, FbankSettings(target_frames=64), cache, progress=False)
    other = extract_features(clips, FbankSettings(target_frames=32), cache, progress=False)
    assert (other.hits, other.misses) == (0, 2)
    # rewrite one file with other audio of the same length (same size) and a later mtime
    before = clips[0].path.stat().st_mtime_ns
    write_wav(clips[0].path, tone(0.3, 8000, 1234.0, seed=99), 8000)
    os.utime(clips[0].path, ns=(before + 10**9, before + 10**9))
    again = extract_features(clips, FbankSettings(target_frames=64), cache, progress=False)
    assert (again.hits, again.misses) == (1, 1)
    torch.testing.assert_close(again.features[0], fbank(load_audio(clips[0].path), FbankSettings(target_frames=64)))


def test_damaged_cache_entry_is_recomputed(tmp_path: Path) -> None:
    clips = _clips(tmp_path / "audio", 1)
    settings = FbankSettings(target_frames=16)
    cache = FeatureCache(tmp_path / "cache")
    good = cache.get_or_compute(clips[0], settings)
    cache.path_for(clips[0], settings).write_bytes(b"not a tensor")
    assert extract_features(clips, settings, cache, progress=False).misses == 1
    torch.testing.assert_close(cache.load(clips[0], settings), good)


def test_generated_clips_cache_by_key_and_no_cache_works(tmp_path: Path) -> None:
    calls = []

    def render() -> tuple[np.ndarray, int]:
        calls.append(1)
        return tone(0.2, 16000), 16000

    clips = [Clip(key="gen:a", label="a", split="train", render=render)]
    settings = FbankSettings(target_frames=32)
    cache = FeatureCache(tmp_path)
    assert extract_features(clips, settings, cache, progress=False).misses == 1
    assert extract_features(clips, settings, cache, progress=False).hits == 1
    assert len(calls) == 1
    uncached = extract_features(clips, settings, None, progress=False)
    assert (uncached.hits, uncached.misses) == (0, 1) and len(calls) == 2
    assert extract_features([], settings, None, progress=False).features.shape == (0, 32, 128)


def test_process_pool_path_matches_in_process(tmp_path: Path) -> None:
    clips = _clips(tmp_path / "audio", 6)
    settings = FbankSettings(target_frames=32)
    pooled = extract_features(clips, settings, FeatureCache(tmp_path / "c1"), progress=False, pool_min_misses=2)
    serial = extract_features(clips, settings, None, progress=False, pool_min_misses=10**9)
    torch.testing.assert_close(pooled.features, serial.features)
    assert extract_features(clips, settings, FeatureCache(tmp_path / "c1"), progress=False).hits == 6


def test_pool_worker_errors_surface_as_data_error(tmp_path: Path) -> None:
    clips = _clips(tmp_path / "audio", 4)
    bad = tmp_path / "audio" / "bad.wav"
    bad.write_bytes(b"RIFF garbage")
    clips.append(Clip(key=str(bad), label="x", split="train", path=bad))
    with pytest.raises(DataError, match="bad.wav"):
        extract_features(clips, FbankSettings(target_frames=16), None, progress=False, pool_min_misses=2)


def test_progress_flag_decides_whether_a_bar_is_drawn(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """With progress off (no terminal, --no-progress) nothing is written: no carriage-return frames in log files."""
    clips = _clips(tmp_path / "audio", 2)
    extract_features(clips, FbankSettings(target_frames=16), None, progress=False)
    assert capsys.readouterr() == ("", "")
    extract_features(clips, FbankSettings(target_frames=16), None, progress=True, desc="features demo")
    assert "features demo" in capsys.readouterr().err
