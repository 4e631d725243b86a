"""The measuring loop: per geometry, build every case, measure FLOPs and memory once each, then time all cases
interleaved (forward, then train steps), so that the cases of one table row group saw the same machine."""
from __future__ import annotations

import gc
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path

import torch

from audio_ticl.benchmark.efficiency.cases import Case, CaseSpec, Setup, build_case
from audio_ticl.benchmark.efficiency.fit import available_bytes, score_map_bytes, why_it_does_not_fit
from audio_ticl.benchmark.efficiency.geometry import Geometry
from audio_ticl.benchmark.efficiency.memory import peak_bytes
from audio_ticl.benchmark.efficiency.profiling import profile_table, write_profile
from audio_ticl.benchmark.efficiency.timing import Timing, interleaved_samples

MB = 2**20


@dataclass
class Row:
    """One case's numbers: the columns of ``efficiency.csv``, in order. Missing values are NaN."""

    device: str
    dtype: str
    threads: int
    scope: str
    size: str
    mixer: str
    pet: str
    frames: int
    stride: int
    grid: str
    tokens: int
    batch: int
    fwd_ms: float
    fwd_iqr_ms: float
    train_ms: float
    train_iqr_ms: float
    tokens_per_s: float
    gflops: float
    peak_mb: float
    train_peak_mb: float
    memory_method: str
    #: why the case was not measured ('' when it was): it would not have fitted in memory
    skipped: str = ""


COLUMNS = [f.name for f in fields(Row)]
NAN = float("nan")


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _label(spec: CaseSpec) -> str:
    return f"{spec.size}/{spec.mixer}/{spec.pet}"


def _memory(fn: Callable[[], object], setup: Setup) -> tuple[float, str]:
    """Peak MB of one call after one untimed call (lazy state such as Adam's moments or a kernel probe first)."""
    fn()
    peak, method = peak_bytes(fn, setup.torch_device)
    return (NAN if peak is None else peak / MB), method


def _time(cases: list[Case], pick: Callable[[Case], Callable[[], object]], training: bool, repeats: int,
          warmup: int) -> dict[str, Timing]:
    for case in cases:
        case.set_training(training)
    samples = interleaved_samples({_label(c.spec): pick(c) for c in cases}, repeats, warmup)
    return {label: Timing.of(seconds) for label, seconds in samples.items()}


def _profile(cases: list[Case], geometry: Geometry, setup: Setup, out: Path, log: Callable[[str], None]) -> None:
    """One profiler table per case and call (forward, train step) into ``out``, after the timings."""
    for case in cases:
        spec = case.spec
        calls = [("fwd", case.forward, False)]
        if case.train_step is not None:
            calls.append(("train", case.train_step, True))
        for kind, fn, training in calls:
            case.set_training(training)
            name = f"{spec.size}-{spec.mixer}-{spec.pet}-{geometry.tokens}tok-{kind}"
            title = (f"{_label(spec)} at {geometry.frames} frames, grid {geometry.grid_text} = {geometry.tokens} "
                     f"tokens, stride {geometry.stride}, batch {setup.batch}, {setup.dtype}, {setup.device}: "
                     f"one {'train step' if training else 'forward'}, ops by self time")
            path = write_profile(out, name, title, profile_table(fn, setup.torch_device))
            log(f"  profiled {path.name}")


def _skip_reason(case: Case, setup: Setup) -> str:
    """'' if the case fits in memory by ``benchmark.efficiency.fit``'s estimate, else why not."""
    itemsize = setup.torch_dtype.itemsize
    needed = max(score_map_bytes(m, case.sequence_length, setup.batch, itemsize, setup.train) for m in case.modules)
    if setup.torch_device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(setup.torch_device)
        return why_it_does_not_fit(needed, free)
    return why_it_does_not_fit(needed, available_bytes())


def _skipped_row(case: Case, setup: Setup, reason: str) -> Row:
    spec, geometry = case.spec, case.geometry
    return Row(
        device=setup.device, dtype=setup.dtype, threads=torch.get_num_threads(), scope=setup.scope,
        size=spec.size, mixer=spec.mixer, pet=spec.pet, frames=geometry.frames, stride=geometry.stride,
        grid=geometry.grid_text, tokens=geometry.tokens, batch=setup.batch, fwd_ms=NAN, fwd_iqr_ms=NAN,
        train_ms=NAN, train_iqr_ms=NAN, tokens_per_s=NAN, gflops=NAN, peak_mb=NAN, train_peak_mb=NAN,
        memory_method="", skipped=reason,
    )


def measure_geometry(geometry: Geometry, specs: Sequence[CaseSpec], setup: Setup, repeats: int, warmup: int,
                     log: Callable[[str], None] = _stderr, profile_dir: Path | None = None) -> list[Row]:
    """Every case at one geometry, side by side; with ``profile_dir``, then a profile of each. A case that would
    not fit in memory is skipped (a row with its reason), before anything of it runs."""
    built = [build_case(spec, geometry, setup) for spec in specs]
    skipped: dict[str, Row] = {}
    for case in built:
        reason = _skip_reason(case, setup)
        if reason:
            skipped[_label(case.spec)] = _skipped_row(case, setup, reason)
            log(f"  skipped {_label(case.spec)}: {reason}")
    cases = [c for c in built if _label(c.spec) not in skipped]
    if not cases:
        return [skipped[_label(c.spec)] for c in built]
    flops, memory, train_memory = {}, {}, {}
    for case in cases:
        label = _label(case.spec)
        flops[label] = case.flops()
        memory[label] = _memory(case.forward, setup)
        if case.train_step is not None:
            case.set_training(True)
            train_memory[label] = _memory(case.train_step, setup)[0]
    log(f"  timing {len(cases)} forward(s), {repeats} interleaved repeats")
    fwd = _time(cases, lambda c: c.forward, False, repeats, warmup)
    train: dict[str, Timing] = {}
    if setup.train:
        log(f"  timing {len(cases)} train step(s), {repeats} interleaved repeats")
        train = _time(cases, lambda c: c.train_step, True, repeats, warmup)  # type: ignore[arg-type,return-value]
    if profile_dir is not None:
        _profile(cases, geometry, setup, profile_dir, log)
    rows = []
    for case in built:
        spec, label = case.spec, _label(case.spec)
        if label in skipped:
            rows.append(skipped[label])
            continue
        step = train.get(label)
        rows.append(Row(
            device=setup.device, dtype=setup.dtype, threads=torch.get_num_threads(), scope=setup.scope,
            size=spec.size, mixer=spec.mixer, pet=spec.pet, frames=geometry.frames, stride=geometry.stride,
            grid=geometry.grid_text, tokens=geometry.tokens, batch=setup.batch,
            fwd_ms=fwd[label].median_ms, fwd_iqr_ms=fwd[label].iqr_ms,
            train_ms=step.median_ms if step else NAN, train_iqr_ms=step.iqr_ms if step else NAN,
            tokens_per_s=setup.batch * geometry.tokens / (fwd[label].median_ms / 1e3),
            gflops=flops[label] / 1e9, peak_mb=memory[label][0], train_peak_mb=train_memory.get(label, NAN),
            memory_method=memory[label][1],
        ))
    return rows


def measure(geometries: Sequence[Geometry], specs: Sequence[CaseSpec], setup: Setup, repeats: int = 5,
            warmup: int = 1, log: Callable[[str], None] = _stderr, profile_dir: Path | None = None) -> list[Row]:
    """Every case at every geometry; the cases of one geometry are freed before the next is built."""
    rows: list[Row] = []
    for i, geometry in enumerate(geometries, 1):
        log(f"[{i}/{len(geometries)}] {geometry.frames} frames, stride {geometry.stride}: grid {geometry.grid_text} "
            f"= {geometry.tokens} tokens, {len(specs)} case(s), scope {setup.scope}")
        rows += measure_geometry(geometry, specs, setup, repeats, warmup, log, profile_dir)
        gc.collect()
        if setup.torch_device.type == "cuda":
            torch.cuda.empty_cache()
    return rows
