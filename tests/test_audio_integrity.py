"""Damaged audio and damaged cache entries are caught, not trained on: non-finite samples and features, truncated
WAV / FLAC / Ogg files, corrupt or non-finite cache entries, and pool workers that outlive a killed parent."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from fixtures import shared_data, tone, write_wav

from audio_ticl.benchmark.audio import cache as cache_module
from audio_ticl.benchmark.audio.cache import FeatureCache, compute_clip_features, extract_features
from audio_ticl.benchmark.audio.features import FbankSettings
from audio_ticl.benchmark.audio.integrity import check_complete
from audio_ticl.benchmark.audio.io import load_audio, waveform_from_clip
from audio_ticl.benchmark.datasets.base import Clip
from audio_ticl.benchmark.errors import DataError

SETTINGS = FbankSettings(target_frames=16)


def clip_of(path: Path) -> Clip:
    return Clip(key=str(path), label="x", split="train", path=path)


def cut(path: Path, keep: int, name: str = "") -> Path:
    """A copy of ``path`` holding only its first ``keep`` bytes (a half-finished copy or download)."""
    out = path.with_name(name or f"cut-{path.name}")
    out.write_bytes(path.read_bytes()[:keep])
    return out


# -- non-finite audio and features --------------------------------------------------------------------------------

def test_nan_and_inf_samples_are_rejected_naming_file_and_count(tmp_path: Path) -> None:
    samples = tone(0.25, 16000)
    samples[[10, 20, 30]] = np.nan
    samples[40] = np.inf
    path = write_wav(tmp_path / "nan.wav", samples, 16000, subtype="FLOAT")
    with pytest.raises(DataError, match=rf"nan\.wav: 4 of its {samples.size} samples are not finite"):
        load_audio(path)


def test_non_finite_render_is_rejected_naming_the_clip() -> None:
    clip = Clip(key="gen:bad", label="x", split="train", render=lambda: (np.array([0.0, np.nan, 1.0]), 16000))
    with pytest.raises(DataError, match=r"clip 'gen:bad': 1 of its 3 samples are not finite"):
        waveform_from_clip(clip)


def _overflowing_wav(path: Path) -> Path:
    """Finite float samples whose power spectrum overflows float32: the features, not the audio, are NaN."""
    samples = (1e30 * np.sin(np.arange(4000) / 5)).astype(np.float32)
    return write_wav(path, samples, 16000, subtype="FLOAT")


def test_non_finite_fresh_features_are_an_error_naming_the_clip(tmp_path: Path) -> None:
    path = _overflowing_wav(tmp_path / "loud.wav")
    assert torch.isfinite(load_audio(path)).all()
    with pytest.raises(DataError, match=r"loud\.wav: \d+ of its 2048 fbank feature values are not finite"):
        compute_clip_features(clip_of(path), SETTINGS)
    cache = FeatureCache(tmp_path / "cache")
    with pytest.raises(DataError, match=r"loud\.wav: .*not finite"):
        extract_features([clip_of(path)], SETTINGS, cache, progress=False)
    assert not list((tmp_path / "cache").rglob("*.pt"))  # nothing was cached


# -- truncated files ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("fmt", "subtype"), [("WAV", "PCM_16"), ("WAV", "FLOAT"), ("WAVEX", "PCM_24"),
                                              ("RF64", "PCM_16"), ("W64", "PCM_16")])
def test_truncated_wav_is_rejected_with_declared_and_held_frames(tmp_path: Path, fmt: str, subtype: str) -> None:
    whole = tmp_path / "whole.wav"
    sf.write(str(whole), tone(1.0, 16000, channels=2), 16000, format=fmt, subtype=subtype)
    frame_bytes = 2 * {"PCM_16": 2, "FLOAT": 4, "PCM_24": 3}[subtype]  # two channels
    header = whole.stat().st_size - 16000 * frame_bytes  # the data chunk comes last
    short = cut(whole, header + 1000 * frame_bytes + 1)  # 1000 whole frames and a byte
    assert sf.read(str(short))[0].shape[0] == 1000  # libsndfile alone decodes the rest silently
    with pytest.raises(DataError, match=r"cut-whole\.wav: truncated: its header declares 16000 frames, the file "
                                        r"holds 1000$"):
        load_audio(short)
    assert load_audio(whole).shape == (16000,)


def _flac(tmp_path: Path) -> Path:
    path = tmp_path / "whole.flac"
    sf.write(str(path), tone(1.0, 16000), 16000, format="FLAC", subtype="PCM_16")
    return path


def test_truncated_flac_is_rejected_naming_the_file(tmp_path: Path) -> None:
    whole = _flac(tmp_path)
    assert load_audio(whole).shape == (16000,)
    short = cut(whole, whole.stat().st_size * 2 // 3)
    with pytest.raises(DataError, match=r"cut-whole\.flac: "):
        load_audio(short)


def test_flac_streaminfo_total_is_compared_and_zero_means_unknown(tmp_path: Path) -> None:
    """libsndfile reports most cut FLAC files itself; the STREAMINFO check covers those it would decode."""
    whole = _flac(tmp_path)
    check_complete(whole, 16000)
    with pytest.raises(DataError, match=r"whole\.flac: truncated: its header declares 16000 frames, the file holds "
                                        r"12000"):
        check_complete(whole, 12000)
    unknown = bytearray(whole.read_bytes())
    unknown[21] &= 0xF0  # total samples: the low 4 bits of byte 21 and bytes 22-25 (after magic and block header)
    unknown[22:26] = b"\0\0\0\0"
    streamed = tmp_path / "streamed.flac"
    streamed.write_bytes(bytes(unknown))
    check_complete(streamed, 12000)


def _ogg(tmp_path: Path) -> Path:
    path = tmp_path / "whole.ogg"
    sf.write(str(path), tone(3.0, 16000, seed=3), 16000, format="OGG", subtype="VORBIS")
    return path


def test_ogg_cut_mid_page_is_rejected(tmp_path: Path) -> None:
    whole = _ogg(tmp_path)
    assert load_audio(whole).shape[0] == 48000
    short = cut(whole, whole.stat().st_size * 2 // 3)
    assert sf.read(str(short))[0].shape[0] > 0  # libsndfile alone decodes the rest silently
    with pytest.raises(DataError, match=r"cut-whole\.ogg: truncated: its last Ogg page is cut short"):
        load_audio(short)


def test_ogg_cut_at_a_page_boundary_lacks_end_of_stream(tmp_path: Path) -> None:
    whole = _ogg(tmp_path)
    data = whole.read_bytes()
    short = cut(whole, data.rfind(b"OggS"))  # drop the last (end-of-stream) page whole
    assert sf.read(str(short))[0].shape[0] > 0
    with pytest.raises(DataError, match=r"cut-whole\.ogg: truncated: its last Ogg page has no end-of-stream flag"):
        load_audio(short)


@pytest.mark.parametrize(("fmt", "subtype", "suffix"), [
    ("WAV", "PCM_U8", "wav"), ("WAV", "ULAW", "wav"), ("WAV", "IMA_ADPCM", "wav"), ("FLAC", "PCM_24", "flac"),
    ("OGG", "VORBIS", "ogg"), ("OGG", "OPUS", "ogg"),
])
def test_whole_files_of_other_encodings_load(tmp_path: Path, fmt: str, subtype: str, suffix: str) -> None:
    if subtype not in sf.available_subtypes(fmt):
        pytest.skip(f"this libsndfile cannot write {fmt}/{subtype}")
    path = tmp_path / f"whole.{suffix}"
    sf.write(str(path), tone(0.5, 48000, channels=2), 48000, format=fmt, subtype=subtype)
    assert load_audio(path, target_sr=48000).shape[0] >= 24000 - 1024


def test_worker_errors_are_the_same_data_error_as_in_process(tmp_path: Path) -> None:
    clips = [clip_of(write_wav(tmp_path / f"c{i}.wav", tone(0.3, 8000, seed=i), 8000)) for i in range(4)]
    whole = write_wav(tmp_path / "victim.wav", tone(0.3, 8000, seed=9), 8000)
    clips.append(clip_of(cut(whole, whole.stat().st_size - 100, "truncated.wav")))
    with pytest.raises(DataError) as in_process:
        extract_features(clips, SETTINGS, None, progress=False, pool_min_misses=10**9)
    with pytest.raises(DataError) as pooled:
        extract_features(clips, SETTINGS, None, progress=False, pool_min_misses=2)
    assert type(pooled.value) is DataError
    assert str(pooled.value) == str(in_process.value)
    assert "truncated.wav: truncated: its header declares 2400 frames, the file holds 2350" in str(pooled.value)


# -- cache entries ------------------------------------------------------------------------------------------------

@pytest.fixture()
def cached(tmp_path: Path) -> tuple[FeatureCache, Clip, torch.Tensor]:
    clip = clip_of(write_wav(tmp_path / "audio" / "c.wav", tone(0.3, 8000, seed=1), 8000))
    cache = FeatureCache(tmp_path / "cache")
    return cache, clip, cache.get_or_compute(clip, SETTINGS)


def _rebuilt(cache: FeatureCache, clip: Clip, good: torch.Tensor) -> None:
    """The entry is a miss, the extraction recomputes it, and the rewritten entry is a valid hit."""
    assert cache.load(clip, SETTINGS) is None
    batch = extract_features([clip], SETTINGS, cache, progress=False)
    assert (batch.hits, batch.misses) == (0, 1)
    torch.testing.assert_close(batch.features[0], good)
    torch.testing.assert_close(cache.load(clip, SETTINGS), good)


def test_corrupt_but_loadable_cache_entry_is_rebuilt(cached: tuple[FeatureCache, Clip, torch.Tensor]) -> None:
    cache, clip, good = cached
    path = cache.path_for(clip, SETTINGS)
    raw = bytearray(path.read_bytes())
    start = bytes(raw).find(good.numpy().tobytes()[:64])
    assert start > 0
    raw[start + 100] ^= 0x40  # one flipped bit inside the stored features
    path.write_bytes(bytes(raw))
    loaded = torch.load(path, weights_only=True)  # torch itself notices nothing
    assert not torch.equal(loaded["features"], good)
    _rebuilt(cache, clip, good)


def test_non_finite_cache_entry_is_rebuilt(cached: tuple[FeatureCache, Clip, torch.Tensor]) -> None:
    cache, clip, good = cached
    poisoned = good.clone()
    poisoned[3, 5] = float("nan")
    cache.store(clip, SETTINGS, poisoned)  # a well-formed entry, checksum and all, of NaN features
    assert cache.load(clip, SETTINGS) is None
    _rebuilt(cache, clip, good)


def test_old_format_bare_tensor_entry_is_a_miss(cached: tuple[FeatureCache, Clip, torch.Tensor]) -> None:
    cache, clip, good = cached
    torch.save(good.clone(), cache.path_for(clip, SETTINGS))  # how entries were stored before the checksum
    _rebuilt(cache, clip, good)
    entry = torch.load(cache.path_for(clip, SETTINGS), weights_only=True)
    assert entry["format"] == cache_module.CACHE_FORMAT and isinstance(entry["crc32"], int)


# -- pool workers die with their parent --------------------------------------------------------------------------

_EXTRACT_FOREVER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path

    from audio_ticl.benchmark.audio import cache
    from audio_ticl.benchmark.audio.features import FbankSettings
    from audio_ticl.benchmark.datasets.base import Clip

    marks, audio = Path(sys.argv[1]), Path(sys.argv[2])

    def stuck(wave, settings):  # inherited by the forked workers: each marks itself, then hangs mid-extraction
        (marks / str(os.getpid())).touch()
        time.sleep(120)

    cache.features_of = stuck
    clips = [Clip(key=str(p), label="x", split="train", path=p) for p in sorted(audio.glob("*.wav"))]
    cache.extract_features(clips, FbankSettings(target_frames=16), None, progress=False, pool_min_misses=1)
""")


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper that this container's init may never be counts as gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; PR_SET_PDEATHSIG is Linux's")
@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="extraction uses a pool only with two or more CPUs")
def test_pool_workers_exit_when_the_parent_is_killed(tmp_path: Path) -> None:
    audio, marks = tmp_path / "audio", tmp_path / "marks"
    marks.mkdir()
    for i in range(8):
        write_wav(audio / f"c{i}.wav", tone(0.2, 8000, seed=i), 8000)
    script = tmp_path / "extract.py"
    script.write_text(_EXTRACT_FOREVER)
    parent = subprocess.Popen([sys.executable, str(script), str(marks), str(audio)])
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(workers) < 2 and time.monotonic() < deadline and parent.poll() is None:
            time.sleep(0.1)
            workers = [int(p.name) for p in marks.iterdir()]
        assert len(workers) == 2, f"the extraction did not start two workers (exit status {parent.poll()})"
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=30)
        deadline = time.monotonic() + 5
        while any(map(_alive, workers)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not [pid for pid in workers if _alive(pid)], "pool workers outlived their SIGKILLed parent"
    finally:
        parent.kill()
        for pid in workers:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# -- the real recordings pass every check --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["esc50-subset", "fsdd"])
def test_every_real_recording_passes_the_checks(name: str) -> None:
    files = sorted(p for p in shared_data(name).rglob("*") if p.suffix.lower() in (".wav", ".ogg", ".flac"))
    assert files
    for path in files:
        wave = load_audio(path, target_sr=sf.info(str(path)).samplerate)  # native rate: checks, no resampling
        assert wave.numel() > 0
