"""Rendering one clip: a generator's event at a random level, mixed with coloured background noise.

The waveform of a clip depends only on ``(seed, class, split, index)`` and its length (duration, sample rate): its
random generator is seeded from a SHA-256 of those four values (not Python's salted ``hash()``), so a clip is the same
whichever other classes are requested, in every process.
"""
from __future__ import annotations

import hashlib

import numpy as np
from einops import rearrange

from . import signals as sig
from .catalogue import check_class
from .registry import GENERATORS

__all__ = ["GAIN_DB_RANGE", "GENERATOR_VERSION", "SNR_DB_RANGE", "clip_rng", "render_clip"]

#: part of every clip key; bump it when any generator or the mixing changes (invalidates feature caches)
GENERATOR_VERSION = "v2"

#: peak level of the sound event before background noise, in dBFS
GAIN_DB_RANGE = (-30.0, -6.0)
#: ratio of event RMS to background-noise RMS, in dB
SNR_DB_RANGE = (10.0, 30.0)


def clip_rng(seed: int, label: str, split: str, index: int) -> np.random.Generator:
    """The random generator of one clip, seeded from a stable SHA-256 of its identity (not ``hash()``)."""
    digest = hashlib.sha256(f"synthetic|{seed}|{label}|{split}|{index}".encode()).digest()
    return np.random.default_rng([int.from_bytes(digest[i:i + 4], "little") for i in range(0, 32, 4)])


def active_rms(x: np.ndarray, sr: int) -> float:
    """RMS over the 10 ms frames within 30 dB of the loudest one (the event, not the silence around it)."""
    hop = max(1, sr // 100)
    frames = rearrange(x[: len(x) // hop * hop], "(frames hop) -> frames hop", hop=hop)
    power = np.mean(frames ** 2, axis=1)
    return float(np.sqrt(np.mean(power[power >= power.max() * 1e-3])))


def render_clip(seed: int, label: str, split: str, index: int, duration_s: float = 1.0,
                sample_rate: int = 16000) -> tuple[np.ndarray, int]:
    """Generate one clip: ``(float32 mono waveform of round(duration_s * sample_rate) samples, sample_rate)``.

    The event is normalised to a random peak gain in :data:`GAIN_DB_RANGE` and mixed with background noise of
    random colour (white..brown) at a random SNR in :data:`SNR_DB_RANGE` (relative to the RMS of the event's
    active part, so short events get as much background as long ones); the result never exceeds |x| = 1.
    """
    check_class(label)
    n = int(round(duration_s * sample_rate))
    rng = clip_rng(seed, label, split, index)
    event = np.asarray(GENERATORS[label](rng, sample_rate, n), dtype=np.float64)
    peak = float(np.max(np.abs(event)))
    if not np.isfinite(peak) or peak <= 0.0:  # pragma: no cover - every generator makes sound
        raise RuntimeError(f"synthetic generator {label!r} produced silence or non-finite samples")
    event *= 10.0 ** (rng.uniform(*GAIN_DB_RANGE) / 20.0) / peak
    noise = sig.shaped_noise(rng, n, sample_rate, sig.coloured(rng.uniform(0.0, 2.0)))
    event_rms = active_rms(event, sample_rate)
    noise *= event_rms / 10.0 ** (rng.uniform(*SNR_DB_RANGE) / 20.0) / max(float(np.sqrt(np.mean(noise ** 2))), 1e-12)
    wav = event + noise
    top = float(np.max(np.abs(wav)))
    if top > 0.99:
        wav *= 0.99 / top
    return wav.astype(np.float32), sample_rate
