"""Continual-learning metrics from an accuracy matrix, and compute figures from counters.

Avalanche logs accuracy and its own forgetting per experience (``metrics.csv``); the headline numbers use the
standard definitions of REFERENCE.md, computed here from the full matrix R[i][j] (accuracy on task j after
training task i), because Avalanche's forgetting is "accuracy after first training minus now", not the max
over history.
"""
from __future__ import annotations

import resource
import sys
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count


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


def backward_transfer(R) -> float:
    """BWT = mean_{j < T-1} (R[T-1][j] - R[j][j]) (0.0 for a single task)."""
    R = _matrix(R)
    T = R.shape[0]
    if T < 2:
        return 0.0
    return float(np.mean([R[T - 1, j] - R[j, j] for j in range(T - 1)]))


# ------------------------------------------------------------------------------------------------ compute
@dataclass
class ParameterCounts:
    trainable: int
    task_specific: int
    total: int


def _cpu_sdpa_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


#: torch's counter has formulas for the CUDA attention kernels only; on CPU, SDPA dispatches to
#: ``_scaled_dot_product_flash_attention_for_cpu``, which it would count as zero FLOPs.
_EXTRA_FLOP_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_sdpa_flop}


def count_flops(model: torch.nn.Module, x: torch.Tensor, task_labels: torch.Tensor) -> int:
    """FLOPs of one forward pass, counted by torch's FlopCounterMode (a multiply-add counts as 2)."""
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False, custom_mapping=_EXTRA_FLOP_FORMULAS) as counter:
        model(x, task_labels)
    model.train(was_training)
    return int(counter.get_total_flops())


def peak_memory_mb(device: torch.device) -> float:
    """Peak memory: CUDA allocator peak on a GPU, else the process's resident-set high-water mark."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024.0
