"""Run a sweep's cells on Ray: each cell one Ray task that runs the cell's ``ticl run`` as a child process.

Why a process per cell: each cell gets a fresh interpreter (no state, thread setting or CUDA context shared between
cells), its own log (``OUT/<cell-id>/cell.log``) and its own exit status; a cell that fails does not touch the
others. Ray supplies the scheduling by resources (``resources.cpus`` / ``gpus`` per cell), the cluster and the
retries of a cell whose worker died (``retries``); a cell whose ``ticl run`` fails is reported, not retried. A cell
that runs again (a retry, or ``--resume``) continues its run folder with ``ticl run --resume``, after its last
finished task.

Ray is optional (``pip install 'audio-ticl[sweep]'``): it is imported here only, and only when a sweep runs. The
task function and the tracker are plain module-level objects so that Ray's workers import them by name.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shlex
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import TICLError
from .plan import Cell
from .schema import Sweep

__all__ = ["INSTALL_HINT", "LOG", "CellResult", "import_ray", "run_cell", "run_sweep", "finished"]

log = logging.getLogger("ticl")

INSTALL_HINT = "pip install 'audio-ticl[sweep]'"
#: each cell's log, in its run folder
LOG = "cell.log"
#: how long the driver waits for a cell before it looks at the counts again
POLL_S = 2.0


def import_ray():
    """Ray, or a TICLError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise TICLError(f"ticl sweep run needs Ray, which is not installed here: {INSTALL_HINT} "
                        "(or pip install 'ray[default]>=2.9'); ticl sweep plan works without it") from None
    return ray


def finished(folder: Path, methods: tuple[str, ...], kind: str = "run") -> bool:
    """Whether a cell's run folder holds the summary of every method it runs (the runner writes it last), or, for a
    search cell, every method's search record (written once its last trial is done)."""
    marker = "tuning/{}/search.json" if kind == "search" else "{}/summary.json"
    return bool(methods) and all((Path(folder) / marker.format(m)).is_file() for m in methods)


class CellTracker:
    """Which cells have started on a worker (a Ray actor that holds no CPU): the driver's only way to tell running
    cells from queued ones, which Ray does not say of a task."""

    def __init__(self) -> None:
        self._started: set[str] = set()

    def started(self, cell_id: str) -> None:
        self._started.add(cell_id)

    def snapshot(self) -> set[str]:
        return set(self._started)


def run_cell(cell_id: str, args: list[str], out: str, threads: int, gpus: float, cwd: str,
             tracker: Any = None) -> dict:
    """The Ray task of one cell: ``ticl run ARGS --out OUT`` in a child process that dies with this worker, its
    output appended to ``OUT/cell.log``; ``--resume`` when the folder holds a run already (a retry, or a rerun).

    The child uses what Ray reserved: ``threads`` torch threads, and the GPUs Ray assigned (``CUDA_VISIBLE_DEVICES``,
    set by Ray for a task with GPUs); a cell without GPUs sees none, since Ray leaves that variable alone then."""
    if tracker is not None:
        tracker.started.remote(cell_id)
    folder = Path(out)
    resume = (folder / "config.yaml").is_file()
    folder.mkdir(parents=True, exist_ok=True)
    argv = [*args, "--out", str(folder), "--no-progress", *(["--resume"] if resume else [])]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if not gpus:
        env["CUDA_VISIBLE_DEVICES"] = ""
    with open(folder / LOG, "a") as stream:
        stream.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} on {socket.gethostname()}: ticl {shlex.join(argv)}\n")
        stream.flush()
        done = subprocess.run(
            [sys.executable, "-m", "audio_ticl.benchmark.sweep.cell", str(os.getpid()), *argv],
            stdout=stream, stderr=subprocess.STDOUT, env=env, cwd=cwd if Path(cwd).is_dir() else None,
        )
    return {"returncode": done.returncode, "resumed": resume, "host": socket.gethostname()}


@dataclass(frozen=True)
class CellResult:
    id: str
    #: ``done``, ``skipped`` (finished before) or ``failed``
    status: str
    log: Path
    #: the exit status of the cell's ``ticl run`` (None when no status came back: its worker died)
    returncode: int | None = None
    #: why it failed: the run's ``ticl: error:`` line, or Ray's error
    reason: str = ""

    def describe(self) -> str:
        status = f"exit status {self.returncode}" if self.returncode is not None else "no exit status"
        reason = f": {self.reason}" if self.reason else ""
        return f"{self.id} ({status}, log {self.log}){reason}"


def _error_line(path: Path) -> str:
    """The last ``ticl: error:`` line of a cell's log ('' if there is none)."""
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return next((line.strip() for line in reversed(lines) if line.startswith("ticl: error:")), "")


def _connect(ray, address: str | None, num_cpus: int | None) -> bool:
    """Join a cluster (``--address``, else ``RAY_ADDRESS``) or start a local Ray; True if this call started or
    joined it (and so shuts it down at the end). A Ray that the caller initialised already is used as it is."""
    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS") or None
    if address:
        log.info("sweep: joining the Ray cluster at %s", address)
        ray.init(address=address)
    else:
        cpus = num_cpus or os.cpu_count() or 1
        log.info("sweep: starting a local Ray with %d CPUs", cpus)
        ray.init(address="local", num_cpus=cpus, include_dashboard=False)
    return True


class _Progress:
    """Counts of done / running / failed / queued cells: a log line whenever they change, and a tqdm bar on a
    terminal."""

    def __init__(self, total: int, done: int, bar: bool) -> None:
        self.total, self.done, self.failed = total, done, 0
        self.last: tuple | None = None
        self.bar = None
        if bar:
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=done, desc="sweep", unit="cell", dynamic_ncols=True)

    def show(self, running: int, queued: int) -> None:
        counts = (self.done, running, self.failed, queued)
        if counts == self.last:
            return
        self.last = counts
        log.info("sweep: %d/%d done, %d running, %d failed, %d queued", self.done, self.total, running, self.failed,
                 queued)
        if self.bar is not None:
            self.bar.n = self.done + self.failed
            self.bar.set_postfix(running=running, failed=self.failed, queued=queued)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _outcome(ray, ref, cell: Cell, out: Path) -> CellResult:
    path = cell.out(out) / LOG
    try:
        result = ray.get(ref)
    except ray.exceptions.RayError as exc:  # the worker died more often than ``retries`` allows, or was cancelled
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return CellResult(cell.id, "failed", path, None, f"{type(exc).__name__}: {first}")
    code = int(result["returncode"])
    if code == 0:
        return CellResult(cell.id, "done", path, 0)
    return CellResult(cell.id, "failed", path, code, _error_line(path))


def run_sweep(
    sweep: Sweep,
    cells: tuple[Cell, ...],
    methods: dict[str, tuple[str, ...]],
    out: Path,
    address: str | None = None,
    num_cpus: int | None = None,
    max_concurrent: int | None = None,
    resume: bool = False,
    progress: bool = False,
) -> list[CellResult]:
    """Run every cell (cells whose folder is finished are skipped under ``resume``) and return each one's result,
    in the cells' order. At most ``max_concurrent`` cells are handed to Ray at once (None: as many as it takes)."""
    ray = import_ray()
    out = Path(out).resolve()
    results: dict[str, CellResult] = {}
    todo = []
    for cell in cells:
        if resume and finished(cell.out(out), methods[cell.id], cell.kind):
            results[cell.id] = CellResult(cell.id, "skipped", cell.out(out) / LOG)
        else:
            todo.append(cell)
    if results:
        log.info("sweep: %d of %d cells finished before, skipped", len(results), len(cells))
    if not todo:
        return [results[c.id] for c in cells]
    started_here = _connect(ray, address, num_cpus)
    shown = _Progress(len(cells), len(results), progress)
    try:
        with contextlib.ExitStack() as stack:
            if progress:  # log lines above the bar, not through it
                from tqdm.contrib.logging import logging_redirect_tqdm

                stack.enter_context(logging_redirect_tqdm())
            _drive(ray, sweep, todo, out, results, shown, max_concurrent)
    finally:
        shown.close()
        if started_here:
            ray.shutdown()
    return [results[c.id] for c in cells]


def _drive(ray, sweep: Sweep, todo: list[Cell], out: Path, results: dict[str, CellResult], shown: _Progress,
           max_concurrent: int | None) -> None:
    """Hand cells to Ray (at most ``max_concurrent`` at once, each once the cells it comes after are done), collect
    their results into ``results`` and show the counts; on the way out (an interrupt included) stop the cells still
    going. A cell whose search cell failed is failed too, without running."""
    task = ray.remote(run_cell)
    resources = sweep.resources
    threads = max(1, int(resources.cpus))  # the cell's torch threads: what Ray reserved for it
    tracker = ray.remote(num_cpus=0)(CellTracker).remote()
    inflight: dict[Any, Cell] = {}
    try:
        while todo or inflight:
            for cell in list(todo):
                failed = next((a for a in cell.after if a in results and results[a].status == "failed"), None)
                if failed is None:
                    continue
                todo.remove(cell)
                results[cell.id] = CellResult(cell.id, "failed", cell.out(out) / LOG, None,
                                              f"not run: cell {failed}, whose search it applies, failed")
                shown.failed += 1
                log.warning("cell failed: %s", results[cell.id].describe())
            ready_cells = [c for c in todo if all(a in results for a in c.after)]
            while ready_cells and (max_concurrent is None or len(inflight) < max_concurrent):
                cell = ready_cells.pop(0)
                todo.remove(cell)
                ref = task.options(num_cpus=resources.cpus, num_gpus=resources.gpus, max_retries=sweep.retries,
                                   retry_exceptions=False, name=f"ticl-sweep:{cell.id}").remote(
                    cell.id, cell.run_args(out), str(cell.out(out)), threads, resources.gpus, os.getcwd(), tracker)
                inflight[ref] = cell
            if not inflight:
                if todo:  # nothing runs, nothing failed, yet cells wait: on cells that are not in the sweep
                    raise TICLError(f"sweep: cells {', '.join(c.id for c in todo)} wait on cells that are not in "
                                    "the sweep")
                break
            ready, _ = ray.wait(list(inflight), num_returns=1, timeout=POLL_S)
            for ref in ready:
                cell = inflight.pop(ref)
                result = results[cell.id] = _outcome(ray, ref, cell, out)
                if result.status == "done":
                    shown.done += 1
                    log.info("cell %s: done", cell.id)
                else:
                    shown.failed += 1
                    log.warning("cell failed: %s", result.describe())
            started = ray.get(tracker.snapshot.remote()) if inflight else set()
            running = sum(1 for c in inflight.values() if c.id in started)
            shown.show(running, len(todo) + len(inflight) - running)
    finally:
        for ref in inflight:  # interrupted: stop the cells still going (their runs die with their workers)
            ray.cancel(ref, force=True)


def report(results: list[CellResult], out: Path) -> str:
    """The closing summary: counts, then each failed cell with its exit status and log."""
    counts = {s: sum(1 for r in results if r.status == s) for s in ("done", "skipped", "failed")}
    lines = [f"sweep {out}: {len(results)} cells: {counts['done']} done, {counts['skipped']} skipped (finished "
             f"before), {counts['failed']} failed"]
    lines += [f"  failed: {r.describe()}" for r in results if r.status == "failed"]
    if counts["failed"] < len(results):
        lines.append(f"table: ticl table {shlex.quote(str(out))}")
    return "\n".join(lines)
