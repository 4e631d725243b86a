"""``ticl efficiency --profile``: where each case's time goes, as torch.profiler's table of ops by self time.

Profiled after the timings of its geometry, one call each (after one untimed call), so the profiler's overhead
never enters a timing. Custom ops (FTA's fused kernel, ``audio_ticl_fta::forward``) appear under their own names.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile

from audio_ticl.benchmark.efficiency.memory import native_stderr_silenced
from audio_ticl.benchmark.results import write_text

#: rows of each table: the ops that take the time, not the long tail
TOP_OPS = 15


def profile_table(fn: Callable[[], object], device: torch.device, rows: int = TOP_OPS) -> str:
    """torch.profiler's key averages of one call of ``fn``, sorted by self time (CPU, and CUDA on a GPU)."""
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    fn()
    with native_stderr_silenced(), profile(activities=activities) as prof:
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
    return prof.key_averages().table(sort_by=key, row_limit=rows)


def write_profile(out: Path, name: str, title: str, table: str) -> Path:
    """``out/<name>.txt``: a title line, then the table (written atomically)."""
    return write_text(Path(out) / f"{name}.txt", f"{title}\n\n{table}\n")
