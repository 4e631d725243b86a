"""The options of ``ticl efficiency``. Plain argparse, no torch or model import, so that building the ``ticl``
parser stays cheap; the names are checked against the registries when the command runs (``command``)."""
from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path


def _names(option: str) -> Callable[[str], list[str]]:
    def parse(text: str) -> list[str]:
        names = [part.strip() for part in text.split(",") if part.strip()]
        if not names:
            raise argparse.ArgumentTypeError(f"{option} expects comma-separated names, got '{text}'")
        return names

    return parse


def _positive_ints(option: str) -> Callable[[str], list[int]]:
    def parse(text: str) -> list[int]:
        try:
            values = [int(part) for part in text.split(",") if part.strip()]
        except ValueError:
            values = []
        if not values or min(values) < 1:
            raise argparse.ArgumentTypeError(f"{option} expects comma-separated positive integers, got '{text}'")
        return list(dict.fromkeys(values))

    return parse


def _int_at_least(option: str, low: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            what = "a positive integer" if low == 1 else f"an integer >= {low}"
            raise argparse.ArgumentTypeError(f"{option} expects {what}, got '{text}'")
        return value

    return parse


DEFAULT_FRAMES = [128, 512, 1024]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--mixers", type=_names("--mixers"), metavar="M,M,...",
                   help="token mixers (registered names, '-' reads as '_'); default: every registered mixer "
                        "(--scope op: every attention mixer). The first is the reference of the ratio columns; "
                        "mamba measures the SSAMBA model of each size")
    p.add_argument("--pet", type=_names("--pet"), metavar="P,P,...",
                   help="PET methods (registered names) or none (the plain backbone: full fine-tuning when "
                        "training); default: none")
    p.add_argument("--sizes", type=_names("--sizes"), metavar="S,S,...",
                   help="model sizes: tiny, small, base (registered ast_<size>); default: base")
    p.add_argument("--preset", metavar="NAME",
                   help="measure a preset's backbone instead of --sizes (e.g. esc50-cpu: 96-d, 4 blocks), at its "
                        "input length, patch stride and batch size unless --frames/--tokens, --strides, --batch say "
                        "otherwise")
    length = p.add_mutually_exclusive_group()
    length.add_argument("--frames", type=_positive_ints("--frames"), metavar="F,F,...",
                        help=f"input lengths in fbank frames; default: {','.join(map(str, DEFAULT_FRAMES))}")
    length.add_argument("--tokens", type=_positive_ints("--tokens"), metavar="N,N,...",
                        help="patch-token counts instead of frames: each becomes the shortest input whose grid has "
                             "exactly N patches at every stride (an error if none has)")
    p.add_argument("--strides", type=_positive_ints("--strides"), metavar="S,S,...",
                   help="patch stride in frequency and time (10: AST's overlapping patches, 16: none); default: 10")
    p.add_argument("--scope", choices=("op", "encoder"), default="encoder",
                   help="op: the mixer's attention op alone on B x heads x (tokens + 1) x head_dim tensors; "
                        "encoder: the whole backbone's forward_features (default)")
    p.add_argument("--batch", type=_int_at_least("--batch", 1),
                   help="batch size (default 2, or the preset's)")
    p.add_argument("--train", action="store_true",
                   help="also time one train step: forward, backward and an Adam step over what trains")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="cpu (default) or cuda")
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="fp32 (default) or bf16")
    p.add_argument("--threads", type=_int_at_least("--threads", 1), default=os.cpu_count() or 1,
                   help="torch.set_num_threads (default: all CPU cores)")
    p.add_argument("--repeats", type=_int_at_least("--repeats", 1), default=5,
                   help="timed repeats per case, interleaved (default 5; median and IQR reported)")
    p.add_argument("--warmup", type=_int_at_least("--warmup", 0), default=1,
                   help="untimed rounds over every case first (default 1)")
    p.add_argument("--profile", action="store_true",
                   help="also write where each case's time goes: torch.profiler's ops by self time for one forward "
                        "(and one train step), after the timings, into DIR/profiles/")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="output folder (default: results/runs/efficiency-<time>)")
    p.add_argument("--combine", type=lambda text: [Path(part) for part in text.split(",") if part.strip()],
                   metavar="CSV,CSV,...",
                   help="measure nothing: make one table and one pair of figures in --out from these runs' "
                        "efficiency.csv files (which must agree on device, dtype, threads, scope and batch)")
