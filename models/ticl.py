"""Task-incremental model: a shared backbone, per-task PET modules and per-task linear heads (task id known).

Tasks may have their own input lengths (AI-CL: Speech Commands 128 frames, ESC-50 512, AVE 1006, each dataset
at its own length rather than all padded to the longest). ``task_frames`` maps a task id to its number of
frames; a task without an entry has the backbone's ``input_frames``. When a task's patch grid differs from the
backbone's, or ``per_task_pos_embed`` is on, :meth:`TaskIncrementalModel.add_task` gives the task its own
position embedding, resampled from the backbone's with AST's crop/interpolate convention:

* ``per_task_pos_embed=False``: a frozen copy, a *buffer* (saved in ``state_dict``, never a parameter, never in
  ``task_parameters``, never trained or counted as trainable). Only tasks whose grid differs get one.
* ``per_task_pos_embed=True`` (AI-CL trains a position embedding per task): every task gets a trainable
  ``nn.Parameter``, listed in ``task_parameters(task_id)`` and returned by ``add_task``.

With every task at the backbone's length and the option off (class-split scenarios) nothing is added: no
parameter, no ``state_dict`` key, and the forward is the backbone's own, bit for bit.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import torch
from torch import nn

from audio_ticl.models.errors import ModelError, UnknownNameError
from audio_ticl.models.pet.base import PETMethod
from audio_ticl.models.pet.tuner import iter_task_modules
from audio_ticl.models.protocol import PatchBackbone

__all__ = ["TaskIncrementalModel", "PAD_LOGIT"]

PAD_LOGIT = -1.0e4
"""Logit given to classes a sample's task does not have when a batch mixes tasks with different class counts.

Finite (not -inf) so that softmax, log-softmax, cross-entropy and distillation losses stay NaN-free in every
dtype (fp16 included), yet exp(PAD_LOGIT - x) is exactly 0 in fp32 for any realistic logit x, so padded classes
never get probability mass and never win the argmax.
"""


class TaskPosEmbeds(nn.Module):
    """Per-task position embeddings keyed ``str(task_id)``: trainable Parameters or frozen (persistent) buffers.

    Empty, it owns nothing (no parameter, no ``state_dict`` key). Its ``state_dict`` keys are the task ids, so a
    model's keys read ``task_pos_embed.<task id>``.
    """

    def add(self, task_id: int, value: torch.Tensor, trainable: bool) -> nn.Parameter | None:
        key = str(int(task_id))
        if key in self._parameters or key in self._buffers:
            raise ModelError(f"task {task_id} already has a position embedding")
        if trainable:
            param = nn.Parameter(value.detach().clone(), requires_grad=True)
            self.register_parameter(key, param)
            return param
        self.register_buffer(key, value.detach().clone(), persistent=True)
        return None

    def get(self, task_id: int) -> torch.Tensor | None:
        key = str(int(task_id))
        if key in self._parameters:
            return self._parameters[key]
        return self._buffers.get(key)

    def parameter(self, task_id: int) -> nn.Parameter | None:
        """The task's embedding if it is trainable, else None."""
        return self._parameters.get(str(int(task_id)))

    def remove(self, task_id: int) -> None:
        key = str(int(task_id))
        self._parameters.pop(key, None)
        self._buffers.pop(key, None)

    def extra_repr(self) -> str:
        parts = [f"{k}: {tuple(v.shape)} trainable" for k, v in self._parameters.items() if v is not None]
        parts += [f"{k}: {tuple(v.shape)} frozen" for k, v in self._buffers.items() if v is not None]
        return ", ".join(parts)


class TaskIncrementalModel(nn.Module):
    """Backbone + optional PET method + ``heads`` (``nn.ModuleDict``, key ``str(task_id)``) + per-task input
    lengths and position embeddings (see the module docstring).

    ``forward(x, task_labels)`` groups the batch by task, runs each group with its task id (so with that task's
    PET modules) and scatters the logits back; the output has ``C_max`` columns (the most classes of any task in
    the batch) and the columns a task lacks hold ``PAD_LOGIT``. One batch is one tensor, so all its tasks must
    share a length.

    ``task_frames``: task id -> input frames (also settable later with :meth:`set_task_frames`, before the task
    is added, so that Avalanche's adaptation, which only calls ``add_task(task_id, num_classes)``, creates the
    right embedding). ``pos_embed_shrink``: ``"crop"`` (AST) or ``"interpolate"`` for axes that shrink.
    """

    def __init__(
        self,
        backbone: PatchBackbone,
        pet: PETMethod | None = None,
        *,
        task_frames: Mapping[int, int] | None = None,
        per_task_pos_embed: bool = False,
        pos_embed_shrink: Literal["crop", "interpolate"] = "crop",
    ) -> None:
        super().__init__()
        if pos_embed_shrink not in ("crop", "interpolate"):
            raise ModelError(f"pos_embed_shrink must be 'crop' or 'interpolate', got {pos_embed_shrink!r}")
        self.backbone = backbone
        self.pet = pet
        self.heads = nn.ModuleDict()
        self.per_task_pos_embed = bool(per_task_pos_embed)
        self.pos_embed_shrink = pos_embed_shrink
        self.task_pos_embed = TaskPosEmbeds()
        self._task_frames: dict[int, int] = {}
        if task_frames:
            self.set_task_frames(task_frames)

    # ------------------------------------------------------------------------------------------- lengths
    def set_task_frames(self, task_frames: Mapping[int, int]) -> None:
        """Register input lengths (task id -> frames). A task already added must keep its length."""
        checked: dict[int, int] = {}
        for task_id, frames in task_frames.items():
            task_id = int(task_id)
            if isinstance(frames, bool) or int(frames) != frames or frames < 1:
                raise ModelError(f"task {task_id}: input frames must be a positive integer, got {frames!r}")
            frames = int(frames)
            self.backbone.grid_for(frames)  # too short for one patch -> ModelError now, not at add_task
            if self.has_task(task_id) and frames != self.input_frames(task_id):
                raise ModelError(
                    f"task {task_id} already exists with {self.input_frames(task_id)} input frames; cannot change "
                    f"it to {frames}"
                )
            checked[task_id] = frames
        self._task_frames.update(checked)

    @property
    def task_frames(self) -> dict[int, int]:
        """The registered input lengths (task id -> frames); tasks not listed use the backbone's."""
        return dict(self._task_frames)

    def input_frames(self, task_id: int) -> int:
        """Number of input frames task ``task_id`` takes (its registered length, else the backbone's)."""
        return self._task_frames.get(int(task_id), self.backbone.input_frames)

    @property
    def task_specific_features(self) -> bool:
        """True when the backbone's features of one input depend on the task (PET modules, or a task with its own
        position embedding): then one backbone pass cannot serve several tasks' heads; use :meth:`task_features`."""
        return self.pet is not None or self.per_task_pos_embed or len(self.task_pos_embed.state_dict()) > 0

    def pos_embed_for(self, task_id: int) -> torch.Tensor:
        """The (1, P + F'*T', D) position embedding task ``task_id`` runs with (its own, else the backbone's)."""
        own = self.task_pos_embed.get(task_id)
        return self.backbone.pos_embed if own is None else own

    def _new_pos_embed(self, task_id: int) -> torch.Tensor | None:
        """The embedding a new task gets (None: it shares the backbone's). Uses no random numbers."""
        frames = self.input_frames(task_id)
        grid = self.backbone.grid_for(frames)
        if not self.per_task_pos_embed and grid == tuple(self.backbone.patch_grid):
            return None
        return self.backbone.resampled_pos_embed(frames, self.pos_embed_shrink)

    def _check_frames(self, x: torch.Tensor, task_id: int) -> None:
        expected = self.input_frames(task_id)
        if x.ndim != 3 or x.shape[1] != expected:
            got = f"{x.shape[1]} frames" if x.ndim == 3 else "no frame axis"
            raise ModelError(
                f"task {task_id} expects inputs of {expected} frames, got {got} (input shape {tuple(x.shape)}, "
                f"expected (batch, {expected}, {self.backbone.num_mel_bins}))"
            )

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
        pos = self._new_pos_embed(int(task_id))  # before any change: a bad length leaves the model as it was
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
        if pos is not None:
            own = self.task_pos_embed.add(int(task_id), pos, trainable=self.per_task_pos_embed)
            if own is not None:
                params.append(own)
        return params

    def _head(self, task_id: int) -> nn.Linear:
        key = str(int(task_id))
        if key not in self.heads:
            raise UnknownNameError(f"unknown task id {task_id}; known tasks: {self.task_ids}")
        return self.heads[key]  # type: ignore[return-value]

    def task_parameters(self, task_id: int) -> list[nn.Parameter]:
        """Parameters owned by task ``task_id``: its head, its PET modules and its trainable position embedding
        (``per_task_pos_embed``; a frozen one is a buffer, not a parameter)."""
        params = list(self._head(task_id).parameters())
        if self.pet is not None:
            for module in self.pet.task_modules(self.backbone, int(task_id)):
                params += list(module.parameters())
        own = self.task_pos_embed.parameter(task_id)
        if own is not None:
            params.append(own)
        return params

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Parameters shared by all tasks (everything that is not a head, a PET module or a task's embedding)."""
        owned = {id(p) for t in self.task_ids for p in self.task_parameters(t)}
        owned |= {id(p) for p in self.heads.parameters()}
        owned |= {id(p) for p in self.task_pos_embed.parameters()}
        for _, _, modules in iter_task_modules(self.backbone):
            owned |= {id(p) for p in modules.parameters()}
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
    def task_features(self, x: torch.Tensor, task_id: int) -> torch.Tensor:
        """Backbone features of ``x`` as task ``task_id`` sees them: its input length, position embedding and PET
        modules. (B, T_task, F) -> (B, D)."""
        self._head(task_id)
        self._check_frames(x, task_id)
        own = self.task_pos_embed.get(task_id)
        if own is None and x.shape[1] == self.backbone.input_frames:
            pos = None  # the backbone's own path, exactly as without per-task lengths
        else:
            pos = self.backbone.pos_embed if own is None else own  # same grid as the backbone, or the task's own
        tokens = self.backbone.forward_features(x, task_id=int(task_id), pos_embed=pos)
        return self.backbone.forward_head(tokens)

    def forward_task(self, x: torch.Tensor, task_id: int) -> torch.Tensor:
        """All of ``x`` belongs to task ``task_id``: (B, T_task, F) -> (B, C_task)."""
        return self._head(task_id)(self.task_features(x, task_id))

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
        lengths = {t: self.input_frames(t) for t in tasks}
        if len(set(lengths.values())) > 1:
            raise ModelError(
                f"one batch (input shape {tuple(x.shape)}) cannot mix tasks of different input lengths "
                f"(task: frames {lengths}); batch such tasks separately or give them one common length"
            )
        self._check_frames(x, tasks[0])  # fail before any compute on a length the tasks do not take
        if len(tasks) == 1:
            return self.forward_task(x, tasks[0])
        groups = [(t, torch.nonzero(task_labels == t).flatten()) for t in tasks]
        outs = [(idx, self.forward_task(x.index_select(0, idx), t)) for t, idx in groups]
        width = max(o.shape[1] for _, o in outs)
        logits = outs[0][1].new_full((x.shape[0], width), PAD_LOGIT)
        for idx, o in outs:
            logits[idx, : o.shape[1]] = o
        return logits
