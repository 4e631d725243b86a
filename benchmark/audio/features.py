"""The AST/SSAST front end: 128-bin kaldi log-mel fbank, fixed length, normalisation and SpecAugment; and the
MFCC-gram front end (torchaudio's MFCC on the same windows), which shares the rest.

Features are cached un-normalised (see :mod:`benchmark.audio.cache`): SpecAugment masks with zeros and must run
before :func:`normalize`, as in the AST recipe.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
import torchaudio.compliance.kaldi as kaldi
import torchaudio.transforms as T
from einops import rearrange

from .settings import FEATURE_VERSION, FbankSettings

__all__ = ["FEATURE_VERSION", "FbankSettings", "fbank", "mfcc", "features_of", "feature_stats", "pad_or_crop",
           "normalize", "SpecAugment"]

#: the suite's front end: 16 kHz, 128 mel bins, 25 ms windows every 10 ms
DEFAULT_SETTINGS = FbankSettings()


def pad_or_crop(x: torch.Tensor, target_frames: int) -> torch.Tensor:
    """Zero-pad at the end, or crop, a ``(frames, bins)`` tensor to ``target_frames`` frames."""
    frames = x.shape[0]
    if frames < target_frames:
        return F.pad(x, (0, 0, 0, target_frames - frames))
    return x[:target_frames]


def fbank(wave: torch.Tensor, settings: FbankSettings = DEFAULT_SETTINGS) -> torch.Tensor:
    """Log-mel fbank ``(target_frames, num_mel_bins)`` of a mono waveform already at ``settings.sample_rate``.

    Not normalised: normalisation comes after SpecAugment at training time.
    """
    if wave.dim() != 1:
        raise ValueError(f"fbank expects a 1-D mono waveform, got shape {tuple(wave.shape)}")
    wave = wave.to(torch.float32)
    wave = wave - wave.mean()
    # Kaldi fbank needs at least one full window (400 samples at 16 kHz / 25 ms); very short clips (FSDD digits,
    # empty renders) are zero-padded at the end to that length so they still yield one frame.
    min_len = settings.frame_length_samples
    if wave.shape[0] < min_len:
        wave = F.pad(wave, (0, min_len - wave.shape[0]))
    feats = kaldi.fbank(
        wave[None],
        htk_compat=True,
        sample_frequency=settings.sample_rate,
        use_energy=False,
        window_type="hanning",
        num_mel_bins=settings.num_mel_bins,
        dither=0.0,
        frame_shift=settings.frame_shift_ms,
        frame_length=settings.frame_length_ms,
    )
    return pad_or_crop(feats, settings.target_frames).contiguous()


def mfcc_transform(settings: FbankSettings) -> T.MFCC:
    """torchaudio's MFCC on the fbank's windows: ``n_mfcc`` DCT-II (orthonormal) coefficients of the log of
    ``num_mel_bins`` mel bands (HTK scale), from a Hann-windowed power spectrum of ``frame_length_ms`` windows every
    ``frame_shift_ms`` without centre padding, FFT size the window (torchaudio's default, 400 at 16 kHz), so that
    it has the fbank's frame count, 1 + (samples - window) // hop."""
    window = settings.frame_length_samples
    return T.MFCC(
        sample_rate=settings.sample_rate,
        n_mfcc=settings.n_mfcc,
        melkwargs={
            "n_fft": window,
            "win_length": window,
            "hop_length": int(settings.sample_rate * settings.frame_shift_ms * 0.001),
            "n_mels": settings.num_mel_bins,
            "center": False,
            "mel_scale": "htk",
        },
    )


def mfcc(wave: torch.Tensor, settings: FbankSettings) -> torch.Tensor:
    """MFCC ``(target_frames, n_mfcc)`` of a mono waveform at ``settings.sample_rate`` (mean removed, padded to
    one window as ``fbank``); not normalised."""
    if wave.dim() != 1:
        raise ValueError(f"mfcc expects a 1-D mono waveform, got shape {tuple(wave.shape)}")
    wave = wave.to(torch.float32)
    wave = wave - wave.mean()
    if wave.shape[0] < settings.frame_length_samples:
        wave = F.pad(wave, (0, settings.frame_length_samples - wave.shape[0]))
    coefficients = rearrange(mfcc_transform(settings)(wave), "c t -> t c")
    return pad_or_crop(coefficients, settings.target_frames).contiguous()


def features_of(wave: torch.Tensor, settings: FbankSettings) -> torch.Tensor:
    """The front end ``settings.kind`` names: fbank or MFCC, ``(target_frames, settings.feature_bins)``."""
    return mfcc(wave, settings) if settings.kind == "mfcc" else fbank(wave, settings)


def feature_stats(features: torch.Tensor) -> tuple[float, float]:
    """Mean and std of every value of ``features`` (N, T, F), padding included: how AST's dataset constants were
    computed, for a front end without published ones (MFCC)."""
    if features.numel() < 2:
        raise ValueError("feature statistics need at least two values")
    return float(features.mean()), float(features.std())


def normalize(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """AST normalisation ``(x - mean) / (2 * std)`` with the dataset's fbank statistics."""
    return (x - mean) / (2.0 * std)


class SpecAugment(torch.nn.Module):
    """One frequency mask and one time mask (torchaudio) on ``(T, F)`` or ``(B, T, F)`` features.

    Masks only in training mode; the caller switches modes. ``freqm``/``timem`` are the maximum mask widths
    (0 disables that mask). Batched input gets an independent mask per example.
    """

    def __init__(self, freqm: int, timem: int) -> None:
        super().__init__()
        if freqm < 0 or timem < 0:
            raise ValueError(f"SpecAugment mask widths must be >= 0, got freqm={freqm}, timem={timem}")
        self.freqm = freqm
        self.timem = timem
        self.freq_mask = T.FrequencyMasking(freqm, iid_masks=True) if freqm > 0 else None
        self.time_mask = T.TimeMasking(timem, iid_masks=True) if timem > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or (self.freq_mask is None and self.time_mask is None):
            return x
        if x.dim() == 2:
            spec = rearrange(x, "t f -> 1 1 f t")
        elif x.dim() == 3:
            spec = rearrange(x, "b t f -> b 1 f t")
        else:
            raise ValueError(f"SpecAugment expects (T, F) or (B, T, F) features, got shape {tuple(x.shape)}")
        if self.freq_mask is not None:
            spec = self.freq_mask(spec)
        if self.time_mask is not None:
            spec = self.time_mask(spec)
        out = rearrange(spec, "b 1 f t -> b t f")
        return out[0] if x.dim() == 2 else out

    def extra_repr(self) -> str:
        return f"freqm={self.freqm}, timem={self.timem}"
