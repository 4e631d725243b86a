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
from audio_ticl.benchmark.results import check_output_dir


@dataclass
class Plan:
    """Everything one run measures, checked."""

    geometries: list[Geometry]
    specs: list[CaseSpec]
    setup: Setup
    repeats: int = 5
    warmup: int = 1
    threads: int = 1
    profile: bool = False


@dataclass
class PresetModel:
    """A preset's backbone and the defaults it brings: size label, registered model, its options, input length,
    patch stride and batch size."""

    name: str
    model: str
    model_kwargs: dict[str, Any]
    frames: int
    stride: int
    batch: int


def preset_model(name: str) -> PresetModel:
    """The backbone of preset ``name`` as ``ticl run`` builds it (``benchmark.upstream.backbone_kwargs``)."""
    from audio_ticl.benchmark.config import load_config
    from audio_ticl.benchmark.upstream import backbone_kwargs

    cfg = load_config(name)
    kwargs = backbone_kwargs(cfg.model)
    if kwargs.pop("fstride") != kwargs.pop("tstride") or "patch_size" in kwargs:
        raise OptionError(f"--preset {name}: its patches are not square with equal strides, which --strides needs")
    if cfg.features.target_frames is None:
        raise OptionError(f"--preset {name}: its tasks keep their own input lengths; give --frames or --tokens")
    return PresetModel(name, cfg.model.name, kwargs, cfg.features.target_frames, cfg.model.fstride,
                       cfg.train.batch_size)


def plan(args: argparse.Namespace, model_kwargs: dict[str, Any] | None = None) -> Plan:
    """Check the options against the registries and the device; ``model_kwargs`` override every size."""
    model_kwargs = dict(model_kwargs or {})
    default_mixers = choices.attention_mixers() if args.scope == "op" else choices.mixers()
    mixers = choices.resolve("--mixers", args.mixers, choices.mixers(), default_mixers)
    pets = choices.resolve("--pet", args.pet, choices.pets(), [choices.NO_PET])
    preset = getattr(args, "preset", None)
    frames, strides, batch = args.frames, args.strides or [10], args.batch or 2
    if preset is not None:
        if args.sizes is not None:
            raise OptionError("--sizes and --preset: give one (a preset names its own backbone)")
        spec = preset_model(preset)
        model_kwargs = {**spec.model_kwargs, **model_kwargs}
        sizes, chosen = {spec.name: spec.model}, [spec.name]
        frames = frames or ([spec.frames] if args.tokens is None else None)
        strides, batch = args.strides or [spec.stride], args.batch or spec.batch
    else:
        sizes = choices.sizes(model_kwargs)
        chosen = choices.resolve("--sizes", args.sizes, list(sizes), ["base"], prefix="ast_")
    methods = [p for p in pets if p != choices.NO_PET]
    if args.scope == "op" and methods:
        raise OptionError(f"--pet {','.join(methods)}: --scope op times the attention op alone, which has no PET "
                          "modules; use --scope encoder")
    no_op = [m for m in mixers if m not in choices.attention_mixers()]
    if args.scope == "op" and no_op:
        raise OptionError(f"--mixers {','.join(no_op)}: --scope op times attention ops, which these mixers do not "
                          "have; use --scope encoder")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise OptionError("--device cuda: torch sees no CUDA device here")
    frames = None if args.tokens is not None else (frames or DEFAULT_FRAMES)
    setup = Setup(args.scope, batch, args.train, args.device, args.dtype, model_kwargs)
    specs = [CaseSpec(s, choices.model_for(sizes[s], m), m, p) for s, m, p in itertools.product(chosen, mixers, pets)]
    return Plan(geometries(frames, args.tokens, strides), specs, setup, args.repeats, args.warmup, args.threads,
                getattr(args, "profile", False))


def default_out() -> Path:
    from audio_ticl.benchmark.cli import RUNS_DIR

    return RUNS_DIR / f"efficiency-{time.strftime('%Y%m%d-%H%M%S')}"


def execute(p: Plan, out: Path) -> tuple[str, list[Path]]:
    """Measure the plan, write its files into ``out``; returns the Markdown and the paths written."""
    torch.set_num_threads(p.threads)
    busy = busy_note(p.threads, "compare with --threads 1") if p.setup.device == "cpu" else ""
    if busy:
        print(busy, file=sys.stderr)
    profile_dir = Path(out) / "profiles" if p.profile else None
    rows = measure(p.geometries, p.specs, p.setup, p.repeats, p.warmup, profile_dir=profile_dir)
    df = report.frame(rows)
    paths = [report.write_table(df, out)]
    text = report.markdown(df, device_name(p.setup.torch_device), p.repeats, p.warmup, busy)
    paths.append(report.write_markdown(text, out))
    profiles = sorted(profile_dir.glob("*.txt")) if profile_dir is not None else []
    return text, paths + plots.plot(df, out) + profiles


def _part_notes(csv_path: Path) -> list[str]:
    """The "other runnable tasks" warnings of a part's efficiency.md (beside its CSV), to carry into the combined
    notes."""
    md = csv_path.with_name("efficiency.md")
    if not md.is_file():
        return []
    return [line.removeprefix("- note: ").strip() for line in md.read_text().splitlines()
            if line.startswith("- note:")]


def combine_runs(files: list[Path], out: Path) -> tuple[str, list[Path]]:
    """``--combine``: the files' rows as one table, notes and figures in ``out``; nothing is measured."""
    from audio_ticl.benchmark.efficiency.combine import combine

    df = combine(files)
    sources = list(dict.fromkeys(df.pop("source")))
    paths = [report.write_table(df, out)]
    busy = "; ".join(f"{source}: {note}" for source in sources for note in _part_notes(Path(source)))
    text = report.markdown(df, device_name(torch.device(str(df["device"].iloc[0]))), None, None, busy,
                           sources=sources)
    paths.append(report.write_markdown(text, out))
    return text, paths + plots.plot(df, out)


def run_command(args: argparse.Namespace, model_kwargs: dict[str, Any] | None = None) -> int:
    out = check_output_dir(Path(args.out if args.out is not None else default_out()))
    if getattr(args, "combine", None):
        text, paths = combine_runs(args.combine, out)
    else:
        text, paths = execute(plan(args, model_kwargs), out)
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
