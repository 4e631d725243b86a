"""LoRA on the query and value projections, per task, mergeable into a copy's frozen ``qkv`` for evaluation.

Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models", Section 4.1: a frozen ``W`` gets the update
``W + (alpha / r) B A`` with ``A`` (r x D) random and ``B`` (D x r) zero, so training starts at the frozen model;
Section 7.1 (Table 5): adapting ``W_q`` and ``W_v`` is the best use of a fixed budget.

Every mixer of this package computes q, k, v with one fused ``qkv`` Linear (D -> 3D, output ``(s h d)`` with s
the slowest axis: q, then k, then v). LoRA is therefore one ``parallel`` module on ``blocks.*.mixer.qkv`` whose
output is ``[s B_q A_q x, 0, s B_v A_v x]``: zero on the k slice. It works with any mixer (gsa, fta) because it
changes only the projection.

:func:`merge_lora` folds one task's update into a deep copy's ``qkv`` weights and drops the copy's LoRA modules,
so the copy without a task id computes what the original computes with that task id (no extra matmuls).

SSAMBA (``family_targets``): a Mamba layer has no qkv; its dense weights are ``in_proj`` (D -> 2E, giving x and the
gate z) and ``out_proj`` (E -> D). LoRA there is a plain low-rank update of the whole weight (:class:`LoRALinear`,
``W + (alpha / r) B A``, Section 4.1), on both projections of every layer.
"""
from __future__ import annotations

import copy
import math

import torch
from torch import nn

from audio_ticl.models.context import ForwardContext
from audio_ticl.models.errors import ModelError
from audio_ticl.models.pet.base import PETMethod, register_pet
from audio_ticl.models.pet.tuner import iter_task_modules

__all__ = ["LoRAQV", "LoRALinear", "LoRAMethod", "merge_lora"]


def _random_a(rank: int, dim: int) -> nn.Parameter:
    """LoRA's random ``A`` (r x dim): PEFT's kaiming-uniform with a = sqrt(5) (the paper: "random Gaussian")."""
    a = nn.Parameter(torch.empty(rank, dim))
    nn.init.kaiming_uniform_(a, a=math.sqrt(5))
    return a


class LoRAQV(nn.Module):
    """Low-rank updates of the q and v slices of a fused (D -> 3D) qkv projection; (B, L, D) -> (B, L, 3D)."""

    def __init__(self, dim: int, rank: int, alpha: float) -> None:
        super().__init__()
        if rank < 1:
            raise ModelError(f"LoRA rank must be at least 1, got {rank}")
        self.dim = dim
        self.scaling = float(alpha) / rank
        self.a_q = _random_a(rank, dim)
        self.b_q = nn.Parameter(torch.zeros(dim, rank))
        self.a_v = _random_a(rank, dim)
        self.b_v = nn.Parameter(torch.zeros(dim, rank))

    def delta_weight(self) -> torch.Tensor:
        """(3D, D) update of the qkv weight: ``s B A`` on the q and v rows, zero on the k rows."""
        zero = self.a_q.new_zeros(self.dim, self.dim)
        return torch.cat([self.b_q @ self.a_q, zero, self.b_v @ self.a_v], dim=0) * self.scaling

    def forward(self, x: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        q = (x @ self.a_q.T) @ self.b_q.T
        v = (x @ self.a_v.T) @ self.b_v.T
        return torch.cat([q, torch.zeros_like(q), v], dim=-1) * self.scaling

    def extra_repr(self) -> str:
        return f"dim={self.dim}, rank={self.a_q.shape[0]}, scaling={self.scaling}"


class LoRALinear(nn.Module):
    """A low-rank update of a whole Linear's weight, ``(alpha / r) B A``; (..., in) -> (..., out), zero at start."""

    def __init__(self, in_features: int, out_features: int, rank: int, alpha: float) -> None:
        super().__init__()
        if rank < 1:
            raise ModelError(f"LoRA rank must be at least 1, got {rank}")
        self.scaling = float(alpha) / rank
        self.a = _random_a(rank, in_features)
        self.b = nn.Parameter(torch.zeros(out_features, rank))

    def delta_weight(self) -> torch.Tensor:
        """(out, in) update of the target's weight."""
        return (self.b @ self.a) * self.scaling

    def forward(self, x: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        return (x @ self.a.T) @ self.b.T * self.scaling

    def extra_repr(self) -> str:
        return f"in={self.a.shape[1]}, out={self.b.shape[0]}, rank={self.a.shape[0]}, scaling={self.scaling}"


@register_pet
class LoRAMethod(PETMethod):
    """LoRA on W_q and W_v of every block (Hu et al. 2021, Sections 4.1 and 7.1).

    Defaults: ``rank=8``, ``alpha=8`` (Section 4.1: alpha is set to the first r tried and not tuned, so the
    scaling alpha / r is 1; PEFT's defaults are also r = alpha = 8). ``A`` is random (kaiming-uniform, as PEFT;
    the paper says "random Gaussian"), ``B`` is zero: the method starts as the identity of the frozen model.

    Parameters per task: ``L * 2 * 2 r D`` (no biases); ViT-B (L = 12, D = 768, r = 8): 294 912. SSAMBA (E = 2 D):
    ``L * r * ((D + 2 E) + (E + D)) = 8 L r D``; SSAMBA-tiny (L = 24, D = 192, r = 8): 294 912.
    """

    name = "lora"
    targets = ("blocks.*.mixer.qkv",)
    family_targets = {"mamba": ("blocks.*.mixer.in_proj", "blocks.*.mixer.out_proj")}
    placement = "parallel"

    def __init__(self, rank: int = 8, alpha: float = 8.0) -> None:
        self.rank = rank
        self.alpha = alpha

    def create_module(self, backbone: nn.Module, target_name: str, target: nn.Module, task_id: int) -> nn.Module:
        if not isinstance(target, nn.Linear):
            raise ModelError(f"lora: {target_name} is a {type(target).__name__}, not a Linear")
        if target_name.rsplit(".", 1)[-1] != "qkv":
            return LoRALinear(target.in_features, target.out_features, self.rank, self.alpha)
        if target.out_features != 3 * target.in_features:
            raise ModelError(f"lora: {target_name} is not a fused (D -> 3D) qkv Linear")
        return LoRAQV(target.in_features, self.rank, self.alpha)


def merge_lora(backbone: nn.Module, task_id: int, method: LoRAMethod | None = None) -> nn.Module:
    """A deep copy of ``backbone`` with task ``task_id``'s LoRA folded into its ``qkv`` weights and every LoRA
    module removed: ``merged(x)`` equals ``backbone(x, task_id=task_id)`` up to float rounding. ``backbone`` is
    not changed."""
    method = method or LoRAMethod()
    merged = copy.deepcopy(backbone)
    found = False
    with torch.no_grad():
        for _, target, modules in iter_task_modules(merged, method.slot):
            module = modules.get(task_id)
            if module is not None:
                target.weight.add_(module.delta_weight().to(target.weight.dtype))
                found = True
    if not found:
        raise ModelError(f"merge_lora: task {task_id} has no LoRA modules in this backbone")
    for t in {int(k) for _, _, modules in iter_task_modules(merged, method.slot) for k in modules.adapters}:
        method.remove(merged, t)
    return merged
