"""Continual-learning metrics from an accuracy matrix, and compute figures from counters.

Avalanche logs accuracy and its own forgetting per experience (``metrics.csv``); the headline numbers use the
standard definitions (Chaudhry et al. 2018, "Riemannian Walk"; Lopez-Paz & Ranzato 2017, GEM), computed here
from the full matrix R[i][j] (accuracy on task j after training task i), because Avalanche's forgetting is
"accuracy after first training minus now", not the max over history.
"""
from __future__ import annotations

import contextlib
import resource
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from audio_ticl.models.cpu_flash import flash_forward_op
from audio_ticl.models.fta_kernel import fta_kernel
from audio_ticl.models.scan_kernel import scan_kernel


def _matrix(R) -> np.ndarray:
    R = np.asarray(R, dtype=float)
    if R.ndim != 2 or R.shape[0] != R.shape[1] or R.shape[0] == 0:
        raise ValueError(f"accuracy matrix must be square and non-empty, got shape {R.shape}")
    return R


def average_accuracy(R) -> float:
    """mean_j R[T-1][j]: accuracy over all tasks after the last one."""
    R = _matrix(R)
    return float(R[-1].mean())


def average_accuracy_curve(R) -> list[float]:
    """After each task i, the mean accuracy over the tasks seen so far (mean_{j<=i} R[i][j])."""
    R = _matrix(R)
    return [float(R[i, : i + 1].mean()) for i in range(R.shape[0])]


def forgetting_per_task(R) -> list[float]:
    """max_{j <= i < T-1} R[i][j] - R[T-1][j] for each j < T-1.

    The max runs from the task's own training on: entries above the diagonal are a not-yet-trained head
    (chance level), which the standard definition does not mean to include.
    """
    R = _matrix(R)
    T = R.shape[0]
    return [float(R[j : T - 1, j].max() - R[T - 1, j]) for j in range(T - 1)]


def average_forgetting(R) -> float:
    """Mean forgetting over tasks j < T-1 (0.0 for a single task)."""
    values = forgetting_per_task(R)
    return float(np.mean(values)) if values else 0.0


def plasticity(R) -> float:
    """mean_j R[j][j]: accuracy on each task right after learning it (reported beside forgetting, so that a
    method that never learns cannot pass for one that never forgets)."""
    R = _matrix(R)
    return float(np.mean(np.diag(R)))


def backward_transfer(R) -> float:
    """BWT = mean_{j < T-1} (R[T-1][j] - R[j][j]) (0.0 for a single task)."""
    R = _matrix(R)
    T = R.shape[0]
    if T < 2:
        return 0.0
    return float(np.mean([R[T - 1, j] - R[j, j] for j in range(T - 1)]))


# ---------------------------------------------------------------------------------- confidence intervals
HEADLINE_METRICS = {
    "avg_accuracy": average_accuracy,
    "avg_forgetting": average_forgetting,
    "bwt": backward_transfer,
    "plasticity": plasticity,
}


def _clip_arrays(correct: list[list[str]], T: int) -> list[np.ndarray] | None:
    """Per-clip outcomes -> one (T rows, n_j clips) bool array per task j; None if they are missing or ragged
    (then there is no interval)."""
    if len(correct) != T or any(len(row) != T for row in correct):
        return None
    arrays = []
    for j in range(T):
        column = [correct[i][j] for i in range(T)]
        n = len(column[0])
        if n == 0 or any(len(c) != n for c in column):
            return None
        arrays.append(np.frombuffer("".join(column).encode("ascii"), dtype=np.uint8).reshape(T, n) == ord("1"))
    return arrays


def _resampled_correct(rng: np.random.Generator, clips: np.ndarray, m: int) -> np.ndarray:
    """m bootstrap resamples of one task's n test clips: (m, T) counts of correct clips, per row i of R."""
    T, n = clips.shape
    idx = rng.integers(0, n, size=(m, n), dtype=np.int32)
    return np.take(clips.T.astype(np.int16), idx, axis=0).sum(axis=1, dtype=np.int32)


def _diagonal(R: np.ndarray) -> np.ndarray:
    return np.diagonal(R, axis1=-2, axis2=-1)


def _forgetting(R: np.ndarray) -> np.ndarray:
    T = R.shape[-1]
    if T < 2:
        return np.zeros(R.shape[:-2])
    since_trained = np.tril(np.ones((T - 1, T - 1), dtype=bool))  # rows j <= i < T-1 of column j
    best = np.where(since_trained, R[..., : T - 1, : T - 1], -np.inf).max(axis=-2)
    return (best - R[..., -1, : T - 1]).mean(axis=-1)


def _bwt(R: np.ndarray) -> np.ndarray:
    T = R.shape[-1]
    if T < 2:
        return np.zeros(R.shape[:-2])
    return (R[..., -1, : T - 1] - _diagonal(R)[..., : T - 1]).mean(axis=-1)


#: the metrics of ``benchmark.metrics.HEADLINE_METRICS`` on a stack of matrices (..., T, T)
VECTOR_METRICS = {
    "avg_accuracy": lambda R: R[..., -1, :].mean(axis=-1),
    "avg_forgetting": _forgetting,
    "bwt": _bwt,
    "plasticity": lambda R: _diagonal(R).mean(axis=-1),
}


def bootstrap_ci(
    seeds_correct: list[list[list[str]]],
    metrics: tuple[str, ...] = tuple(HEADLINE_METRICS),
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap of the mean over seeds: each draw resamples the seeds with replacement and, within
    each drawn seed, each task's test clips (the same clips for every row i of task j, so forgetting stays a
    within-clip quantity), and recomputes the metrics from the resampled matrix. NaN bounds when the per-clip
    outcomes are missing or do not fit a square matrix.
    """
    T = len(seeds_correct[0]) if seeds_correct else 0
    per_seed = [_clip_arrays(c, T) for c in seeds_correct]
    if T == 0 or any(a is None for a in per_seed):
        return {m: (float("nan"), float("nan")) for m in metrics}
    rng = np.random.default_rng(seed)
    S = len(per_seed)
    chosen = rng.integers(0, S, size=(n_boot, S)) if S > 1 else np.zeros((n_boot, 1), dtype=int)
    R = np.empty((n_boot, S, T, T))
    for s, tasks in enumerate(per_seed):
        b, k = np.nonzero(chosen == s)
        for j, clips in enumerate(tasks):
            n = clips.shape[1]
            step = max(1, (1 << 22) // (n * T))  # bounded memory for long test splits
            for lo in range(0, len(b), step):
                part = slice(lo, lo + step)
                R[b[part], k[part], :, j] = _resampled_correct(rng, clips, len(b[part])) / n
    alpha = (1.0 - level) / 2
    out = {}
    for m in metrics:
        draws = VECTOR_METRICS[m](R).mean(axis=1)
        out[m] = (float(np.quantile(draws, alpha)), float(np.quantile(draws, 1 - alpha)))
    return out


# ------------------------------------------------------------------------------------------------ compute
@dataclass
class ParameterCounts:
    trainable: int
    task_specific: int
    total: int


def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


#: torch's counter has formulas for the CUDA attention kernels only; on CPU, SDPA (and FTA's fused path) dispatch to
#: ``_scaled_dot_product_flash_attention_for_cpu``, which it would count as zero FLOPs. A private op: absent from
#: some torch build, it needs no formula.
EXTRA_FLOP_FORMULAS = {op: _cpu_sdpa_flop for op in [flash_forward_op()] if op is not None}


def _fta_kernel_flop(q_shape, k_shape, v_shape, out_shape_arg, n_freq, n_time, num_prefix, *args, **kwargs) -> int:
    """FTA's fused CPU kernel (patch queries only; the prefix queries are ATen ops, counted as such): a multiply-add
    per dimension for every attended (query, key) pair, twice (scores and output), as SDPA's formula counts."""
    heads_batch, _, head_dim = q_shape
    return 4 * heads_batch * n_freq * n_time * (n_freq + n_time - 1 + num_prefix) * head_dim


def _scan_kernel_flop(u_shape, delta_shape, a_shape, *args, **kwargs) -> int:
    """Mamba's fused CPU scan, counted as the kernel computes it: per state element a multiply for dt A, a
    multiply and a multiply-add for the state update and a multiply-add for the output (6), per step dt u, D u and
    the gate (4); exp and softplus are not counted, as the softmax is not counted for attention."""
    batch, channels, length = u_shape
    return batch * channels * length * (6 * a_shape[1] + 4)


def _causal_conv_kernel_flop(x_shape, w_shape, *args, **kwargs) -> int:
    """Mamba's depthwise causal conv on the CPU: a multiply-add per tap for each of the L outputs (nn.Conv1d's
    formula counts the L + K - 1 outputs of its padding, of which the layer keeps L)."""
    batch, length, channels = x_shape
    return 2 * batch * length * channels * w_shape[1]


def flop_counter() -> FlopCounterMode:
    """torch's FlopCounterMode with the formulas above: the one counting convention of every FLOP figure here.

    It also counts FTA's fused CPU kernel and Mamba's CPU scan, so it loads them first (built once per machine, see
    ``models.fta_kernel``): a counter only knows the ops registered when it is created, and the kernel would
    otherwise be built inside the count, at the first FTA call, and counted as zero.
    """
    formulas = dict(EXTRA_FLOP_FORMULAS)
    kernel = fta_kernel()
    if kernel is not None:
        formulas[kernel.ops.forward] = _fta_kernel_flop
    scan = scan_kernel()
    if scan is not None:
        formulas[scan.ops.forward] = _scan_kernel_flop
        formulas[scan.ops.conv_forward] = _causal_conv_kernel_flop
    return FlopCounterMode(display=False, custom_mapping=formulas)


@contextlib.contextmanager
def frozen(*modules: torch.nn.Module) -> Iterator[None]:
    """The modules' parameters temporarily not requiring grad. FlopCounterMode's module tracker hooks every module
    output that requires grad and fails ("Expected gradient function to be set") on one without a grad_fn, which a
    module returning its own parameter produces under no_grad (BitFit's bias offsets); frozen, there is none."""
    params = [p for m in modules for p in m.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def forward_flops(call: Callable[[], object], *modules: torch.nn.Module) -> int:
    """FLOPs of ``call()``, a forward through ``modules``, by the one counting convention (``flop_counter``)."""
    with torch.no_grad(), frozen(*modules), flop_counter() as counter:
        call()
    return int(counter.get_total_flops())


def count_flops(model: torch.nn.Module, x: torch.Tensor, task_labels: torch.Tensor) -> int:
    """FLOPs of one forward pass, counted by torch's FlopCounterMode (a multiply-add counts as 2)."""
    was_training = model.training
    model.eval()
    flops = forward_flops(lambda: model(x, task_labels), model)
    model.train(was_training)
    return flops


class PeakMemory:
    """Peak memory over one span of work (one task), read the right way for the device.

    - CUDA: the caching allocator's peak (``torch.cuda.max_memory_allocated``), reset at :meth:`start`.
    - CPU on Linux: the process's resident-set high-water mark (``VmHWM``), reset at :meth:`start` by writing 5 to
      ``/proc/self/clear_refs``. It sees every allocation torch makes on the CPU (and the interpreter's, the
      dataset's and the model's), so it is the process's peak during the task, not torch's increment.
    - elsewhere: ``ru_maxrss``, the process lifetime's peak, labelled so.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.kind = self._kind()

    def _kind(self) -> str:
        if self.device.type == "cuda":
            return "cuda_max_allocated"
        if sys.platform.startswith("linux") and _can_reset_hwm():
            return "process_peak_rss_during_task"
        return "process_lifetime_peak_rss"

    def start(self) -> None:
        if self.kind == "cuda_max_allocated":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.kind == "process_peak_rss_during_task":
            _reset_hwm()

    def peak_mb(self) -> float:
        if self.kind == "cuda_max_allocated":
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        if self.kind == "process_peak_rss_during_task":
            return _read_hwm_kb() / 1024.0
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return rss / 2**20 if sys.platform == "darwin" else rss / 1024.0


def _read_hwm_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise OSError("no VmHWM in /proc/self/status")


def _reset_hwm() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _can_reset_hwm() -> bool:
    try:
        _reset_hwm()
        _read_hwm_kb()
        return True
    except OSError:
        return False
