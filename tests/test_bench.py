"""``ticl bench`` times with ``torch.utils.benchmark`` and interleaves the mixers, so drifts hit all alike."""
from __future__ import annotations

import itertools

from audio_ticl.benchmark.bench_mixers import time_interleaved


def test_mixers_alternate_within_every_repeat_and_the_median_is_reported() -> None:
    calls: list[str] = []
    ticks = itertools.count()
    clock = lambda: float(next(ticks))  # noqa: E731  every reading one second later
    fns = {"gsa": lambda: calls.append("gsa"), "fta": lambda: calls.append("fta")}

    ms = time_interleaved(fns, repeats=3, warmup=1, clock=clock)

    # one warm-up round, then three timed rounds; every measurement is Timer.timeit(1): 2 untimed calls + 1 timed
    assert calls == (["gsa"] * 3 + ["fta"] * 3) * 4
    assert ms == {"gsa": 1000.0, "fta": 1000.0}  # each timed call read one tick (1 s) of the injected clock
