"""Signal primitives the synthetic sound generators are built from: phases, gates, harmonics, filtered noise, voices.

Every function is a pure function of its arguments; those that take ``rng`` draw from it in a fixed order, so a
generator built from them is a deterministic function of its random generator. Changing the order or the number of
draws changes every clip that uses the primitive: bump ``GENERATOR_VERSION`` (``synthetic.render``) if you do.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = [
    "VOWELS",
    "band",
    "coloured",
    "fade_gate",
    "fit_sequence",
    "formant_gain",
    "harmonics",
    "log_uniform",
    "narrowband",
    "phase_of",
    "place",
    "random_event",
    "random_formants",
    "shaped_noise",
    "time_axis",
    "voiced",
]

Magnitude = Callable[[np.ndarray], np.ndarray]


def time_axis(n: int, sr: int) -> np.ndarray:
    """Sample times in seconds of ``n`` samples at ``sr`` Hz (float64)."""
    return np.arange(n, dtype=np.float64) / sr


def phase_of(freq: np.ndarray | float, sr: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Instantaneous phase (radians) of a signal whose frequency in Hz is ``freq`` (scalar or per sample)."""
    f = np.broadcast_to(np.asarray(freq, dtype=np.float64), (n,))
    return 2.0 * np.pi * np.cumsum(f) / sr + rng.uniform(0.0, 2.0 * np.pi)


def fade_gate(length: int, fade: int) -> np.ndarray:
    """A gate of ``length`` ones with raised-cosine ramps of ``fade`` samples at both ends."""
    seg = np.ones(length)
    fade = min(fade, length // 2)
    if fade > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
        seg[:fade] = ramp
        seg[length - fade:] = ramp[::-1]
    return seg


def random_event(rng: np.random.Generator, n: int, sr: int, min_frac: float, max_frac: float,
                 fade_s: tuple[float, float] = (0.005, 0.03)) -> tuple[np.ndarray, int, int]:
    """Random onset and duration (a fraction of the clip): returns (gate envelope, start, length)."""
    length = max(2, int(n * rng.uniform(min_frac, max_frac)))
    start = int(rng.integers(0, n - length + 1))
    env = np.zeros(n)
    env[start:start + length] = fade_gate(length, int(sr * rng.uniform(*fade_s)))
    return env, start, length


def harmonics(phase: np.ndarray, amps: np.ndarray, f0_max: float, sr: int, rng: np.random.Generator) -> np.ndarray:
    """Sum of ``amps[k-1] * sin(k * phase + random)``, dropping harmonics above 0.45 * sr."""
    out = np.zeros_like(phase)
    for k, a in enumerate(amps, start=1):
        if k * f0_max >= 0.45 * sr:
            break
        out += a * np.sin(k * phase + rng.uniform(0.0, 2.0 * np.pi))
    return out


def shaped_noise(rng: np.random.Generator, n: int, sr: int, magnitude: Magnitude) -> np.ndarray:
    """Gaussian noise filtered in the frequency domain by ``magnitude(freqs_hz)``."""
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    return np.fft.irfft(spec * magnitude(freqs), n)


def band(lo: float, hi: float, edge: float) -> Magnitude:
    """A band-pass magnitude response with smooth (Gaussian) skirts of width ``edge`` Hz."""
    def mag(f: np.ndarray) -> np.ndarray:
        g = np.ones_like(f)
        g = np.where(f < lo, np.exp(-0.5 * ((f - lo) / edge) ** 2), g)
        return np.where(f > hi, np.exp(-0.5 * ((f - hi) / edge) ** 2), g)
    return mag


def coloured(beta: float) -> Magnitude:
    """Power spectrum ~ 1/f**beta (0 white, 1 pink, 2 brown), flat below 20 Hz."""
    return lambda f: np.maximum(f, 20.0) ** (-beta / 2.0)


def narrowband(rng: np.random.Generator, n: int, sr: int, centre: np.ndarray | float, bandwidth: float) -> np.ndarray:
    """Noise of ``bandwidth`` Hz around a (possibly time-varying) centre frequency."""
    z = shaped_noise(rng, n, sr, lambda f: np.exp(-0.5 * (f / (bandwidth / 2.0)) ** 2)) \
        + 1j * shaped_noise(rng, n, sr, lambda f: np.exp(-0.5 * (f / (bandwidth / 2.0)) ** 2))
    return np.real(z * np.exp(1j * phase_of(centre, sr, n, rng)))


def formant_gain(freqs: np.ndarray, formants: list[tuple[float, float]]) -> np.ndarray:
    """Magnitude of a cascade of second-order resonators (unit gain at DC, peak F/B at each formant F)."""
    g = np.ones_like(freqs, dtype=np.float64)
    for fc, bw in formants:
        g *= fc ** 2 / np.sqrt((fc ** 2 - freqs ** 2) ** 2 + (bw * freqs) ** 2)
    return g


def voiced(rng: np.random.Generator, n: int, sr: int, f0: np.ndarray,
           formants: list[tuple[float, float]]) -> np.ndarray:
    """A glottal-like harmonic source (1/k roll-off) shaped by formant resonances (additive synthesis)."""
    phase = phase_of(f0, sr, n, rng)
    f0_mean = float(np.mean(f0))
    f0_max = float(np.max(f0))
    out = np.zeros(n)
    for k in range(1, 200):
        if k * f0_max >= 0.45 * sr:
            break
        amp = formant_gain(np.array([k * f0_mean]), formants)[0] / k
        out += amp * np.sin(k * phase + rng.uniform(0.0, 2.0 * np.pi))
    return out


#: (F1, F2, F3) ranges in Hz of a few vowels, for the formant synthesiser
VOWELS: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "a": ((650.0, 850.0), (1050.0, 1350.0), (2300.0, 2800.0)),
    "i": ((250.0, 350.0), (2000.0, 2500.0), (2800.0, 3300.0)),
    "e": ((400.0, 550.0), (1800.0, 2100.0), (2500.0, 2900.0)),
    "o": ((400.0, 550.0), (750.0, 950.0), (2300.0, 2700.0)),
    "u": ((280.0, 380.0), (650.0, 900.0), (2200.0, 2600.0)),
}


def random_formants(rng: np.random.Generator, vowel: str, scale: float) -> list[tuple[float, float]]:
    """(centre, bandwidth) of the three formants of ``vowel``, drawn in its ranges and scaled (speaker size)."""
    return [(rng.uniform(lo, hi) * scale, rng.uniform(60.0, 130.0)) for lo, hi in VOWELS[vowel]]


def fit_sequence(rng: np.random.Generator, n: int, durations: list[int], gaps: list[int]) -> list[int]:
    """Start samples of consecutive events (durations, gaps in samples), scaled to fit and randomly placed."""
    total = sum(durations) + sum(gaps)
    scale = min(1.0, 0.95 * n / max(total, 1))
    durations = [max(2, int(d * scale)) for d in durations]
    gaps = [int(g * scale) for g in gaps]
    total = sum(durations) + sum(gaps)
    t = int(rng.integers(0, max(1, n - total + 1)))
    starts = []
    for i, d in enumerate(durations):
        starts.append(t)
        t += d + (gaps[i] if i < len(gaps) else 0)
    return starts


def place(out: np.ndarray, start: int, event: np.ndarray) -> None:
    """Add ``event`` into ``out`` at ``start`` (cropped at the end of the clip)."""
    end = min(len(out), start + len(event))
    if end > start:
        out[start:end] += event[:end - start]


def log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """A draw uniform on a log scale (pitches, rates): as likely in 100-200 Hz as in 1-2 kHz."""
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
