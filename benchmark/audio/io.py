"""Decode audio files (or generated clips) into 1-D float32 mono waveforms at the feature sample rate.

Decoding goes through ``soundfile`` because ``torchaudio.load`` needs FFmpeg from torchaudio 2.9 on; resampling
uses ``torchaudio.functional.resample`` so every dataset reaches the fbank front end at the same rate. Every
waveform is checked before it reaches the front end: a truncated file (:mod:`.integrity`) or one NaN/Inf sample
(which would make every weight it trains NaN) is a DataError naming the file.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from audio_ticl.benchmark.audio.integrity import check_complete
from audio_ticl.benchmark.datasets.base import Clip
from audio_ticl.benchmark.errors import DataError

__all__ = ["load_audio", "to_mono_tensor", "waveform_from_clip"]


def to_mono_tensor(samples: np.ndarray, sample_rate: int, target_sr: int, origin: str) -> torch.Tensor:
    """Downmix ``(frames,)`` or ``(frames, channels)`` samples to mono and resample to ``target_sr``.

    ``origin`` names the file or clip in error messages; non-finite samples are rejected here, where the file is
    still known, rather than surfacing later as NaN losses.
    """
    data = np.asarray(samples, dtype=np.float32)
    _check_finite(data, origin)
    if data.ndim == 2:
        data = data.mean(axis=1, dtype=np.float32)
    elif data.ndim != 1:
        raise DataError(f"{origin}: expected mono or (frames, channels) audio, got an array of shape {data.shape}")
    if data.size == 0:
        raise DataError(f"{origin}: the audio holds no samples")
    if int(sample_rate) <= 0:
        raise DataError(f"{origin}: invalid sample rate {sample_rate}")
    wave = torch.from_numpy(np.ascontiguousarray(data))
    if int(sample_rate) != int(target_sr):
        wave = AF.resample(wave, orig_freq=int(sample_rate), new_freq=int(target_sr))
    return wave.contiguous()


def _check_finite(data: np.ndarray, origin: str) -> None:
    """Reject NaN/Inf samples (also values beyond float32's range, which became Inf above), saying how many."""
    if np.isfinite(data).all():
        return
    bad = int(data.size - np.count_nonzero(np.isfinite(data)))
    raise DataError(
        f"{origin}: {bad} of its {data.size} samples are not finite (NaN or Inf); expected finite audio "
        "(a damaged or mis-encoded float file?)"
    )


def load_audio(path: Path, target_sr: int = 16000) -> torch.Tensor:
    """Decode a wav/flac/ogg file of any bit depth and channel count into a mono float32 waveform at ``target_sr``.

    A file holding fewer frames than its header declares (a cut-off copy, which libsndfile decodes silently) is
    a DataError, as is one with non-finite samples.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: audio file not found (expected a readable wav/flac/ogg file)")
    try:
        samples, sample_rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError) as err:
        raise DataError(f"{path}: cannot decode audio ({err}); expected a wav/flac/ogg file") from err
    check_complete(path, samples.shape[0])
    return to_mono_tensor(samples, sample_rate, target_sr, str(path))


def waveform_from_clip(clip: Clip, target_sr: int = 16000) -> torch.Tensor:
    """The mono waveform of a clip at ``target_sr``, decoded from ``clip.path`` or produced by ``clip.render()``."""
    if clip.path is not None:
        return load_audio(clip.path, target_sr)
    if clip.render is None:
        raise DataError(f"clip {clip.key!r}: has neither a path nor a render function")
    try:
        samples, sample_rate = clip.render()
    except (TypeError, ValueError) as err:
        raise DataError(
            f"clip {clip.key!r}: render() must return (mono float32 waveform, sample_rate) ({err})"
        ) from err
    return to_mono_tensor(samples, sample_rate, target_sr, f"clip {clip.key!r}")
