"""The backbone protocol: what every backbone of this package provides (AST now; Mamba, frame transformers next).

The names are timm's, so a reader who knows ``timm.models.VisionTransformer`` knows these:

``forward_features(x, *, task_id=None, pos_embed=None) -> tokens``
    (B, ...) input -> (B, P+N, D) final-normed tokens: the ``P = num_prefix_tokens`` prefix tokens first, then the
    ``N`` patch (or frame) tokens, for AST frequency-major over ``patch_grid``. ``task_id`` selects the PET modules
    that run (None: none); it is passed explicitly and reaches the PET modules through the per-forward context the
    method opens (``models.context``), never through state left on the modules. ``pos_embed`` (patch backbones
    only) runs an input of another length with a position embedding for its grid.
``forward_head(tokens, pre_logits=True) -> pooled``
    (B, P+N, D) -> (B, D) by the backbone's pooling. Backbones carry no classifier (the per-task heads live in
    ``TaskIncrementalModel``), so ``pre_logits`` is accepted for timm compatibility and changes nothing.
``forward(x, task_id=None) -> pooled``
    ``forward_head(forward_features(x, task_id=task_id))``.
``num_features``
    D, the width of the pooled features (the input size of a head).
``num_prefix_tokens``
    P, the number of prefix tokens in ``forward_features``' output (CLS, distillation token; 0 for none).
``patch_grid``
    (F', T') of the configured input for patch backbones, None for sequence models.

PET methods find their target modules by name (``models.pet``), so a backbone declares no PET sites; it only has
to run its whole forward inside ``forward_context(ForwardContext(task_id, grid, num_prefix))``.

``TaskIncrementalModel`` gives tasks their own input lengths through the few extra members of
:class:`PatchBackbone` (``input_frames``, ``num_mel_bins``, ``pos_embed``, ``grid_for``, ``resampled_pos_embed``).

Renamed to timm's meaning (the old names stay one release as deprecated aliases where they can):

* ``forward_tokens(x, pos_embed)`` -> ``forward_features(x, pos_embed=...)`` (alias kept, warns);
* ``pool(tokens)`` -> ``forward_head(tokens)`` (alias kept, warns);
* the old ``forward_features(x, pos_embed)``, which returned *pooled* features, -> ``forward(x)`` or
  ``forward_head(forward_features(x))``: the name now returns tokens, so that meaning cannot be kept;
* ``set_active_task`` / ``pet_sites`` are gone: pass ``task_id`` to the forward instead.
"""
from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

import torch

__all__ = ["Backbone", "PatchBackbone"]


@runtime_checkable
class Backbone(Protocol):
    """A headless encoder: see the module docstring for the meaning of every member."""

    num_features: int
    num_prefix_tokens: int

    @property
    def patch_grid(self) -> tuple[int, int] | None: ...

    def forward_features(
        self, x: torch.Tensor, *, task_id: int | None = None, pos_embed: torch.Tensor | None = None
    ) -> torch.Tensor: ...

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = True) -> torch.Tensor: ...

    def forward(self, x: torch.Tensor, task_id: int | None = None) -> torch.Tensor: ...


@runtime_checkable
class PatchBackbone(Backbone, Protocol):
    """A backbone over a (frames, mel bins) patch grid whose position embedding can be resampled per task length."""

    input_frames: int
    num_mel_bins: int
    pos_embed: torch.Tensor

    def grid_for(self, n_frames: int) -> tuple[int, int]: ...

    def resampled_pos_embed(self, n_frames: int, shrink: Literal["crop", "interpolate"] = "crop") -> torch.Tensor: ...
