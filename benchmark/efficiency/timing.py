"""Interleaved timing with ``torch.utils.benchmark.Timer``: every case once per repeat, round-robin, so that a
drift of the machine (thermal state, another process) hits all cases alike instead of whichever ran last."""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils import benchmark


@dataclass(frozen=True)
class Timing:
    """Median and interquartile range of the repeats, in milliseconds."""

    median_ms: float
    iqr_ms: float

    @classmethod
    def of(cls, seconds: list[float]) -> Timing:
        q1, q3 = np.percentile(seconds, [25, 75])
        return cls(statistics.median(seconds) * 1e3, float(q3 - q1) * 1e3)


def interleaved_samples(
    fns: dict[str, Callable[[], object]],
    repeats: int,
    warmup: int,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, list[float]]:
    """Seconds of every repeat of each callable, timed by ``torch.utils.benchmark.Timer``.

    The callables alternate within every repeat. Each measurement is one ``Timer.timeit(1)``: two untimed calls
    (the Timer's own warm-up, which also puts the caches in that callable's state) and one timed call; the wall
    clock (``time.perf_counter``) synchronises CUDA around it. The Timer runs with the caller's torch thread count
    (its default would be one thread).
    """
    threads = torch.get_num_threads()
    timers = {
        name: benchmark.Timer(stmt="fn()", globals={"fn": fn}, timer=clock, num_threads=threads)
        for name, fn in fns.items()
    }
    for _ in range(warmup):
        for timer in timers.values():
            timer.timeit(1)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, timer in timers.items():
            times[name].append(timer.timeit(1).median)
    return times


def time_interleaved(
    fns: dict[str, Callable[[], object]],
    repeats: int,
    warmup: int,
    clock: Callable[[], float],
) -> dict[str, float]:
    """Median milliseconds of each callable (see :func:`interleaved_samples`)."""
    samples = interleaved_samples(fns, repeats, warmup, clock)
    return {name: statistics.median(ts) * 1e3 for name, ts in samples.items()}
