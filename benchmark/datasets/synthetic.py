"""The built-in synthetic sound set: procedurally generated, deterministic, no download needed.

Every class is a small pure function ``(rng, sr, n) -> float32 waveform of n samples`` that draws its own
random parameters (pitch, onset, event durations, rates) from ``rng``. :func:`render_clip` then normalises
the event to a random peak gain (-30..-6 dBFS) and adds coloured background noise at a random SNR (10..30 dB).

The waveform of a clip depends only on ``(seed, class, split, index)`` and its length (duration, sample rate):
its random generator is seeded from a SHA-256 of those four values (not Python's salted ``hash()``), so a
clip is the same whichever other classes are requested, in every process. Bump :data:`GENERATOR_VERSION`
whenever a generator changes, so that feature caches keyed by :attr:`Clip.key` are invalidated.

The first ten classes (:data:`DEFAULT_TASK_CLASSES`) form five task-incremental tasks of two similar classes
each; the remaining classes (:data:`UPSTREAM_CLASSES`, disjoint) are for a short upstream pretraining of the
backbone.
"""
from __future__ import annotations

import functools
import hashlib
from typing import Callable, Optional

import numpy as np

from audio_ticl.benchmark.datasets.base import SPLITS, Clip, ClipSource, FeatureDefaults
from audio_ticl.benchmark.errors import ConfigError

#: part of every clip key; bump it when any generator or the mixing changes (invalidates feature caches)
GENERATOR_VERSION = "v2"

Generator = Callable[[np.random.Generator, int, int], np.ndarray]

# ----------------------------------------------------------------------------------------------------------
# Shared helpers (all pure functions of their arguments)
# ----------------------------------------------------------------------------------------------------------


def _time(n: int, sr: int) -> np.ndarray:
    return np.arange(n, dtype=np.float64) / sr


def _phase(freq: np.ndarray | float, sr: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """Instantaneous phase (radians) of a signal whose frequency in Hz is ``freq`` (scalar or per sample)."""
    f = np.broadcast_to(np.asarray(freq, dtype=np.float64), (n,))
    return 2.0 * np.pi * np.cumsum(f) / sr + rng.uniform(0.0, 2.0 * np.pi)


def _fade(length: int, fade: int) -> np.ndarray:
    """A gate of ``length`` ones with raised-cosine ramps of ``fade`` samples at both ends."""
    seg = np.ones(length)
    fade = min(fade, length // 2)
    if fade > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
        seg[:fade] = ramp
        seg[length - fade:] = ramp[::-1]
    return seg


def _event(rng: np.random.Generator, n: int, sr: int, min_frac: float, max_frac: float,
           fade_s: tuple[float, float] = (0.005, 0.03)) -> tuple[np.ndarray, int, int]:
    """Random onset and duration (a fraction of the clip): returns (gate envelope, start, length)."""
    length = max(2, int(n * rng.uniform(min_frac, max_frac)))
    start = int(rng.integers(0, n - length + 1))
    env = np.zeros(n)
    env[start:start + length] = _fade(length, int(sr * rng.uniform(*fade_s)))
    return env, start, length


def _harmonics(phase: np.ndarray, amps: np.ndarray, f0_max: float, sr: int,
               rng: np.random.Generator) -> np.ndarray:
    """Sum of ``amps[k-1] * sin(k * phase + random)``, dropping harmonics above 0.45 * sr."""
    out = np.zeros_like(phase)
    for k, a in enumerate(amps, start=1):
        if k * f0_max >= 0.45 * sr:
            break
        out += a * np.sin(k * phase + rng.uniform(0.0, 2.0 * np.pi))
    return out


def _shaped_noise(rng: np.random.Generator, n: int, sr: int,
                  magnitude: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Gaussian noise filtered in the frequency domain by ``magnitude(freqs_hz)``."""
    spec = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    return np.fft.irfft(spec * magnitude(freqs), n)


def _band(lo: float, hi: float, edge: float) -> Callable[[np.ndarray], np.ndarray]:
    """A band-pass magnitude response with smooth (Gaussian) skirts of width ``edge`` Hz."""
    def mag(f: np.ndarray) -> np.ndarray:
        g = np.ones_like(f)
        g = np.where(f < lo, np.exp(-0.5 * ((f - lo) / edge) ** 2), g)
        return np.where(f > hi, np.exp(-0.5 * ((f - hi) / edge) ** 2), g)
    return mag


def _coloured(beta: float) -> Callable[[np.ndarray], np.ndarray]:
    """Power spectrum ~ 1/f**beta (0 white, 1 pink, 2 brown), flat below 20 Hz."""
    return lambda f: np.maximum(f, 20.0) ** (-beta / 2.0)


def _narrowband(rng: np.random.Generator, n: int, sr: int, centre: np.ndarray | float,
                bandwidth: float) -> np.ndarray:
    """Noise of ``bandwidth`` Hz around a (possibly time-varying) centre frequency."""
    z = _shaped_noise(rng, n, sr, lambda f: np.exp(-0.5 * (f / (bandwidth / 2.0)) ** 2)) \
        + 1j * _shaped_noise(rng, n, sr, lambda f: np.exp(-0.5 * (f / (bandwidth / 2.0)) ** 2))
    return np.real(z * np.exp(1j * _phase(centre, sr, n, rng)))


def _formant_gain(freqs: np.ndarray, formants: list[tuple[float, float]]) -> np.ndarray:
    """Magnitude of a cascade of second-order resonators (unit gain at DC, peak F/B at each formant F)."""
    g = np.ones_like(freqs, dtype=np.float64)
    for fc, bw in formants:
        g *= fc ** 2 / np.sqrt((fc ** 2 - freqs ** 2) ** 2 + (bw * freqs) ** 2)
    return g


def _voiced(rng: np.random.Generator, n: int, sr: int, f0: np.ndarray,
            formants: list[tuple[float, float]]) -> np.ndarray:
    """A glottal-like harmonic source (1/k roll-off) shaped by formant resonances (additive synthesis)."""
    phase = _phase(f0, sr, n, rng)
    f0_mean = float(np.mean(f0))
    f0_max = float(np.max(f0))
    out = np.zeros(n)
    for k in range(1, 200):
        if k * f0_max >= 0.45 * sr:
            break
        amp = _formant_gain(np.array([k * f0_mean]), formants)[0] / k
        out += amp * np.sin(k * phase + rng.uniform(0.0, 2.0 * np.pi))
    return out


def _fit_sequence(rng: np.random.Generator, n: int, durations: list[int], gaps: list[int]) -> list[int]:
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


def _place(out: np.ndarray, start: int, event: np.ndarray) -> None:
    """Add ``event`` into ``out`` at ``start`` (cropped at the end of the clip)."""
    end = min(len(out), start + len(event))
    if end > start:
        out[start:end] += event[:end - start]


def _family(fn: Generator) -> Generator:
    """Mark a class family: its (float64) synthesis is returned as float32."""
    @functools.wraps(fn)
    def wrapper(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
        return np.asarray(fn(rng, sr, n), dtype=np.float32)
    return wrapper


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


# ----------------------------------------------------------------------------------------------------------
# Class families
# ----------------------------------------------------------------------------------------------------------


def _harmonic_stack(rng, sr, n, n_harm: tuple[int, int], tilt: tuple[float, float]) -> np.ndarray:
    env, _, _ = _event(rng, n, sr, 0.4, 0.95)
    f0 = _log_uniform(rng, 150.0, 600.0) * (1.0 + rng.uniform(-0.03, 0.03) * _time(n, sr))  # slow drift
    k = int(rng.integers(n_harm[0], n_harm[1] + 1))
    amps = np.arange(1, k + 1, dtype=np.float64) ** -rng.uniform(*tilt) * rng.uniform(0.5, 1.0, k)
    return env * _harmonics(_phase(f0, sr, n, rng), amps, float(f0.max()), sr, rng)


@_family
def harmonic_few(rng, sr, n):
    """A steady tone with 2-4 harmonics."""
    return _harmonic_stack(rng, sr, n, (2, 4), (0.0, 1.0))


@_family
def harmonic_many(rng, sr, n):
    """A steady tone with 6-16 harmonics and a random spectral tilt (upper ones can be faint)."""
    return _harmonic_stack(rng, sr, n, (6, 16), (0.5, 1.8))


def _chirp(rng, sr, n, up: bool) -> np.ndarray:
    env, start, length = _event(rng, n, sr, 0.25, 0.8)
    f_lo = _log_uniform(rng, 200.0, 1000.0)
    f_hi = min(f_lo * _log_uniform(rng, 2.0, 6.0), 0.4 * sr)
    pos = np.clip((np.arange(n) - start) / max(length - 1, 1), 0.0, 1.0)
    ratio = pos if up else 1.0 - pos
    freq = f_lo * (f_hi / f_lo) ** ratio  # exponential sweep
    amps = np.array([1.0, rng.uniform(0.0, 0.4), rng.uniform(0.0, 0.2)])
    return env * _harmonics(_phase(freq, sr, n, rng), amps, f_hi, sr, rng)


@_family
def chirp_up(rng, sr, n):
    """An exponential upward pitch sweep (2x-6x) over 0.25-0.8 of the clip."""
    return _chirp(rng, sr, n, True)


@_family
def chirp_down(rng, sr, n):
    """An exponential downward pitch sweep (2x-6x) over 0.25-0.8 of the clip."""
    return _chirp(rng, sr, n, False)


def _am_tone(rng, sr, n, rate: tuple[float, float]) -> np.ndarray:
    env, _, _ = _event(rng, n, sr, 0.6, 0.95)
    fc = _log_uniform(rng, 300.0, 2000.0)
    amps = np.array([1.0, rng.uniform(0.0, 0.5), rng.uniform(0.0, 0.3)])
    carrier = _harmonics(_phase(fc, sr, n, rng), amps, fc, sr, rng)
    depth = rng.uniform(0.7, 1.0)
    mod = 1.0 - depth * 0.5 * (1.0 + np.sin(_phase(rng.uniform(*rate), sr, n, rng)))
    return env * mod * carrier


@_family
def am_slow(rng, sr, n):
    """A tone amplitude-modulated at 2-5 Hz."""
    return _am_tone(rng, sr, n, (2.0, 5.0))


@_family
def am_fast(rng, sr, n):
    """A tone amplitude-modulated at 10-25 Hz."""
    return _am_tone(rng, sr, n, (10.0, 25.0))


def _click_train(rng, sr, n, rate: tuple[float, float]) -> np.ndarray:
    env, start, length = _event(rng, n, sr, 0.6, 0.95, fade_s=(0.001, 0.005))
    period = sr / rng.uniform(*rate)
    jitter = rng.uniform(0.0, 0.15)
    click_len = max(8, int(sr * rng.uniform(0.002, 0.006)))
    tau = click_len / 3.0
    lo = _log_uniform(rng, 500.0, 2000.0)
    click = _shaped_noise(rng, click_len, sr, _band(lo, min(lo * 4.0, 0.45 * sr), 300.0))
    click *= np.exp(-np.arange(click_len) / tau)
    out = np.zeros(n)
    t = start + rng.uniform(0.0, period)
    while t < start + length:
        _place(out, int(t), click * rng.uniform(0.6, 1.0))
        t += period * (1.0 + jitter * rng.uniform(-1.0, 1.0))
    return out * env


@_family
def clicks_slow(rng, sr, n):
    """A click train at 3-8 clicks per second."""
    return _click_train(rng, sr, n, (3.0, 8.0))


@_family
def clicks_fast(rng, sr, n):
    """A click train at 12-30 clicks per second."""
    return _click_train(rng, sr, n, (12.0, 30.0))


#: (F1, F2, F3) ranges in Hz of a few vowels, for the formant synthesiser
_VOWELS: dict[str, tuple[tuple[float, float], tuple[float, float], tuple[float, float]]] = {
    "a": ((650.0, 850.0), (1050.0, 1350.0), (2300.0, 2800.0)),
    "i": ((250.0, 350.0), (2000.0, 2500.0), (2800.0, 3300.0)),
    "e": ((400.0, 550.0), (1800.0, 2100.0), (2500.0, 2900.0)),
    "o": ((400.0, 550.0), (750.0, 950.0), (2300.0, 2700.0)),
    "u": ((280.0, 380.0), (650.0, 900.0), (2200.0, 2600.0)),
}


def _formants(rng, vowel: str, scale: float) -> list[tuple[float, float]]:
    return [(rng.uniform(lo, hi) * scale, rng.uniform(60.0, 130.0)) for lo, hi in _VOWELS[vowel]]


def _vowel(rng, sr, n, vowel: str) -> np.ndarray:
    env, _, _ = _event(rng, n, sr, 0.35, 0.9, fade_s=(0.02, 0.06))
    t = _time(n, sr)
    f0 = _log_uniform(rng, 90.0, 350.0) * (1.0 + rng.uniform(-0.15, 0.05) * t / t[-1]) \
        * (1.0 + rng.uniform(0.0, 0.02) * np.sin(_phase(rng.uniform(4.0, 7.0), sr, n, rng)))
    formants = _formants(rng, vowel, rng.uniform(0.85, 1.2))
    breath = _shaped_noise(rng, n, sr, lambda f: _formant_gain(f, formants)) * rng.uniform(0.0, 0.2)
    return env * (_voiced(rng, n, sr, f0, formants) + breath)


@_family
def vowel_a(rng, sr, n):
    """A sung/spoken vowel /a/ (formants ~750, ~1200, ~2500 Hz) with random pitch and speaker scale."""
    return _vowel(rng, sr, n, "a")


@_family
def vowel_i(rng, sr, n):
    """A vowel /i/ (formants ~300, ~2250, ~3000 Hz) with random pitch and speaker scale."""
    return _vowel(rng, sr, n, "i")


@_family
def pure_tone(rng, sr, n):
    """A single sinusoid at 200-3000 Hz."""
    env, _, _ = _event(rng, n, sr, 0.3, 0.9)
    f = _log_uniform(rng, 200.0, min(3000.0, 0.4 * sr))
    return env * np.sin(_phase(f, sr, n, rng))


@_family
def two_tone_chord(rng, sr, n):
    """Two simultaneous tones a consonant interval apart."""
    env, _, _ = _event(rng, n, sr, 0.3, 0.9)
    f = _log_uniform(rng, 200.0, 900.0)
    ratio = float(rng.choice([6 / 5, 5 / 4, 4 / 3, 3 / 2, 5 / 3, 2.0]))
    return env * (np.sin(_phase(f, sr, n, rng)) + rng.uniform(0.5, 1.0) * np.sin(_phase(f * ratio, sr, n, rng)))


@_family
def square_buzz(rng, sr, n):
    """A low square-ish buzz: odd harmonics only, 1/k amplitudes."""
    env, _, _ = _event(rng, n, sr, 0.3, 0.9)
    f0 = _log_uniform(rng, 70.0, 300.0)
    k = np.arange(1, 80)
    amps = np.where(k % 2 == 1, 1.0 / k, 0.0)
    return env * _harmonics(_phase(f0, sr, n, rng), amps, f0, sr, rng)


@_family
def fm_vibrato(rng, sr, n):
    """A harmonic tone with vibrato (4-8 Hz, 1-4 % depth)."""
    env, _, _ = _event(rng, n, sr, 0.5, 0.95)
    f0 = _log_uniform(rng, 250.0, 1000.0)
    freq = f0 * (1.0 + rng.uniform(0.01, 0.04) * np.sin(_phase(rng.uniform(4.0, 8.0), sr, n, rng)))
    amps = np.arange(1, 6, dtype=np.float64) ** -rng.uniform(0.7, 2.0)
    return env * _harmonics(_phase(freq, sr, n, rng), amps, float(freq.max()), sr, rng)


@_family
def noise_low_band(rng, sr, n):
    """Band-passed noise low in frequency (centre 150-700 Hz)."""
    env, _, _ = _event(rng, n, sr, 0.3, 0.95)
    fc = _log_uniform(rng, 150.0, 700.0)
    bw = fc * rng.uniform(0.3, 0.8)
    return env * _shaped_noise(rng, n, sr, _band(fc - bw / 2, fc + bw / 2, bw / 4))


@_family
def noise_high_band(rng, sr, n):
    """Band-passed noise high in frequency (centre 2.5-6 kHz)."""
    env, _, _ = _event(rng, n, sr, 0.3, 0.95)
    fc = min(_log_uniform(rng, 2500.0, 6000.0), 0.35 * sr)
    bw = fc * rng.uniform(0.2, 0.5)
    return env * _shaped_noise(rng, n, sr, _band(fc - bw / 2, fc + bw / 2, bw / 4))


@_family
def noise_sweep(rng, sr, n):
    """A narrow band of noise whose centre sweeps up or down in frequency."""
    env, start, length = _event(rng, n, sr, 0.4, 0.9)
    f_a, f_b = _log_uniform(rng, 300.0, 1000.0), min(_log_uniform(rng, 2000.0, 6000.0), 0.4 * sr)
    if rng.random() < 0.5:
        f_a, f_b = f_b, f_a
    pos = np.clip((np.arange(n) - start) / max(length - 1, 1), 0.0, 1.0)
    centre = f_a * (f_b / f_a) ** pos
    return env * _narrowband(rng, n, sr, centre, rng.uniform(100.0, 400.0))


@_family
def pluck(rng, sr, n):
    """1-3 plucked-string notes: an impulse exciting decaying harmonics (higher ones decay faster)."""
    out = np.zeros(n)
    notes = int(rng.integers(1, 4))
    f0 = _log_uniform(rng, 100.0, 800.0)
    for _ in range(notes):
        start = int(rng.integers(0, max(1, n - n // 4)))
        length = n - start
        t = _time(length, sr)
        tau = rng.uniform(0.08, 0.4)
        f = f0 * float(rng.choice([1.0, 1.25, 1.5, 2.0]))
        note = np.zeros(length)
        for k in range(1, 30):
            if k * f >= 0.45 * sr:
                break
            note += (rng.uniform(0.3, 1.0) / k) * np.exp(-t * k ** 0.7 / tau) \
                * np.sin(2 * np.pi * k * f * t + rng.uniform(0, 2 * np.pi))
        note[: min(length, 16)] *= np.linspace(0.0, 1.0, min(length, 16))
        _place(out, start, note * rng.uniform(0.5, 1.0))
    return out


@_family
def rain(rng, sr, n):
    """Rain: dense random impulses (50-250 per second), some with short droplet resonances."""
    env, start, length = _event(rng, n, sr, 0.7, 1.0, fade_s=(0.02, 0.1))
    count = int(rng.uniform(50.0, 250.0) * length / sr)
    out = np.zeros(n)
    hp = rng.uniform(1000.0, 3000.0)
    for _ in range(count):
        d = max(8, int(sr * rng.uniform(0.0005, 0.003)))
        drop = _shaped_noise(rng, d, sr, _band(hp, 0.45 * sr, 500.0)) * np.exp(-np.arange(d) / (d / 4.0))
        if rng.random() < 0.3:
            m = int(sr * rng.uniform(0.005, 0.02))
            tt = _time(m, sr)
            fr = min(rng.uniform(1500.0, 4000.0), 0.4 * sr)
            ping = np.sin(2 * np.pi * fr * tt * (1.0 + 2.0 * tt)) * np.exp(-tt / (tt[-1] / 4.0))
            drop = np.concatenate([drop, np.zeros(max(0, m - d))])[:max(d, m)]
            drop[:m] += 0.5 * ping
        _place(out, int(rng.integers(start, start + length)), drop * rng.lognormal(0.0, 0.7))
    return out * env


def _beeps(rng, sr, n, count: int) -> np.ndarray:
    f = _log_uniform(rng, 500.0, min(2500.0, 0.4 * sr))
    beep_len = int(sr * rng.uniform(0.04, 0.12))
    gap = int(sr * rng.uniform(0.04, 0.15))
    out = np.zeros(n)
    tone = np.sin(2 * np.pi * f * _time(beep_len, sr)) * _fade(beep_len, int(sr * 0.004))
    starts = _fit_sequence(rng, n, [beep_len] * count, [gap] * (count - 1))
    for s in starts:
        _place(out, s, tone * rng.uniform(0.8, 1.0))
    return out


@_family
def beeps_2(rng, sr, n):
    """Two short tone beeps."""
    return _beeps(rng, sr, n, 2)


@_family
def beeps_4(rng, sr, n):
    """Four short tone beeps."""
    return _beeps(rng, sr, n, 4)


@_family
def noise_burst(rng, sr, n):
    """A single burst of coloured noise with a sharp (< 2 ms) attack and an exponential decay."""
    length = int(sr * rng.uniform(0.05, 0.3))
    start = int(rng.integers(0, n - length))
    burst = _shaped_noise(rng, length, sr, _coloured(rng.uniform(0.0, 1.0)))
    attack = max(1, int(sr * rng.uniform(0.0002, 0.002)))
    env = np.exp(-np.arange(length) / (length / rng.uniform(2.0, 5.0)))
    env[:attack] *= np.linspace(0.0, 1.0, attack)
    out = np.zeros(n)
    _place(out, start, burst * env)
    return out


@_family
def crescendo(rng, sr, n):
    """Broadband noise whose level rises exponentially (by 25-45 dB) and then stops abruptly."""
    _, start, length = _event(rng, n, sr, 0.5, 0.95)
    pos = np.clip((np.arange(n) - start) / max(length - 1, 1), 0.0, 1.0)
    rise_db = rng.uniform(25.0, 45.0)
    env = 10.0 ** ((pos - 1.0) * rise_db / 20.0) * ((np.arange(n) >= start) & (np.arange(n) < start + length))
    return env * _shaped_noise(rng, n, sr, _coloured(rng.uniform(0.0, 1.5)))


@_family
def tremolo_noise(rng, sr, n):
    """Broadband noise amplitude-modulated at 4-12 Hz."""
    env, _, _ = _event(rng, n, sr, 0.6, 0.95)
    mod = 1.0 - rng.uniform(0.6, 1.0) * 0.5 * (1.0 + np.sin(_phase(rng.uniform(4.0, 12.0), sr, n, rng)))
    return env * mod * _shaped_noise(rng, n, sr, _coloured(rng.uniform(0.0, 1.0)))


@_family
def bird_tweets(rng, sr, n):
    """3-8 rapid short high chirps (20-80 ms) with random direction and spacing."""
    count = int(rng.integers(3, 9))
    durs = [int(sr * rng.uniform(0.02, 0.08)) for _ in range(count)]
    gaps = [int(sr * rng.uniform(0.01, 0.08)) for _ in range(count - 1)]
    f_lo = min(_log_uniform(rng, 2000.0, 3500.0), 0.3 * sr)
    f_hi = min(f_lo * rng.uniform(1.3, 2.0), 0.42 * sr)
    out = np.zeros(n)
    for s, d in zip(_fit_sequence(rng, n, durs, gaps), durs):
        d = min(d, n - s)
        if d < 4:
            continue
        pos = np.linspace(0.0, 1.0, d)
        freq = f_lo + (f_hi - f_lo) * (pos if rng.random() < 0.6 else 1.0 - pos) ** rng.uniform(0.5, 2.0)
        tweet = np.sin(_phase(freq, sr, d, rng)) * np.sin(np.pi * pos) ** 2
        _place(out, s, tweet * rng.uniform(0.5, 1.0))
    return out


@_family
def siren(rng, sr, n):
    """A siren: a harmonic tone whose pitch sweeps up and down periodically (0.5-2.5 Hz, large depth)."""
    env, _, _ = _event(rng, n, sr, 0.7, 1.0, fade_s=(0.02, 0.1))
    fc = _log_uniform(rng, 500.0, 1200.0)
    dev = fc * rng.uniform(0.25, 0.5)
    freq = fc + dev * np.sin(_phase(rng.uniform(0.5, 2.5), sr, n, rng))
    amps = np.array([1.0, rng.uniform(0.1, 0.5), rng.uniform(0.0, 0.3)])
    return env * _harmonics(_phase(freq, sr, n, rng), amps, fc + dev, sr, rng)


@_family
def speech_syllables(rng, sr, n):
    """Speech-like babble: voiced syllables with changing formants at a 3-6 Hz rhythm, some with fricatives."""
    rate = rng.uniform(3.0, 6.0)
    f0 = _log_uniform(rng, 90.0, 240.0)
    scale = rng.uniform(0.9, 1.15)
    out = np.zeros(n)
    t = int(rng.integers(0, max(1, n // 5)))
    while t < n - sr // 20:
        syl = int(sr / rate * rng.uniform(0.5, 0.8))
        syl = min(syl, n - t)
        formants = _formants(rng, str(rng.choice(list(_VOWELS))), scale)
        contour = f0 * (1.0 + rng.uniform(-0.15, 0.15) * np.linspace(0.0, 1.0, syl))
        voice = _voiced(rng, syl, sr, contour, formants) * np.sin(np.pi * np.linspace(0.0, 1.0, syl)) ** 0.7
        if rng.random() < 0.5:  # a fricative consonant at the start
            m = min(syl, int(sr * rng.uniform(0.02, 0.06)))
            lo = rng.uniform(2500.0, 4000.0)
            fric = _shaped_noise(rng, m, sr, _band(lo, min(lo * 2.0, 0.45 * sr), 500.0))
            voice[:m] += fric * _fade(m, m // 4) * rng.uniform(0.1, 0.4) * np.max(np.abs(voice))
        _place(out, t, voice * rng.uniform(0.5, 1.0))
        t += int(sr / rate * rng.uniform(0.8, 1.2))
    return out


#: every class family, in canonical order: the first ten make five two-class tasks (pairs of similar classes)
GENERATORS: dict[str, Generator] = {
    # -- default continual-learning tasks: (0, 1), (2, 3), (4, 5), (6, 7), (8, 9)
    "harmonic_few": harmonic_few,
    "harmonic_many": harmonic_many,
    "chirp_up": chirp_up,
    "chirp_down": chirp_down,
    "am_slow": am_slow,
    "am_fast": am_fast,
    "clicks_slow": clicks_slow,
    "clicks_fast": clicks_fast,
    "vowel_a": vowel_a,
    "vowel_i": vowel_i,
    # -- upstream pretraining classes (disjoint from the tasks above)
    "pure_tone": pure_tone,
    "two_tone_chord": two_tone_chord,
    "square_buzz": square_buzz,
    "fm_vibrato": fm_vibrato,
    "noise_low_band": noise_low_band,
    "noise_high_band": noise_high_band,
    "noise_sweep": noise_sweep,
    "pluck": pluck,
    "rain": rain,
    "beeps_2": beeps_2,
    "beeps_4": beeps_4,
    "noise_burst": noise_burst,
    "crescendo": crescendo,
    "tremolo_noise": tremolo_noise,
    "bird_tweets": bird_tweets,
    "siren": siren,
    "speech_syllables": speech_syllables,
}

SYNTHETIC_CLASSES: list[str] = list(GENERATORS)
#: five tasks of two classes: consecutive pairs of this list
DEFAULT_TASK_CLASSES: list[str] = SYNTHETIC_CLASSES[:10]
#: classes for upstream pretraining of the backbone; disjoint from DEFAULT_TASK_CLASSES
UPSTREAM_CLASSES: list[str] = SYNTHETIC_CLASSES[10:]

DEFAULT_CLIPS_PER_CLASS: dict[str, int] = {"train": 40, "val": 10, "test": 20}

#: peak level of the sound event before background noise, in dBFS
GAIN_DB_RANGE = (-30.0, -6.0)
#: ratio of event RMS to background-noise RMS, in dB
SNR_DB_RANGE = (10.0, 30.0)
#: shortest supported clip, so every event family fits and kaldi fbank gets >= 400 samples at 16 kHz
MIN_DURATION_S = 0.5


# ----------------------------------------------------------------------------------------------------------
# Rendering
# ----------------------------------------------------------------------------------------------------------


def clip_rng(seed: int, label: str, split: str, index: int) -> np.random.Generator:
    """The random generator of one clip, seeded from a stable SHA-256 of its identity (not ``hash()``)."""
    digest = hashlib.sha256(f"synthetic|{seed}|{label}|{split}|{index}".encode()).digest()
    return np.random.default_rng([int.from_bytes(digest[i:i + 4], "little") for i in range(0, 32, 4)])


def _check_class(label: str) -> None:
    if label not in GENERATORS:
        raise ConfigError(f"unknown synthetic class {label!r}; available: {', '.join(SYNTHETIC_CLASSES)}")


def _active_rms(x: np.ndarray, sr: int) -> float:
    """RMS over the 10 ms frames within 30 dB of the loudest one (the event, not the silence around it)."""
    hop = max(1, sr // 100)
    frames = x[: len(x) // hop * hop].reshape(-1, hop)
    power = np.mean(frames ** 2, axis=1)
    return float(np.sqrt(np.mean(power[power >= power.max() * 1e-3])))


def render_clip(seed: int, label: str, split: str, index: int, duration_s: float = 1.0,
                sample_rate: int = 16000) -> tuple[np.ndarray, int]:
    """Generate one clip: ``(float32 mono waveform of round(duration_s * sample_rate) samples, sample_rate)``.

    The event is normalised to a random peak gain in :data:`GAIN_DB_RANGE` and mixed with background noise of
    random colour (white..brown) at a random SNR in :data:`SNR_DB_RANGE` (relative to the RMS of the event's
    active part, so short events get as much background as long ones); the result never exceeds |x| = 1.
    """
    _check_class(label)
    n = int(round(duration_s * sample_rate))
    rng = clip_rng(seed, label, split, index)
    event = np.asarray(GENERATORS[label](rng, sample_rate, n), dtype=np.float64)
    peak = float(np.max(np.abs(event)))
    if not np.isfinite(peak) or peak <= 0.0:  # pragma: no cover - every generator makes sound
        raise RuntimeError(f"synthetic generator {label!r} produced silence or non-finite samples")
    event *= 10.0 ** (rng.uniform(*GAIN_DB_RANGE) / 20.0) / peak
    noise = _shaped_noise(rng, n, sample_rate, _coloured(rng.uniform(0.0, 2.0)))
    event_rms = _active_rms(event, sample_rate)
    noise *= event_rms / 10.0 ** (rng.uniform(*SNR_DB_RANGE) / 20.0) / max(float(np.sqrt(np.mean(noise ** 2))), 1e-12)
    wav = event + noise
    top = float(np.max(np.abs(wav)))
    if top > 0.99:
        wav *= 0.99 / top
    return wav.astype(np.float32), sample_rate


# ----------------------------------------------------------------------------------------------------------
# The clip source
# ----------------------------------------------------------------------------------------------------------


def _target_frames(duration_s: float) -> int:
    """Frames of a 16 kHz kaldi fbank of this duration, rounded up to a multiple of 10 (1 s -> 98 -> 100)."""
    frames = 1 + (int(round(duration_s * 16000)) - 400) // 160
    return int(-(-frames // 10) * 10)


#: fbank normalisation of the default set (how: see SyntheticSource.feature_defaults); remeasure when
#: GENERATOR_VERSION changes
_FBANK_MEAN = -6.992082
_FBANK_STD = 3.705376


class SyntheticSource(ClipSource):
    """The built-in procedurally generated sound set (no files; each clip carries a ``render`` callable).

    ``classes`` defaults to :data:`DEFAULT_TASK_CLASSES` and keeps the given order (consecutive pairs make the
    default tasks). ``clips_per_class`` maps split -> clips per class; splits left out get none.
    """

    name = "synthetic"

    def __init__(self, classes: Optional[list[str]] = None, clips_per_class: Optional[dict[str, int]] = None,
                 duration_s: float = 1.0, sample_rate: int = 16000, seed: int = 0) -> None:
        selected = list(DEFAULT_TASK_CLASSES if classes is None else classes)
        if not selected:
            raise ConfigError(f"synthetic: classes is empty; available: {', '.join(SYNTHETIC_CLASSES)}")
        for label in selected:
            _check_class(label)
        dupes = sorted({c for c in selected if selected.count(c) > 1})
        if dupes:
            raise ConfigError(f"synthetic: classes lists {', '.join(dupes)} more than once")
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
        return FeatureDefaults(mean=_FBANK_MEAN, std=_FBANK_STD, target_frames=_target_frames(self.duration_s),
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

