"""The seventeen sound classes of the upstream pretraining, disjoint from every default task class.

They span what the task classes are made of (tones, harmonics, noise bands, transients, voices) without being any
of them, so a backbone pretrained on them has learned useful features but never seen a test class. The definition
order below is the class order (:data:`~.catalogue.UPSTREAM_CLASSES`, the upstream head's label order).
"""
from __future__ import annotations

import numpy as np

from . import signals as sig
from .registry import sound_class


@sound_class("upstream")
def pure_tone(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """A single sinusoid at 200-3000 Hz."""
    env, _, _ = sig.random_event(rng, n, sr, 0.3, 0.9)
    f = sig.log_uniform(rng, 200.0, min(3000.0, 0.4 * sr))
    return env * np.sin(sig.phase_of(f, sr, n, rng))


@sound_class("upstream")
def two_tone_chord(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """Two simultaneous tones a consonant interval apart."""
    env, _, _ = sig.random_event(rng, n, sr, 0.3, 0.9)
    f = sig.log_uniform(rng, 200.0, 900.0)
    ratio = float(rng.choice([6 / 5, 5 / 4, 4 / 3, 3 / 2, 5 / 3, 2.0]))
    return env * (np.sin(sig.phase_of(f, sr, n, rng))
                  + rng.uniform(0.5, 1.0) * np.sin(sig.phase_of(f * ratio, sr, n, rng)))


@sound_class("upstream")
def square_buzz(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """A low square-ish buzz: odd harmonics only, 1/k amplitudes."""
    env, _, _ = sig.random_event(rng, n, sr, 0.3, 0.9)
    f0 = sig.log_uniform(rng, 70.0, 300.0)
    k = np.arange(1, 80)
    amps = np.where(k % 2 == 1, 1.0 / k, 0.0)
    return env * sig.harmonics(sig.phase_of(f0, sr, n, rng), amps, f0, sr, rng)


@sound_class("upstream")
def fm_vibrato(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """A harmonic tone with vibrato (4-8 Hz, 1-4 % depth)."""
    env, _, _ = sig.random_event(rng, n, sr, 0.5, 0.95)
    f0 = sig.log_uniform(rng, 250.0, 1000.0)
    freq = f0 * (1.0 + rng.uniform(0.01, 0.04) * np.sin(sig.phase_of(rng.uniform(4.0, 8.0), sr, n, rng)))
    amps = np.arange(1, 6, dtype=np.float64) ** -rng.uniform(0.7, 2.0)
    return env * sig.harmonics(sig.phase_of(freq, sr, n, rng), amps, float(freq.max()), sr, rng)


@sound_class("upstream")
def noise_low_band(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """Band-passed noise low in frequency (centre 150-700 Hz)."""
    env, _, _ = sig.random_event(rng, n, sr, 0.3, 0.95)
    fc = sig.log_uniform(rng, 150.0, 700.0)
    bw = fc * rng.uniform(0.3, 0.8)
    return env * sig.shaped_noise(rng, n, sr, sig.band(fc - bw / 2, fc + bw / 2, bw / 4))


@sound_class("upstream")
def noise_high_band(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """Band-passed noise high in frequency (centre 2.5-6 kHz)."""
    env, _, _ = sig.random_event(rng, n, sr, 0.3, 0.95)
    fc = min(sig.log_uniform(rng, 2500.0, 6000.0), 0.35 * sr)
    bw = fc * rng.uniform(0.2, 0.5)
    return env * sig.shaped_noise(rng, n, sr, sig.band(fc - bw / 2, fc + bw / 2, bw / 4))


@sound_class("upstream")
def noise_sweep(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """A narrow band of noise whose centre sweeps up or down in frequency."""
    env, start, length = sig.random_event(rng, n, sr, 0.4, 0.9)
    f_a, f_b = sig.log_uniform(rng, 300.0, 1000.0), min(sig.log_uniform(rng, 2000.0, 6000.0), 0.4 * sr)
    if rng.random() < 0.5:
        f_a, f_b = f_b, f_a
    pos = np.clip((np.arange(n) - start) / max(length - 1, 1), 0.0, 1.0)
    centre = f_a * (f_b / f_a) ** pos
    return env * sig.narrowband(rng, n, sr, centre, rng.uniform(100.0, 400.0))


@sound_class("upstream")
def pluck(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """1-3 plucked-string notes: an impulse exciting decaying harmonics (higher ones decay faster)."""
    out = np.zeros(n)
    notes = int(rng.integers(1, 4))
    f0 = sig.log_uniform(rng, 100.0, 800.0)
    for _ in range(notes):
        start = int(rng.integers(0, max(1, n - n // 4)))
        length = n - start
        t = sig.time_axis(length, sr)
        tau = rng.uniform(0.08, 0.4)
        f = f0 * float(rng.choice([1.0, 1.25, 1.5, 2.0]))
        note = np.zeros(length)
        for k in range(1, 30):
            if k * f >= 0.45 * sr:
                break
            note += (rng.uniform(0.3, 1.0) / k) * np.exp(-t * k ** 0.7 / tau) \
                * np.sin(2 * np.pi * k * f * t + rng.uniform(0, 2 * np.pi))
        note[: min(length, 16)] *= np.linspace(0.0, 1.0, min(length, 16))
        sig.place(out, start, note * rng.uniform(0.5, 1.0))
    return out


@sound_class("upstream")
def rain(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """Rain: dense random impulses (50-250 per second), some with short droplet resonances."""
    env, start, length = sig.random_event(rng, n, sr, 0.7, 1.0, fade_s=(0.02, 0.1))
    count = int(rng.uniform(50.0, 250.0) * length / sr)
    out = np.zeros(n)
    hp = rng.uniform(1000.0, 3000.0)
    for _ in range(count):
        d = max(8, int(sr * rng.uniform(0.0005, 0.003)))
        drop = sig.shaped_noise(rng, d, sr, sig.band(hp, 0.45 * sr, 500.0)) * np.exp(-np.arange(d) / (d / 4.0))
        if rng.random() < 0.3:
            m = int(sr * rng.uniform(0.005, 0.02))
            tt = sig.time_axis(m, sr)
            fr = min(rng.uniform(1500.0, 4000.0), 0.4 * sr)
            ping = np.sin(2 * np.pi * fr * tt * (1.0 + 2.0 * tt)) * np.exp(-tt / (tt[-1] / 4.0))
            drop = np.concatenate([drop, np.zeros(max(0, m - d))])[:max(d, m)]
            drop[:m] += 0.5 * ping
        sig.place(out, int(rng.integers(start, start + length)), drop * rng.lognormal(0.0, 0.7))
    return out * env


def _beeps(rng: np.random.Generator, sr: int, n: int, count: int) -> np.ndarray:
    f = sig.log_uniform(rng, 500.0, min(2500.0, 0.4 * sr))
    beep_len = int(sr * rng.uniform(0.04, 0.12))
    gap = int(sr * rng.uniform(0.04, 0.15))
    out = np.zeros(n)
    tone = np.sin(2 * np.pi * f * sig.time_axis(beep_len, sr)) * sig.fade_gate(beep_len, int(sr * 0.004))
    starts = sig.fit_sequence(rng, n, [beep_len] * count, [gap] * (count - 1))
    for s in starts:
        sig.place(out, s, tone * rng.uniform(0.8, 1.0))
    return out


@sound_class("upstream")
def beeps_2(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """Two short tone beeps."""
    return _beeps(rng, sr, n, 2)


@sound_class("upstream")
def beeps_4(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """Four short tone beeps."""
    return _beeps(rng, sr, n, 4)


@sound_class("upstream")
def noise_burst(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """A single burst of coloured noise with a sharp (< 2 ms) attack and an exponential decay."""
    length = int(sr * rng.uniform(0.05, 0.3))
    start = int(rng.integers(0, n - length))
    burst = sig.shaped_noise(rng, length, sr, sig.coloured(rng.uniform(0.0, 1.0)))
    attack = max(1, int(sr * rng.uniform(0.0002, 0.002)))
    env = np.exp(-np.arange(length) / (length / rng.uniform(2.0, 5.0)))
    env[:attack] *= np.linspace(0.0, 1.0, attack)
    out = np.zeros(n)
    sig.place(out, start, burst * env)
    return out


@sound_class("upstream")
def crescendo(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """Broadband noise whose level rises exponentially (by 25-45 dB) and then stops abruptly."""
    _, start, length = sig.random_event(rng, n, sr, 0.5, 0.95)
    pos = np.clip((np.arange(n) - start) / max(length - 1, 1), 0.0, 1.0)
    rise_db = rng.uniform(25.0, 45.0)
    env = 10.0 ** ((pos - 1.0) * rise_db / 20.0) * ((np.arange(n) >= start) & (np.arange(n) < start + length))
    return env * sig.shaped_noise(rng, n, sr, sig.coloured(rng.uniform(0.0, 1.5)))


@sound_class("upstream")
def tremolo_noise(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """Broadband noise amplitude-modulated at 4-12 Hz."""
    env, _, _ = sig.random_event(rng, n, sr, 0.6, 0.95)
    mod = 1.0 - rng.uniform(0.6, 1.0) * 0.5 * (1.0 + np.sin(sig.phase_of(rng.uniform(4.0, 12.0), sr, n, rng)))
    return env * mod * sig.shaped_noise(rng, n, sr, sig.coloured(rng.uniform(0.0, 1.0)))


@sound_class("upstream")
def bird_tweets(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """3-8 rapid short high chirps (20-80 ms) with random direction and spacing."""
    count = int(rng.integers(3, 9))
    durs = [int(sr * rng.uniform(0.02, 0.08)) for _ in range(count)]
    gaps = [int(sr * rng.uniform(0.01, 0.08)) for _ in range(count - 1)]
    f_lo = min(sig.log_uniform(rng, 2000.0, 3500.0), 0.3 * sr)
    f_hi = min(f_lo * rng.uniform(1.3, 2.0), 0.42 * sr)
    out = np.zeros(n)
    for s, d in zip(sig.fit_sequence(rng, n, durs, gaps), durs):
        d = min(d, n - s)
        if d < 4:
            continue
        pos = np.linspace(0.0, 1.0, d)
        freq = f_lo + (f_hi - f_lo) * (pos if rng.random() < 0.6 else 1.0 - pos) ** rng.uniform(0.5, 2.0)
        tweet = np.sin(sig.phase_of(freq, sr, d, rng)) * np.sin(np.pi * pos) ** 2
        sig.place(out, s, tweet * rng.uniform(0.5, 1.0))
    return out


@sound_class("upstream")
def siren(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """A siren: a harmonic tone whose pitch sweeps up and down periodically (0.5-2.5 Hz, large depth)."""
    env, _, _ = sig.random_event(rng, n, sr, 0.7, 1.0, fade_s=(0.02, 0.1))
    fc = sig.log_uniform(rng, 500.0, 1200.0)
    dev = fc * rng.uniform(0.25, 0.5)
    freq = fc + dev * np.sin(sig.phase_of(rng.uniform(0.5, 2.5), sr, n, rng))
    amps = np.array([1.0, rng.uniform(0.1, 0.5), rng.uniform(0.0, 0.3)])
    return env * sig.harmonics(sig.phase_of(freq, sr, n, rng), amps, fc + dev, sr, rng)


@sound_class("upstream")
def speech_syllables(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """Speech-like babble: voiced syllables with changing formants at a 3-6 Hz rhythm, some with fricatives."""
    rate = rng.uniform(3.0, 6.0)
    f0 = sig.log_uniform(rng, 90.0, 240.0)
    scale = rng.uniform(0.9, 1.15)
    out = np.zeros(n)
    t = int(rng.integers(0, max(1, n // 5)))
    while t < n - sr // 20:
        syl = int(sr / rate * rng.uniform(0.5, 0.8))
        syl = min(syl, n - t)
        formants = sig.random_formants(rng, str(rng.choice(list(sig.VOWELS))), scale)
        contour = f0 * (1.0 + rng.uniform(-0.15, 0.15) * np.linspace(0.0, 1.0, syl))
        voice = sig.voiced(rng, syl, sr, contour, formants) * np.sin(np.pi * np.linspace(0.0, 1.0, syl)) ** 0.7
        if rng.random() < 0.5:  # a fricative consonant at the start
            m = min(syl, int(sr * rng.uniform(0.02, 0.06)))
            lo = rng.uniform(2500.0, 4000.0)
            fric = sig.shaped_noise(rng, m, sr, sig.band(lo, min(lo * 2.0, 0.45 * sr), 500.0))
            voice[:m] += fric * sig.fade_gate(m, m // 4) * rng.uniform(0.1, 0.4) * np.max(np.abs(voice))
        sig.place(out, t, voice * rng.uniform(0.5, 1.0))
        t += int(sr / rate * rng.uniform(0.8, 1.2))
    return out
