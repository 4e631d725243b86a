"""Speed of Mamba's selective scan on this machine: the suite's fused CPU scan against the sequential reference and
mamba.py's parallel (Blelloch) scan, side by side with interleaved repeats and median times.

mamba.py (``pip install mambapy``) is a benchmark dependency only: its row is skipped, with a note, when it is not
installed. Every backend computes the same function (no softplus, no gate: mamba.py's ``selective_scan``), and the
outputs are compared before anything is timed.

    ticl bench scan [--length 1200] [--batch 2] [--channels 384] [--state 16] [--backward] [--repeats 5]
"""
from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence

import torch
from einops import rearrange

from audio_ticl.benchmark.efficiency.machine import busy_note
from audio_ticl.benchmark.efficiency.timing import time_interleaved
from audio_ticl.models.scan_kernel import scan_kernel, scan_kernel_error
from audio_ticl.models.selective_scan import selective_scan_cpu, selective_scan_reference


def _mambapy_scan() -> Callable | None:
    """mamba.py's selective scan, computed as its ``MambaBlock.selective_scan`` does, or None if not installed."""
    try:
        from mambapy.pscan import pscan
    except ImportError:
        return None

    def scan(u, delta, a, b, c, d):  # ours: u, delta (B, E, L); b, c (B, N, L)
        x, dt = (rearrange(t, "b e l -> b l e") for t in (u, delta))
        bl, cl = (rearrange(t, "b n l -> b l n") for t in (b, c))
        delta_a = torch.exp(dt.unsqueeze(-1) * a)
        bx = dt.unsqueeze(-1) * bl.unsqueeze(2) * x.unsqueeze(-1)
        hs = pscan(delta_a, bx)
        y = (hs @ cl.unsqueeze(-1)).squeeze(3) + d * x
        return rearrange(y, "b l e -> b e l")

    return scan


def _inputs(batch: int, channels: int, length: int, state: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(batch, channels, length, generator=gen)
    delta = torch.rand(batch, channels, length, generator=gen) * 0.1 + 1e-3
    a = -torch.exp(torch.randn(channels, state, generator=gen) * 0.5)
    b, c = (torch.randn(batch, state, length, generator=gen) for _ in range(2))
    return [u, delta, a, b, c, torch.randn(channels, generator=gen)]


def cases(inputs: Sequence[torch.Tensor], backward: bool, with_reference: bool) -> dict[str, Callable[[], object]]:
    """name -> a callable that runs that backend once (forward, or forward + backward)."""
    backends: dict[str, Callable] = {}
    if scan_kernel() is not None:
        backends["cpu"] = lambda *t: selective_scan_cpu(*t)
    mambapy = _mambapy_scan()
    if mambapy is not None:
        backends["mambapy"] = mambapy
    if with_reference or "cpu" not in backends:
        backends["reference"] = lambda *t: selective_scan_reference(*t)
    out: dict[str, Callable[[], object]] = {}
    for name, fn in backends.items():
        if backward:
            leaves = [t.clone().requires_grad_(True) for t in inputs]

            def run(fn=fn, leaves=leaves) -> None:
                torch.autograd.grad(fn(*leaves).sum(), leaves)
        else:

            def run(fn=fn) -> object:
                with torch.no_grad():
                    return fn(*inputs)

        out[name] = run
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="ticl bench scan", description=__doc__.split("\n\n")[0])
    p.add_argument("--length", type=int, default=1200, help="sequence length L (default 1200)")
    p.add_argument("--batch", type=int, default=2, help="batch size (default 2)")
    p.add_argument("--channels", type=int, default=384, help="channels E = expand x D (default 384: tiny)")
    p.add_argument("--state", type=int, default=16, help="state size N (default 16)")
    p.add_argument("--backward", action="store_true", help="time forward + backward instead of forward")
    p.add_argument("--reference", action="store_true", help="also time the sequential reference (slow)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    inputs = _inputs(args.batch, args.channels, args.length, args.state)
    mambapy = _mambapy_scan()
    if mambapy is not None and scan_kernel() is not None:  # the same function, before anything is timed
        torch.testing.assert_close(selective_scan_cpu(*inputs), mambapy(*inputs), atol=1e-3, rtol=1e-3)
    fns = cases(inputs, args.backward, args.reference)
    ms = time_interleaved(fns, args.repeats, 1, time.perf_counter)
    what = "forward + backward" if args.backward else "forward"
    print(f"selective scan, {what}: B={args.batch} E={args.channels} L={args.length} N={args.state}, fp32, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, median of {args.repeats}")
    note = busy_note(args.threads, "compare with --threads 1")
    if note:
        print(note)
    for name, value in ms.items():
        against = "mambapy" in ms and name != "mambapy"
        ratio = f"  ({ms['mambapy'] / value:.1f}x faster than mambapy)" if against else ""
        print(f"  {name:<10} {value:10.2f} ms{ratio}")
    if mambapy is None:
        print("  mambapy    not installed (pip install mambapy): its row is skipped")
    if scan_kernel() is None:
        print(f"  cpu        not available here ({scan_kernel_error()}): its row is skipped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
