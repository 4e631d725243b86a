"""``ticl sweep plan`` / ``ticl sweep run``: the command line of :mod:`audio_ticl.benchmark.sweep`.

Both check every cell's config first (seconds), so a bad key in one cell of a large grid fails before any cell runs.
``plan`` needs no Ray; ``run`` imports it only once the plan is valid.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import TICLError

__all__ = ["SWEEPS_DIR", "add_arguments", "default_out", "run_command"]

SWEEPS_DIR = Path("results") / "sweeps"


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got '{text}'")
    return value


def default_out(file: Path) -> Path:
    """A sweep's folder when ``--out`` is not given: one per sweep file, so ``--resume`` finds it again."""
    return SWEEPS_DIR / Path(file).stem


def add_arguments(sub) -> None:
    p = sub.add_parser(
        "sweep", help="grids of presets x data roots x methods x seeds x --set values, one ticl run per cell (Ray)",
        description="A sweep file names a base preset or config and axes; every combination of axis values (a "
        "cell) is one `ticl run` into OUT/<cell-id>/. `plan` lists the cells and checks every cell's config; `run` "
        "runs them on Ray (a local Ray by default, or a cluster).",
    )
    action = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    plan = action.add_parser("plan", help="list every cell (id and ticl run command) and check every cell's config")
    plan.add_argument("file", type=Path, metavar="FILE", help="the sweep file (YAML)")
    plan.add_argument("--out", type=Path, metavar="DIR", help="the sweep's folder, as the commands show it (default: "
                      f"{SWEEPS_DIR}/<file name>)")
    run = action.add_parser(
        "run", help="check every cell, then run them on Ray (pip install 'audio-ticl[sweep]')",
        description="Check every cell's config, then run each cell as one `ticl run` in a Ray task, OUT/<cell-id>/ "
        "holding its run folder and cell.log. A failed cell is reported and the others go on; the exit status is 2 "
        "if any cell failed. --resume skips finished cells and continues the others after their last finished task.",
    )
    run.add_argument("file", type=Path, metavar="FILE", help="the sweep file (YAML)")
    run.add_argument("--out", type=Path, metavar="DIR", help=f"the sweep's folder (default: {SWEEPS_DIR}/<file name>)")
    run.add_argument("--address", metavar="ADDR", help="join this Ray cluster (e.g. auto, or HEAD:6379); default: "
                     "$RAY_ADDRESS, else a local Ray on this machine")
    run.add_argument("--num-cpus", type=_positive, metavar="N",
                     help="CPUs of the local Ray (default: this machine's); ignored when joining a cluster")
    run.add_argument("--max-concurrent", type=_positive, metavar="N",
                     help="run at most N cells at once (default: as many as the resources allow)")
    run.add_argument("--resume", action="store_true",
                     help="continue the sweep in --out: finished cells are skipped, the others resume their runs")
    run.add_argument("--no-progress", action="store_true",
                     help="no progress bar (also off when stderr is not a terminal): log lines only")


def run_command(args: argparse.Namespace, progress: bool) -> int:
    from ..results import check_output_dir
    from .plan import describe, grid, validate
    from .record import prepare_folder, record
    from .schema import load_sweep

    sweep = load_sweep(args.file)
    cells = grid(sweep)
    out = Path(args.out) if args.out is not None else default_out(args.file)
    if not cells.cells:
        raise TICLError(f"sweep {args.file}: every cell is excluded; nothing to run")
    checked = validate(sweep, cells.cells)
    if args.action == "plan":
        print(describe(cells, out))
        print(f"every cell's config is valid ({checked.builds} distinct configs built); run them with: "
              f"ticl sweep run {args.file}" + (f" --out {args.out}" if args.out is not None else ""))
        return 0
    from .run import import_ray, report, run_sweep

    import_ray()  # before anything is written: say how to install it
    check_output_dir(out)
    prepare_folder(out, record(sweep, cells.cells, out.resolve()), args.resume)
    results = run_sweep(sweep, cells.cells, checked.methods, out, address=args.address, num_cpus=args.num_cpus,
                        max_concurrent=args.max_concurrent, resume=args.resume, progress=progress)
    print(report(results, out))
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise TICLError(f"{len(failed)} of {len(results)} cells failed: " + "; ".join(r.describe() for r in failed)
                        + f"; fix them and rerun with --resume --out {out} (finished cells are skipped)")
    return 0
