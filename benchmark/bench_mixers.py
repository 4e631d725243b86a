"""Speed of the token mixers: global self-attention (GSA, fused SDPA) against Frequency-Time Attention (FTA).

Times, side by side with interleaved repeats and median times, (a) the attention op alone on (B, H, P+N, hd)
tensors and (b) one whole ViT-B block (D = 768, 12 heads, MLP 4x) forward, at AST token counts (12 x T' grids:
588 = 12 x 49 for ESC-50's 5 s clips, 1212 = 12 x 101 for AudioSet's 10 s clips). ``--backward`` adds
forward + backward rows (what training pays).

    python -m audio_ticl.benchmark.bench_mixers [--tokens 588 1212] [--repeats 7] [--threads 2] [--backward]
"""
from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from audio_ticl.benchmark.efficiency.machine import busy_note
from audio_ticl.benchmark.efficiency.timing import time_interleaved
from audio_ticl.models.ast import Block
from audio_ticl.models.attention import frequency_time_attention, global_attention

N_FREQ = 12  # F' for 128 mel bins, 16x16 patches, frequency stride 10


@dataclass
class Row:
    tokens: int
    grid: tuple[int, int]
    case: str
    gsa_ms: float
    fta_ms: float

    @property
    def ratio(self) -> float:
        return self.gsa_ms / self.fta_ms


def _clock(kind: str) -> Callable[[], float]:
    return time.perf_counter if kind == "wall" else time.process_time


def _attention_cases(batch: int, heads: int, head_dim: int, grid: tuple[int, int], prefix: int, backward: bool,
                     device: torch.device):
    length = prefix + grid[0] * grid[1]
    q, k, v = (torch.randn(batch, heads, length, head_dim, device=device) for _ in range(3))
    fwd = {
        "gsa": lambda: global_attention(q, k, v),
        "fta": lambda: frequency_time_attention(q, k, v, grid, prefix),
    }
    cases = [("attention fwd", fwd, torch.no_grad)]
    if backward:
        qg, kg, vg = (t.clone().requires_grad_(True) for t in (q, k, v))
        grad = torch.randn_like(q)

        def fwd_bwd(fn: Callable[[], torch.Tensor]) -> Callable[[], None]:
            return lambda: torch.autograd.backward(fn(), grad)

        both = {
            "gsa": fwd_bwd(lambda: global_attention(qg, kg, vg)),
            "fta": fwd_bwd(lambda: frequency_time_attention(qg, kg, vg, grid, prefix)),
        }
        cases.append(("attention fwd+bwd", both, torch.enable_grad))
    return cases


def _block_cases(batch: int, dim: int, heads: int, grid: tuple[int, int], prefix: int, backward: bool,
                 device: torch.device):
    length = prefix + grid[0] * grid[1]
    gsa = Block(dim, heads, mixer="gsa").eval().to(device)
    fta = Block(dim, heads, mixer="fta").eval().to(device)
    fta.load_state_dict(gsa.state_dict())  # same weights: only the mixing pattern differs
    x = torch.randn(batch, length, dim, device=device)
    fwd = {
        "gsa": lambda: gsa(x, grid, prefix),
        "fta": lambda: fta(x, grid, prefix),
    }
    cases = [(f"block D={dim} fwd", fwd, torch.no_grad)]
    if backward:
        xg = x.clone().requires_grad_(True)
        both = {
            "gsa": lambda: gsa(xg, grid, prefix).sum().backward(),
            "fta": lambda: fta(xg, grid, prefix).sum().backward(),
        }
        cases.append((f"block D={dim} fwd+bwd", both, torch.enable_grad))
    return cases


def run(
    tokens: Sequence[int],
    repeats: int = 7,
    warmup: int = 2,
    batch: int = 2,
    heads: int = 12,
    head_dim: int = 64,
    prefix: int = 1,
    backward: bool = False,
    clock: str = "wall",
    cases: Sequence[str] = ("attention", "block"),
    device: str = "cpu",
) -> list[Row]:
    """Time every case at every token count; returns the rows of the table."""
    tick = _clock(clock)
    dev = torch.device(device)
    rows = []
    for n in tokens:
        if n % N_FREQ:
            raise ValueError(f"--tokens {n}: must be a multiple of {N_FREQ} (a 12 x T' AST grid)")
        grid = (N_FREQ, n // N_FREQ)
        todo = []
        if "attention" in cases:
            todo += _attention_cases(batch, heads, head_dim, grid, prefix, backward, dev)
        if "block" in cases:
            todo += _block_cases(batch, heads * head_dim, heads, grid, prefix, backward, dev)
        for name, fns, mode in todo:
            with mode():
                ms = time_interleaved(fns, repeats, warmup, tick)
            rows.append(Row(n, grid, name, ms["gsa"], ms["fta"]))
    return rows


def format_table(rows: Sequence[Row]) -> str:
    header = f"{'tokens':>6}  {'grid':>6}  {'case':<22} {'gsa ms':>9} {'fta ms':>9} {'gsa/fta':>8}"
    lines = [header, "-" * len(header)]
    for r in rows:
        grid = f"{r.grid[0]}x{r.grid[1]}"
        lines.append(
            f"{r.tokens:>6}  {grid:>6}  {r.case:<22} {r.gsa_ms:>9.2f} {r.fta_ms:>9.2f} {r.ratio:>7.2f}x"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m audio_ticl.benchmark.bench_mixers",
        description="Time GSA against FTA: the attention op alone and one ViT-B block, interleaved, median.",
    )
    p.add_argument("--tokens", type=int, nargs="+", default=[588, 1212],
                   help="patch-token counts, multiples of 12 (12 x T' grids); default 588 1212")
    p.add_argument("--repeats", type=int, default=7, help="timed repeats per mixer and case (median reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per mixer and case first")
    p.add_argument("--batch", type=int, default=2, help="batch size B (default 2)")
    p.add_argument("--heads", type=int, default=12, help="attention heads (default 12, ViT-B)")
    p.add_argument("--head-dim", type=int, default=64, help="dimension per head (default 64, ViT-B)")
    p.add_argument("--prefix", type=int, default=1, help="prefix tokens (1 = CLS, 2 = CLS + distillation)")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                   help="torch.set_num_threads (default: all CPU cores)")
    p.add_argument("--backward", action="store_true", help="also time forward + backward")
    p.add_argument("--cases", nargs="+", choices=("attention", "block"), default=["attention", "block"],
                   help="what to time: the attention op alone, one ViT-B block, or both (default)")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda (FTA then uses its portable path)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall: elapsed time; cpu: process CPU time (steadier on a busy machine)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    bad = [n for n in args.tokens if n <= 0 or n % N_FREQ]
    if bad:
        parser.error(f"--tokens {bad}: each must be a positive multiple of {N_FREQ} (a 12 x T' AST grid)")
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, fp32, B={args.batch}, "
        f"{args.heads} heads x {args.head_dim}, {args.prefix} prefix token(s), median of {args.repeats} "
        f"interleaved repeats ({args.clock} clock), device {args.device}"
    )
    busy = busy_note(args.threads)
    if busy:
        print(busy)
    rows = run(args.tokens, args.repeats, args.warmup, args.batch, args.heads, args.head_dim, args.prefix,
               args.backward, args.clock, args.cases, args.device)
    print(format_table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
