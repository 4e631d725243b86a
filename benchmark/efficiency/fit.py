"""Whether a case fits in memory before it runs: a case that cannot fit is skipped and reported as such, instead of
taking the machine down (a materialized 22k-token attention map is tens of GiB).

Only the term that decides it is estimated: the (B, H, L, L) score maps of mixers that build them
(``materializes_scores``). A forward holds two at once (``q k^T`` and its scaled copy, then the softmax), a
train step keeps every layer's for the backward. Everything else a case allocates grows linearly in tokens and is
not the reason a case would not fit.
"""
from __future__ import annotations

from pathlib import Path

from torch import nn

GiB = 2**30
#: the share of available memory a case may take by the estimate (the rest: weights, activations, the allocator)
HEADROOM = 0.85


def score_map_bytes(model: nn.Module, length: int, batch: int, itemsize: int, training: bool) -> int:
    """Bytes of the L x L score maps (L = ``length``, prefix included) held at once by the mixers of ``model`` that
    materialize them (0 if none)."""
    mixers = [m for m in model.modules() if getattr(m, "materializes_scores", False)]
    if not mixers:
        return 0
    one = batch * max(int(m.num_heads) for m in mixers) * length**2 * itemsize
    return one * (2 * len(mixers) if training else 2)


def available_bytes(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """The kernel's estimate of memory available without swapping (``MemAvailable``), or None where unknown."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def why_it_does_not_fit(needed: int, available: int | None) -> str:
    """'' if ``needed`` bytes fit in the headroom of ``available``; else the reason, for the table."""
    if available is None or needed <= HEADROOM * available:
        return ""
    return (f"did not fit: its L x L score maps alone need {needed / GiB:.1f} GiB, "
            f"{available / GiB:.1f} GiB available")
