"""The ten sound classes of the default continual-learning tasks, in task order.

Consecutive pairs are similar on purpose (few vs many harmonics, sweep up vs down, slow vs fast modulation, slow
vs fast clicks, vowel /a/ vs /i/): each of the five default tasks asks for one fine distinction. The definition order
below is the class order (:data:`~.catalogue.DEFAULT_TASK_CLASSES`), so it makes the tasks: do not reorder.
"""
from __future__ import annotations

import numpy as np

from . import signals as sig
from .registry import sound_class


def _harmonic_stack(rng: np.random.Generator, sr: int, n: int, n_harm: tuple[int, int],
                    tilt: tuple[float, float]) -> np.ndarray:
    env, _, _ = sig.random_event(rng, n, sr, 0.4, 0.95)
    f0 = sig.log_uniform(rng, 150.0, 600.0) * (1.0 + rng.uniform(-0.03, 0.03) * sig.time_axis(n, sr))  # slow drift
    k = int(rng.integers(n_harm[0], n_harm[1] + 1))
    amps = np.arange(1, k + 1, dtype=np.float64) ** -rng.uniform(*tilt) * rng.uniform(0.5, 1.0, k)
    return env * sig.harmonics(sig.phase_of(f0, sr, n, rng), amps, float(f0.max()), sr, rng)


@sound_class("task")
def harmonic_few(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """A steady tone with 2-4 harmonics."""
    return _harmonic_stack(rng, sr, n, (2, 4), (0.0, 1.0))


@sound_class("task")
def harmonic_many(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """A steady tone with 6-16 harmonics and a random spectral tilt (upper ones can be faint)."""
    return _harmonic_stack(rng, sr, n, (6, 16), (0.5, 1.8))


def _chirp(rng: np.random.Generator, sr: int, n: int, up: bool) -> np.ndarray:
    env, start, length = sig.random_event(rng, n, sr, 0.25, 0.8)
    f_lo = sig.log_uniform(rng, 200.0, 1000.0)
    f_hi = min(f_lo * sig.log_uniform(rng, 2.0, 6.0), 0.4 * sr)
    pos = np.clip((np.arange(n) - start) / max(length - 1, 1), 0.0, 1.0)
    ratio = pos if up else 1.0 - pos
    freq = f_lo * (f_hi / f_lo) ** ratio  # exponential sweep
    amps = np.array([1.0, rng.uniform(0.0, 0.4), rng.uniform(0.0, 0.2)])
    return env * sig.harmonics(sig.phase_of(freq, sr, n, rng), amps, f_hi, sr, rng)


@sound_class("task")
def chirp_up(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """An exponential upward pitch sweep (2x-6x) over 0.25-0.8 of the clip."""
    return _chirp(rng, sr, n, True)


@sound_class("task")
def chirp_down(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """An exponential downward pitch sweep (2x-6x) over 0.25-0.8 of the clip."""
    return _chirp(rng, sr, n, False)


def _am_tone(rng: np.random.Generator, sr: int, n: int, rate: tuple[float, float]) -> np.ndarray:
    env, _, _ = sig.random_event(rng, n, sr, 0.6, 0.95)
    fc = sig.log_uniform(rng, 300.0, 2000.0)
    amps = np.array([1.0, rng.uniform(0.0, 0.5), rng.uniform(0.0, 0.3)])
    carrier = sig.harmonics(sig.phase_of(fc, sr, n, rng), amps, fc, sr, rng)
    depth = rng.uniform(0.7, 1.0)
    mod = 1.0 - depth * 0.5 * (1.0 + np.sin(sig.phase_of(rng.uniform(*rate), sr, n, rng)))
    return env * mod * carrier


@sound_class("task")
def am_slow(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """A tone amplitude-modulated at 2-5 Hz."""
    return _am_tone(rng, sr, n, (2.0, 5.0))


@sound_class("task")
def am_fast(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """A tone amplitude-modulated at 10-25 Hz."""
    return _am_tone(rng, sr, n, (10.0, 25.0))


def _click_train(rng: np.random.Generator, sr: int, n: int, rate: tuple[float, float]) -> np.ndarray:
    env, start, length = sig.random_event(rng, n, sr, 0.6, 0.95, fade_s=(0.001, 0.005))
    period = sr / rng.uniform(*rate)
    jitter = rng.uniform(0.0, 0.15)
    click_len = max(8, int(sr * rng.uniform(0.002, 0.006)))
    tau = click_len / 3.0
    lo = sig.log_uniform(rng, 500.0, 2000.0)
    click = sig.shaped_noise(rng, click_len, sr, sig.band(lo, min(lo * 4.0, 0.45 * sr), 300.0))
    click *= np.exp(-np.arange(click_len) / tau)
    out = np.zeros(n)
    t = start + rng.uniform(0.0, period)
    while t < start + length:
        sig.place(out, int(t), click * rng.uniform(0.6, 1.0))
        t += period * (1.0 + jitter * rng.uniform(-1.0, 1.0))
    return out * env


@sound_class("task")
def clicks_slow(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """A click train at 3-8 clicks per second."""
    return _click_train(rng, sr, n, (3.0, 8.0))


@sound_class("task")
def clicks_fast(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """A click train at 12-30 clicks per second."""
    return _click_train(rng, sr, n, (12.0, 30.0))


def _vowel(rng: np.random.Generator, sr: int, n: int, vowel: str) -> np.ndarray:
    env, _, _ = sig.random_event(rng, n, sr, 0.35, 0.9, fade_s=(0.02, 0.06))
    t = sig.time_axis(n, sr)
    f0 = sig.log_uniform(rng, 90.0, 350.0) * (1.0 + rng.uniform(-0.15, 0.05) * t / t[-1]) \
        * (1.0 + rng.uniform(0.0, 0.02) * np.sin(sig.phase_of(rng.uniform(4.0, 7.0), sr, n, rng)))
    formants = sig.random_formants(rng, vowel, rng.uniform(0.85, 1.2))
    breath = sig.shaped_noise(rng, n, sr, lambda f: sig.formant_gain(f, formants)) * rng.uniform(0.0, 0.2)
    return env * (sig.voiced(rng, n, sr, f0, formants) + breath)


@sound_class("task")
def vowel_a(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """A sung/spoken vowel /a/ (formants ~750, ~1200, ~2500 Hz) with random pitch and speaker scale."""
    return _vowel(rng, sr, n, "a")


@sound_class("task")
def vowel_i(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
    """A vowel /i/ (formants ~300, ~2250, ~3000 Hz) with random pitch and speaker scale."""
    return _vowel(rng, sr, n, "i")
