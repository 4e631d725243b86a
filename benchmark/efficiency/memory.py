"""Peak memory of one call, measured the way the device allows, and labelled with how it was measured.

- CUDA: ``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``, minus what was allocated before
  the call: the call's own peak, not the model's weights or inputs.
- CPU: torch's CPU allocator reports every allocation and free to the profiler (``profile_memory=True``); sorted
  by time, their running sum is the bytes the call holds live, and its maximum the call's peak. A process's
  resident set (``benchmark.metrics.PeakMemory``) cannot separate one call from the rest of the process, and
  ``prof.events()`` folds most allocations into the ops that made them, so the kineto event list is read.
"""
from __future__ import annotations

import contextlib
import itertools
import os
import sys
from collections.abc import Callable, Iterator

import torch
from torch.profiler import ProfilerActivity, profile

CUDA_METHOD = "cuda_max_allocated"
CPU_METHOD = "cpu_profiler_live_bytes"
NO_METHOD = "unavailable"

#: method -> the sentence the report's notes print
METHOD_NOTES = {
    CUDA_METHOD: "CUDA: torch.cuda.max_memory_allocated during one call (peak stats reset before it) minus the "
    "memory allocated before it; excludes the model's weights and inputs",
    CPU_METHOD: "CPU: peak live bytes of torch's CPU allocator during one call, from torch.profiler memory events; "
    "excludes the model's weights and inputs allocated before",
    NO_METHOD: "peak memory not measured: this torch's profiler exposes no memory events",
}


def cuda_peak_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Bytes ``fn`` allocates on ``device`` at its peak, above what was allocated before it."""
    torch.cuda.synchronize(device)
    before = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    torch.cuda.synchronize(device)
    return max(0, torch.cuda.max_memory_allocated(device) - before)


def _cpu_memory_events(prof: profile) -> list[tuple[int, int]] | None:
    """(time ns, bytes: + allocated, - freed) of every CPU allocator event, or None if this torch hides them."""
    results = getattr(prof.profiler, "kineto_results", None)
    if results is None:
        return None
    cpu = torch.autograd.DeviceType.CPU
    return [(e.start_ns(), e.nbytes()) for e in results.events() if e.name() == "[memory]" and e.device_type() == cpu]


def peak_live_bytes(events: list[tuple[int, int]]) -> int:
    """The highest running sum of allocation events sorted by time (0 if nothing was allocated): frees of memory
    allocated before the call can take the sum below zero, never the peak."""
    sizes = [size for _, size in sorted(events, key=lambda e: e[0])]
    return max(0, *itertools.accumulate(sizes)) if sizes else 0


@contextlib.contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """File descriptor 2 pointed at /dev/null: kineto logs two lines ("profiler_start", "profiler_stop") to the
    process's stderr from C++ for every profile, with no setting to turn them off. Python exceptions are not
    affected (they are printed after the descriptor is restored)."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def cpu_peak_bytes(fn: Callable[[], object]) -> int | None:
    """Peak bytes live in torch's CPU allocator during ``fn``, above the level at its start; None if unmeasurable."""
    with native_stderr_silenced(), profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = _cpu_memory_events(prof)
    return None if events is None else peak_live_bytes(events)


def peak_bytes(fn: Callable[[], object], device: torch.device) -> tuple[int | None, str]:
    """(peak bytes of one call of ``fn``, the method's key in ``METHOD_NOTES``)."""
    if device.type == "cuda":
        return cuda_peak_bytes(fn, device), CUDA_METHOD
    peak = cpu_peak_bytes(fn)
    return (peak, CPU_METHOD) if peak is not None else (None, NO_METHOD)
