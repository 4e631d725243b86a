"""The ``ticl`` command line (also ``python -m audio_ticl.benchmark``).

Errors: every :class:`~audio_ticl.models.errors.TICLError` (bad config, data, checkpoint, model or strategy input:
``ConfigError``, ``DataError``, ``CheckpointError``, ``ModelError``, ``StrategyError``) is printed as one line,
``ticl: error: ...``, with exit status 2; any other exception is a bug and keeps its traceback.

Progress: bars only when asked for and stderr is a terminal (:func:`wants_progress`); in a log file the training
loop writes one line per epoch instead, and the feature-extraction and download bars stay off.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from pathlib import Path
from typing import TextIO

from .errors import TICLError

RUNS_DIR = Path("results") / "runs"


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds expects comma-separated integers, got '{text}'") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"--seeds expects distinct integers, got '{text}'")
    return seeds


def wants_progress(args: argparse.Namespace, stream: TextIO | None = None) -> bool:
    """Progress bars: not turned off with ``--no-progress``, and ``stream`` (default stderr, where tqdm draws) is a
    terminal, so a redirected run never writes carriage-return frames into its log."""
    stream = sys.stderr if stream is None else stream
    if getattr(args, "no_progress", False):
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def _add_run(sub) -> None:
    p = sub.add_parser(
        "run",
        help="run a preset or config: every method through every task, then print the comparison table",
        description="Run a task-incremental benchmark. With no arguments: the built-in default (synthetic "
        "sounds, AI-CL with GSA and FTA against fine-tuning).",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", help="a shipped preset (see `ticl presets`); default: default")
    src.add_argument("--config", type=Path, help="a YAML config file (may say `extends: PRESET`)")
    p.add_argument("--data-root", type=Path, help="dataset root in its official layout (sets data.root)")
    p.add_argument("--out", type=Path, help=f"run folder (default: {RUNS_DIR}/<preset>-seed<N>-<time>)")
    seed = p.add_mutually_exclusive_group()
    seed.add_argument("--seed", type=int, help="seed for class order, data order and initialisation")
    seed.add_argument(
        "--seeds", type=_seed_list, metavar="N,N,...",
        help="run every method under each seed; table.md then shows mean ± std",
    )
    p.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config key, e.g. --set train.epochs=3 --set methods.finetune.train.lr=1e-4",
    )
    p.add_argument(
        "--smoke", action="store_true",
        help="the preset's smoke variant (tiny model, a few batches): checks a paper preset end to end on CPU",
    )
    p.add_argument(
        "--methods", type=lambda text: [n for n in text.split(",") if n], metavar="NAME,NAME,...",
        help="run only these methods of the preset or config (their names, in the config's order)",
    )
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run in --out after its last finished task (same config only)")
    p.add_argument("--check", action="store_true",
                   help="only build every method's model, weights, PET method and strategy once and report config "
                   "errors (seconds; no data is read, nothing is written)")
    p.add_argument("--add-methods", action="store_true",
                   help="let methods that --out does not hold yet join its run (the rest of the config must be the "
                   "same; with --resume its finished methods are kept)")
    search = p.add_mutually_exclusive_group()
    search.add_argument("--search-only", action="store_true",
                        help="run only the hyperparameter searches (on validation data) into --out/tuning and stop; "
                        "a later run with --resume, or other runs with --search-from, go on from them")
    search.add_argument("--search-from", type=Path, metavar="DIR",
                        help="do not search: apply the searches of run folder DIR (its config must be this one, "
                        "seeds aside), e.g. one made by --search-only")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars (also off when stderr is not a terminal): one log line per epoch")


def _add_presets(sub) -> None:
    sub.add_parser("presets", help="list the shipped presets")


def _add_strategies(sub) -> None:
    sub.add_parser("strategies", help="list the registered strategies")


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="micro-benchmarks (side-by-side timings, printed as ratios)")
    p.add_argument("what", choices=["mixers", "scan"],
                   help="mixers: GSA vs FTA attention and block timings; scan: Mamba's selective-scan backends")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="arguments for the benchmark (see --help of it)")


def _add_efficiency(sub) -> None:
    from .efficiency.options import add_arguments

    p = sub.add_parser(
        "efficiency", help="time, FLOPs and peak memory of mixers, sizes and PET methods against input length",
        description="Measure every (size, mixer, PET method) at every input length side by side in one process "
        "(interleaved repeats, median and IQR), with FLOPs per forward, tokens per second and peak memory; writes "
        "efficiency.csv, efficiency.md and log-log plots into --out and prints the Markdown table. Mixers and PET "
        "methods are the registered ones.",
    )
    add_arguments(p)


#: datasets `ticl datasets download` fetches (kept here so that building the parser imports no dataset code)
DOWNLOADABLE = ("esc50", "speechcommands", "urbansound8k")


def _add_datasets(sub) -> None:
    p = sub.add_parser("datasets", help="list the downloadable datasets, download one into its official layout, or "
                       "inspect your own data (folder / csv)")
    action = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    action.add_parser("list", help="names, sources, sizes and the layout each download produces")
    d = action.add_parser(
        "download", help="download, extract and verify a dataset (resumes an interrupted download)",
        description="Download a dataset's official archive into --root, extract it into the layout its source "
        "reads and check the file count. An interrupted download resumes from ROOT/<archive>.part.",
    )
    d.add_argument("name", choices=DOWNLOADABLE, help="dataset to download")
    d.add_argument("--root", type=Path, required=True, help="dataset folder to create (later: --data-root)")
    d.add_argument("--keep-archive", action="store_true", help="keep the downloaded archive after extraction")
    d.add_argument("--no-progress", action="store_true",
                   help="no progress bars (also off when stderr is not a terminal)")
    i = action.add_parser(
        "inspect", help="check your own data (source folder or csv) and print its classes, splits and problems",
        description="Read a class-per-folder tree or a csv clip list as the source of that name would, from the "
        "files' headers only, and print the classes, clips per split, clip lengths, sample rates and every problem "
        "found. Exit status 2 when there are problems (a run would refuse the data).",
    )
    i.add_argument("--source", choices=("folder", "csv"), required=True, help="the own-data source")
    i.add_argument("--root", type=Path, required=True, help="the class folder tree, or the csv (or its folder)")
    i.add_argument("--option", "-o", action="append", default=[], metavar="KEY=VALUE",
                   help="a source option as in data.options (value parsed as YAML), e.g. -o split_seed=1; repeatable")


def _add_table(sub) -> None:
    p = sub.add_parser(
        "table", help="paper-style comparison table of finished run folders (Markdown, CSV or LaTeX)",
        description="One row per method of the given run folders (single- or multi-seed, concatenated): accuracy "
        "per task after the last task, average accuracy, forgetting, BWT, trainable parameters (and % of full "
        "fine-tuning), task-specific storage, GFLOPs per sample and training time; mean ± std over seeds, the "
        "best value of each column in bold. An unfinished run folder is an error.",
    )
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                   help="a run folder of `ticl run` (or one method folder, or one of its seed<N> folders)")
    p.add_argument("--format", choices=["md", "csv", "latex"], default="md",
                   help="md (default), csv (plain numbers, reads back into pandas) or latex (booktabs table)")
    p.add_argument("--out", type=Path, metavar="FILE", help="write the table to FILE instead of printing it")


def _add_plot(sub) -> None:
    p = sub.add_parser(
        "plot", help="comparison figures of finished run folders (PNG and PDF)",
        description="curves: average accuracy after each task (±1 std band over seeds) and each task's accuracy "
        "over time; matrix: annotated accuracy matrices; pet: accuracy against trainable parameters (log x).",
    )
    p.add_argument("run_dirs", nargs="+", type=Path, metavar="RUN_DIR",
                   help="a run folder of `ticl run` (or one method folder, or one of its seed<N> folders)")
    p.add_argument("--kind", choices=["curves", "matrix", "pet", "all"], default="all",
                   help="which figure (default: all)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="folder for the figures (default: RUN_DIR/plots for one RUN_DIR)")


def _add_pretrain(sub) -> None:
    p = sub.add_parser(
        "pretrain",
        help="self-supervised pretraining of a backbone on unlabelled audio (SSAST's masked patch modelling)",
        description="Pretrain a backbone by SSAST's joint masked spectrogram patch modelling on the clips of "
        "dataset sources (their labels ignored, only the splits named) and folders of audio files. Writes "
        "OUT/ssast.pth (or amba.pth for SSAMBA) in the source project's layout: `model.init: ssast:OUT/ssast.pth` "
        "in a `ticl run` config starts from it.",
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", help="a shipped pretraining preset (benchmark/presets/pretrain/)")
    src.add_argument("--config", type=Path, help="a YAML file (may say `extends: PRESET`)")
    p.add_argument("--data-root", type=Path, help="root of the first dataset source (sets sources.0.root)")
    p.add_argument("--audio-dir", type=Path, action="append", default=[], metavar="DIR",
                   help="a folder of audio files, searched recursively (repeatable)")
    p.add_argument("--out", type=Path, help=f"output folder (default: {RUNS_DIR}/pretrain-<name>-<time>)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set epochs=20")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _add_sweep(sub) -> None:
    from .sweep.command import add_arguments

    add_arguments(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ticl", description="audio-ticl: task-incremental continual learning for audio"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run(sub)
    _add_presets(sub)
    _add_strategies(sub)
    _add_bench(sub)
    _add_efficiency(sub)
    _add_pretrain(sub)
    _add_datasets(sub)
    _add_table(sub)
    _add_plot(sub)
    _add_sweep(sub)
    return parser


def cmd_run(args) -> int:
    from .config import load_config, select_methods
    from .results import check_output_dir
    from .runner import run

    overrides = list(args.overrides)
    if args.data_root is not None:
        overrides.append(f"data.root={args.data_root}")
    if args.seed is not None:
        overrides.append(f"seed={args.seed}")
    cfg = load_config(args.preset, args.config, overrides, smoke=args.smoke)
    if args.methods:
        cfg = select_methods(cfg, args.methods)
    if args.data_root is not None and cfg.data.source == "synthetic" and cfg.scenario.kind == "class_split":
        raise TICLError(f"--data-root was given, but preset '{cfg.name}' uses the built-in synthetic data")
    if args.check:
        from .preflight import describe, preflight

        print(describe(preflight(cfg)) + f"\nconfig '{cfg.name}': {len(cfg.methods)} methods build; no data was read")
        return 0
    out = args.out
    if out is None:
        if args.resume:
            raise TICLError("--resume needs --out: the run folder to continue")
        seed_tag = f"seeds{'-'.join(map(str, args.seeds))}" if args.seeds else f"seed{cfg.seed}"
        out = RUNS_DIR / f"{cfg.name}-{seed_tag}-{time.strftime('%Y%m%d-%H%M%S')}"
    elif args.resume and not Path(out).is_dir():
        raise TICLError(f"--resume: run folder {out} does not exist; check --out, or drop --resume to start a run")
    elif not args.resume and any(any((Path(out) / m.name).rglob("summary.json")) for m in cfg.methods):
        raise TICLError(f"run folder {out} already holds finished results; choose another --out or pass --resume")
    check_output_dir(Path(out))
    if args.search_from is not None and not Path(args.search_from).is_dir():
        raise TICLError(f"--search-from: run folder {args.search_from} does not exist")
    _, table = run(cfg, Path(out), progress=wants_progress(args), resume=args.resume, seeds=args.seeds,
                   add_methods=args.add_methods, search_only=args.search_only, search_from=args.search_from)
    print(f"\n{table}\n\nrun folder: {out}")
    return 0


def cmd_presets(_args) -> int:
    from .config import list_presets

    presets = list_presets()
    width = max(len(n) for n in presets)
    for name, description in presets.items():
        print(f"{name:<{width}}  {description}")
    return 0


def cmd_strategies(_args) -> int:
    from audio_ticl.strategies import STRATEGIES

    for name, cls in sorted(STRATEGIES.items()):
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        print(f"{name:<22}{doc}")
    return 0


def cmd_bench(args) -> int:
    if args.what == "mixers":
        from .bench_mixers import main as bench_main

        return bench_main(args.rest)
    if args.what == "scan":
        from .bench_scan import main as scan_main

        return scan_main(args.rest)
    return 2


def cmd_efficiency(args) -> int:
    from .efficiency.command import run_command

    return run_command(args)


def cmd_datasets(args) -> int:
    from .datasets.download import DOWNLOADS, download_dataset

    if args.action == "inspect":
        from .datasets.inspect import inspect_data, parse_options

        report, status = inspect_data(args.source, args.root, parse_options(args.option))
        print(report)
        return status
    if args.action == "list":
        width = max(len(name) for name in DOWNLOADS)
        for name, info in DOWNLOADS.items():
            pad = " " * (width + 2)
            print(f"{name:<{width}}  {info.title}, {info.size}, {info.license}")
            print(f"{pad}url:    {info.url}")
            print(f"{pad}layout: {info.layout}")
        return 0
    info = DOWNLOADS[args.name]
    print(f"{args.name}: {info.url} ({info.size}) -> {args.root}", flush=True)
    folder = download_dataset(args.name, args.root, progress=wants_progress(args), keep_archive=args.keep_archive)
    print(f"{args.name}: ready and verified in {folder} (pass it as --data-root, or data.root in a config)")
    return 0


def cmd_table(args) -> int:
    from .report.table import build_table
    from .results import check_output_file, write_text

    if args.out is not None:
        check_output_file(args.out)
    text = build_table(args.run_dirs, args.format)
    if args.out is None:
        print(text, end="")
    else:
        write_text(args.out, text)
        print(f"table: {args.out}")
    return 0


def cmd_plot(args) -> int:
    from .report.plots import plot_runs
    from .results import check_output_dir

    out = args.out
    if out is None:
        if len(args.run_dirs) > 1:
            raise TICLError("several run folders: say where the figures go with --out DIR")
        out = args.run_dirs[0] / "plots"
    check_output_dir(Path(out))
    for path in plot_runs(args.run_dirs, out, args.kind):
        print(path)
    return 0


def cmd_sweep(args) -> int:
    from .sweep.command import run_command

    return run_command(args, progress=wants_progress(args))


def cmd_pretrain(args) -> int:
    from .pretrain.loop import pretrain
    from .pretrain.schema import load_pretrain_config
    from .results import check_output_dir

    overrides = list(args.overrides)
    if args.data_root is not None:
        overrides.append(f"sources.0.root={args.data_root}")
    cfg = load_pretrain_config(args.preset, args.config, overrides, audio_dirs=[str(d) for d in args.audio_dir])
    out = args.out
    if out is None:
        if args.resume:
            raise TICLError("--resume needs --out: the pretraining folder to continue")
        out = RUNS_DIR / f"pretrain-{cfg.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    elif args.resume and not Path(out).is_dir():
        raise TICLError(f"--resume: pretraining folder {out} does not exist; check --out, or drop --resume")
    check_output_dir(Path(out))
    summary = pretrain(cfg, Path(out), progress=wants_progress(args), resume=args.resume)
    print(json.dumps(summary, indent=2))
    print(f"\npretrained backbone: {summary['init']} (model.init for ticl run)")
    return 0


COMMANDS = {"run": cmd_run, "pretrain": cmd_pretrain, "presets": cmd_presets, "strategies": cmd_strategies,
            "bench": cmd_bench, "efficiency": cmd_efficiency, "datasets": cmd_datasets, "table": cmd_table,
            "plot": cmd_plot, "sweep": cmd_sweep}


def error_line(exc: BaseException) -> str:
    """A project error as the one line the CLI prints (its lines joined; its class name if it has no message)."""
    text = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return f"ticl: error: {text or type(exc).__name__}"


def main(argv: list[str] | None = None) -> int:
    # qpsolvers (pulled in by Avalanche for GEM) warns on import that it has no solver; no strategy here uses it
    warnings.filterwarnings("ignore", message="no QP solver found")
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S"
    )
    if args.command is None:
        args = parser.parse_args(["run", *(argv or [])])
    try:
        return COMMANDS[args.command](args)
    except TICLError as exc:  # user input (config, data, checkpoint, model, strategy): one line, no traceback
        print(error_line(exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ticl: interrupted; finished tasks are checkpointed, continue with --resume --out RUN_DIR",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (``ticl presets | head``): stop quietly, as cat does
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # Python's own flush at exit must not raise again
        return 141


if __name__ == "__main__":
    sys.exit(main())
