"""AI-CL's Convolutional Adapter (Convpass): a bottleneck adapter with a 3x3 conv over the patch grid.

Linear D->d, QuickGELU, Conv2d(d, d, 3, padding 1) over the F' x T' grid (each prefix token as its own 1x1 map,
same conv), QuickGELU, Dropout, Linear d->D with zero weight and bias, so a fresh adapter adds exactly zero.
Parameters per module: 2 D d + 9 d^2 + 2 d + D (1536 d + 9 d^2 + 2 d + 768 for D = 768).

The method hooks two adapters per block onto the backbone by name, each in parallel with its target: beside the
token mixer (``blocks.*.mixer``, reading the LN1 output) and beside the MLP (``blocks.*.mlp``, reading the LN2
output), so a block computes ``x + drop_path(mixer(h) + convpass(h))``, as AI-CL.
"""
from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

from audio_ticl.models.context import ForwardContext
from audio_ticl.models.errors import ModelError
from audio_ticl.models.layers import QuickGELU
from audio_ticl.models.pet.base import PETMethod, register_pet
from audio_ticl.models.pet.grid import join_grid, split_grid

__all__ = ["ConvPass", "ConvPassMethod"]


class ConvPass(nn.Module):
    """One convolutional adapter: (B, P+N, D) -> (B, P+N, D)."""

    def __init__(self, dim: int, bottleneck: int, dropout: float = 0.1, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale
        self.down = nn.Linear(dim, bottleneck)
        self.conv = nn.Conv2d(bottleneck, bottleneck, kernel_size=3, padding=1)
        self.act = QuickGELU()
        self.drop = nn.Dropout(dropout)
        self.up = nn.Linear(bottleneck, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Convpass init: xavier down and conv, zero biases, zero up-projection (identity of the block)."""
        nn.init.xavier_uniform_(self.down.weight)
        nn.init.zeros_(self.down.bias)
        nn.init.xavier_uniform_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        """(B, P+N, D) tokens of a forward on patch grid ``ctx.grid`` with ``ctx.num_prefix`` prefix tokens."""
        prefix, patches = split_grid(self.act(self.down(h)), ctx, "ConvPass")
        # each prefix token is its own 1 x 1 map through the same conv
        prefix = rearrange(self.conv(rearrange(prefix, "b p c -> (b p) c 1 1")), "(b p) c 1 1 -> b p c", b=h.shape[0])
        z = self.drop(self.act(join_grid(prefix, self.conv(patches))))
        return self.up(z) * self.scale

    def extra_repr(self) -> str:
        return f"scale={self.scale}"


@register_pet
class ConvPassMethod(PETMethod):
    """Two Convpass adapters per block (beside the token mixer and beside the MLP), bottleneck ``dim_first_task``
    for task 0 and ``dim`` for later tasks, as AI-CL (64 / 32)."""

    name = "convpass"
    targets = ("blocks.*.mixer", "blocks.*.mlp")
    #: SSAMBA: beside the Mamba mixer, reading its norm's output on the patch grid; a Mamba layer has no MLP
    family_targets = {"mamba": ("blocks.*.mixer",)}
    placement = "parallel"

    def __init__(self, dim_first_task: int = 64, dim: int = 32, dropout: float = 0.1, scale: float = 1.0) -> None:
        self.dim_first_task = dim_first_task
        self.dim = dim
        self.dropout = dropout
        self.scale = scale

    def bottleneck(self, task_id: int) -> int:
        return self.dim_first_task if task_id == 0 else self.dim

    def inject(self, backbone: nn.Module, task_id: int) -> list[nn.Parameter]:
        rows = getattr(backbone, "patch_grid", (2, 2))[0]
        if rows == 1:
            raise ModelError(f"convpass: its 3x3 conv runs on the frequency x time patch grid, and this backbone's "
                             f"tokens are frames (grid 1 x {backbone.patch_grid[1]}); a sequence PET method applies "
                             "(houlsby, lora, bitfit, conformer, ...)")
        return super().inject(backbone, task_id)

    def create_module(self, backbone: nn.Module, target_name: str, target: nn.Module, task_id: int) -> nn.Module:
        dim = int(backbone.num_features)
        return ConvPass(dim, self.bottleneck(task_id), dropout=self.dropout, scale=self.scale)
