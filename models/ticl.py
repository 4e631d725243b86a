"""Task-incremental model: a shared backbone, per-task PET modules and per-task linear heads (task id known)."""
from __future__ import annotations

import torch
from torch import nn

from models.ast import ASTBackbone
from models.errors import ModelError, UnknownNameError
from models.pet.base import PETMethod

__all__ = ["TaskIncrementalModel", "PAD_LOGIT"]

PAD_LOGIT = -1.0e4
"""Logit given to classes a sample's task does not have when a batch mixes tasks with different class counts.

Finite (not -inf) so that softmax, log-softmax, cross-entropy and distillation losses stay NaN-free in every
dtype (fp16 included), yet exp(PAD_LOGIT - x) is exactly 0 in fp32 for any realistic logit x, so padded classes
never get probability mass and never win the argmax.
"""


class TaskIncrementalModel(nn.Module):
    """Backbone + optional PET method + ``heads`` (``nn.ModuleDict``, key ``str(task_id)``).

    ``forward(x, task_labels)`` groups the batch by task, activates each task's PET modules, runs the group and
    scatters the logits back; the output has ``C_max`` columns (the most classes of any task in the batch) and
    the columns a task lacks hold ``PAD_LOGIT``.
    """

    def __init__(self, backbone: ASTBackbone, pet: PETMethod | None = None) -> None:
        super().__init__()
        self.backbone = backbone
        self.pet = pet
        self.heads = nn.ModuleDict()

    # ------------------------------------------------------------------------------------------- tasks
    @property
    def task_ids(self) -> list[int]:
        return sorted(int(k) for k in self.heads)

    def has_task(self, task_id: int) -> bool:
        return str(int(task_id)) in self.heads

    def add_task(self, task_id: int, num_classes: int) -> list[nn.Parameter]:
        """Create task ``task_id``'s head (and PET modules); return exactly the new task-specific parameters."""
        key = str(int(task_id))
        if key in self.heads:
            raise ModelError(f"task {task_id} already exists (known tasks: {self.task_ids})")
        if num_classes < 1:
            raise ModelError(f"task {task_id} needs at least one class, got num_classes={num_classes}")
        ref = next(self.backbone.parameters())
        head = nn.Linear(self.backbone.num_features, num_classes).to(device=ref.device, dtype=ref.dtype)
        nn.init.trunc_normal_(head.weight, std=0.02)
        nn.init.zeros_(head.bias)
        self.heads[key] = head
        params = list(head.parameters())
        if self.pet is not None:
            try:
                params += self.pet.inject(self.backbone, int(task_id))
            except Exception:
                del self.heads[key]  # leave the model as it was
                raise
        return params

    def _head(self, task_id: int) -> nn.Linear:
        key = str(int(task_id))
        if key not in self.heads:
            raise UnknownNameError(f"unknown task id {task_id}; known tasks: {self.task_ids}")
        return self.heads[key]  # type: ignore[return-value]

    def task_parameters(self, task_id: int) -> list[nn.Parameter]:
        """Parameters owned by task ``task_id``: its head and its PET modules."""
        params = list(self._head(task_id).parameters())
        if self.pet is not None:
            for module in self.pet.task_modules(self.backbone, int(task_id)):
                params += list(module.parameters())
        return params

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Parameters shared by all tasks (everything that is not a head or a PET module)."""
        owned = {id(p) for t in self.task_ids for p in self.task_parameters(t)}
        owned |= {id(p) for p in self.heads.parameters()}
        for _, _, site in self.backbone.pet_sites():
            owned |= {id(p) for p in site.parameters()}
        return [p for p in self.parameters() if id(p) not in owned]

    def count_parameters(self) -> dict[str, int | dict[int, int]]:
        """{"total", "backbone", "trainable", "tasks": {task_id: n}} parameter counts."""
        return {
            "total": sum(p.numel() for p in self.parameters()),
            "backbone": sum(p.numel() for p in self.backbone_parameters()),
            "trainable": sum(p.numel() for p in self.parameters() if p.requires_grad),
            "tasks": {t: sum(p.numel() for p in self.task_parameters(t)) for t in self.task_ids},
        }

    # ------------------------------------------------------------------------------------------- forward
    def forward_task(self, x: torch.Tensor, task_id: int) -> torch.Tensor:
        """All of ``x`` belongs to task ``task_id``: (B, T, F) -> (B, C_task)."""
        head = self._head(task_id)
        self.backbone.set_active_task(int(task_id))
        try:
            return head(self.backbone.forward_features(x))
        finally:
            self.backbone.set_active_task(None)

    def forward(self, x: torch.Tensor, task_labels: torch.Tensor | int) -> torch.Tensor:
        """(B, T, F) fbanks and (B,) task labels -> (B, C_max) logits (PAD_LOGIT where a task has no class)."""
        if isinstance(task_labels, int):
            return self.forward_task(x, task_labels)
        task_labels = torch.as_tensor(task_labels, device=x.device).reshape(-1)
        if task_labels.shape[0] != x.shape[0]:
            raise ModelError(f"got {task_labels.shape[0]} task labels for a batch of {x.shape[0]} inputs")
        tasks = [int(t) for t in torch.unique(task_labels).tolist()]
        for t in tasks:
            self._head(t)  # fail before any compute on an unknown task
        if len(tasks) == 1:
            return self.forward_task(x, tasks[0])
        groups = [(t, torch.nonzero(task_labels == t).flatten()) for t in tasks]
        outs = [(idx, self.forward_task(x.index_select(0, idx), t)) for t, idx in groups]
        width = max(o.shape[1] for _, o in outs)
        logits = outs[0][1].new_full((x.shape[0], width), PAD_LOGIT)
        for idx, o in outs:
            logits[idx, : o.shape[1]] = o
        return logits
