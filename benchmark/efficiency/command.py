"""``ticl efficiency``: options -> registry-checked cases -> measurements -> CSV, Markdown, figures.

The Markdown table goes to stdout, progress and notes to stderr, the files into ``--out``.
"""
from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from audio_ticl.benchmark.efficiency import choices, plots, report
from audio_ticl.benchmark.efficiency.cases import CaseSpec, Setup
from audio_ticl.benchmark.efficiency.geometry import Geometry, geometries
from audio_ticl.benchmark.efficiency.machine import busy_note, device_name
from audio_ticl.benchmark.efficiency.measure import measure
from audio_ticl.benchmark.efficiency.options import DEFAULT_FRAMES
from audio_ticl.benchmark.errors import OptionError


@dataclass
class Plan:
    """Everything one run measures, checked."""

    geometries: list[Geometry]
    specs: list[CaseSpec]
    setup: Setup
    repeats: int = 5
    warmup: int = 1
    threads: int = 1


def plan(args: argparse.Namespace, model_kwargs: dict[str, Any] | None = None) -> Plan:
    """Check the options against the registries and the device; ``model_kwargs`` override every size."""
    model_kwargs = dict(model_kwargs or {})
    mixers = choices.resolve("--mixers", args.mixers, choices.mixers(), choices.mixers())
    pets = choices.resolve("--pet", args.pet, choices.pets(), [choices.NO_PET])
    sizes = choices.sizes(model_kwargs)
    chosen = choices.resolve("--sizes", args.sizes, list(sizes), ["base"], prefix="ast_")
    methods = [p for p in pets if p != choices.NO_PET]
    if args.scope == "op" and methods:
        raise OptionError(f"--pet {','.join(methods)}: --scope op times the attention op alone, which has no PET "
                          "modules; use --scope encoder")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise OptionError("--device cuda: torch sees no CUDA device here")
    frames = None if args.tokens is not None else (args.frames or DEFAULT_FRAMES)
    setup = Setup(args.scope, args.batch, args.train, args.device, args.dtype, model_kwargs)
    specs = [CaseSpec(s, sizes[s], m, p) for s, m, p in itertools.product(chosen, mixers, pets)]
    return Plan(geometries(frames, args.tokens, args.strides), specs, setup, args.repeats, args.warmup, args.threads)


def default_out() -> Path:
    from audio_ticl.benchmark.cli import RUNS_DIR

    return RUNS_DIR / f"efficiency-{time.strftime('%Y%m%d-%H%M%S')}"


def execute(p: Plan, out: Path) -> tuple[str, list[Path]]:
    """Measure the plan, write its files into ``out``; returns the Markdown and the paths written."""
    torch.set_num_threads(p.threads)
    busy = busy_note(p.threads, "compare with --threads 1") if p.setup.device == "cpu" else ""
    if busy:
        print(busy, file=sys.stderr)
    rows = measure(p.geometries, p.specs, p.setup, p.repeats, p.warmup)
    df = report.frame(rows)
    paths = [report.write_table(df, out)]
    text = report.markdown(df, device_name(p.setup.torch_device), p.repeats, p.warmup, busy)
    paths.append(report.write_markdown(text, out))
    return text, paths + plots.plot(df, out)


def run_command(args: argparse.Namespace, model_kwargs: dict[str, Any] | None = None) -> int:
    p = plan(args, model_kwargs)
    out = args.out if args.out is not None else default_out()
    text, paths = execute(p, out)
    print(text, end="")
    for path in paths:
        print(f"wrote {path}", file=sys.stderr)
    return 0


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The options alone, as ``ticl efficiency`` parses them (for tests and scripts)."""
    from audio_ticl.benchmark.efficiency.options import add_arguments

    parser = argparse.ArgumentParser(prog="ticl efficiency")
    add_arguments(parser)
    return parser.parse_args(list(argv))
