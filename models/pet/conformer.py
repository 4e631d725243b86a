"""The Conformer-convolution adapter of Cappellazzo et al. (PETL_AST), per task, beside the MLP.

Cappellazzo, Falavigna, Brutti, Ravanelli 2024, "Parameter-Efficient Transfer Learning of Audio Spectrogram
Transformers" (arXiv 2312.03694v4, IEEE MLSP 2024; the Conformer adapter is absent from v1): the bottleneck
of an adapter becomes the convolution module of the Conformer (Gulati et al. 2020, Section 2.2): pointwise conv
D -> 2m, GLU (-> m), depthwise conv of kernel k over time, BatchNorm, SiLU, pointwise conv m -> D. Their best
configuration, used here, is "Pfeiffer-parallel": one adapter per block, in parallel with the MLP (reading the LN2
output), reduction rate 96 (m = D/96 = 8 for ViT-B), kernel 31, no dropout; they report parity with full
fine-tuning at 0.29 % of the parameters.

Time axis: AST tokens are the prefix tokens and then the patches frequency-major ``(f t)`` on the grid
``ctx.grid = (F', T')``. The depthwise conv runs along t for every frequency row f separately (a (1, k) Conv2d
on ``b c f t``: the same time kernel on every row, as a 1-d conv over each row's time series); PETL_AST's 1-d
conv over the flattened token sequence would mix the end of one frequency row with the start of the next.
Prefix tokens (CLS, distillation) have no time axis: they go through the bottleneck (pointwise, GLU, SiLU,
pointwise) without the depthwise conv and the BatchNorm (whose statistics are over time-frequency positions).

Init: the last pointwise conv is zero-initialised (weight and bias), so the adapter adds exactly zero and the
method starts as the identity of the frozen model (PETL_AST keeps PyTorch's default init there).

Per-task BatchNorm: the running statistics are buffers of the task's own module, so training task 1 never
changes task 0's module.
"""
from __future__ import annotations

import torch
from torch import nn

from audio_ticl.models.context import ForwardContext
from audio_ticl.models.errors import ModelError
from audio_ticl.models.pet.base import PETMethod, register_pet
from audio_ticl.models.pet.grid import join_grid, split_grid

__all__ = ["ConformerAdapter", "ConformerMethod"]


class ConformerAdapter(nn.Module):
    """(B, P+N, D) -> (B, P+N, D) Conformer convolution module with a bottleneck of width m."""

    def __init__(self, dim: int, bottleneck: int, kernel_size: int = 31, dropout: float = 0.0) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ModelError(f"conformer adapter kernel_size must be odd (centred 'same' padding), got {kernel_size}")
        self.down = nn.Linear(dim, 2 * bottleneck)  # pointwise conv 1
        self.glu = nn.GLU(dim=-1)
        self.dwconv = nn.Conv2d(
            bottleneck, bottleneck, (1, kernel_size), padding=(0, kernel_size // 2), groups=bottleneck
        )
        self.norm = nn.BatchNorm2d(bottleneck)
        self.act = nn.SiLU()
        self.up = nn.Linear(bottleneck, dim)  # pointwise conv 2
        self.drop = nn.Dropout(dropout)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        prefix, patches = split_grid(self.glu(self.down(h)), ctx, "the Conformer adapter")
        z = self.act(join_grid(prefix, self.norm(self.dwconv(patches))))
        return self.drop(self.up(z))


@register_pet
class ConformerMethod(PETMethod):
    """One Conformer adapter per block in parallel with the MLP (Pfeiffer-parallel, PETL_AST's best).

    Defaults (PETL_AST): ``reduction=96`` (or ``bottleneck`` fixed), ``kernel_size=31``, ``dropout=0``.

    Parameters per task (m bottleneck, k kernel): ``L (3 D m + D + m k + 5 m)`` (pointwise 1: 2 D m + 2 m;
    depthwise: m k + m; BatchNorm: 2 m; pointwise 2: D m + D); ViT-B (D = 768, L = 12, m = 8, k = 31):
    233 856 (0.27 % of the 86 M backbone; PETL_AST's adapter also builds a LayerNorm, 2 D a block, that its
    forward never applies: counted, 252 288 = 0.29 %, the paper's figure).
    """

    name = "conformer"
    targets = ("blocks.*.mlp",)
    family_targets = {"mamba": "the adapter runs beside the MLP (Cappellazzo et al. 2024, Pfeiffer-parallel); "
                      "a Mamba layer (SSAMBA) has no MLP"}
    placement = "parallel"

    def __init__(
        self, reduction: int | None = 96, bottleneck: int | None = None, kernel_size: int = 31, dropout: float = 0.0
    ) -> None:
        if (bottleneck is None) == (reduction is None):
            raise ModelError(f"conformer: give exactly one of bottleneck={bottleneck!r} and reduction={reduction!r}")
        self.reduction = reduction
        self.bottleneck = bottleneck
        self.kernel_size = kernel_size
        self.dropout = dropout

    def width(self, dim: int) -> int:
        return int(self.bottleneck) if self.bottleneck is not None else max(1, round(dim / int(self.reduction)))

    def create_module(self, backbone: nn.Module, target_name: str, target: nn.Module, task_id: int) -> nn.Module:
        dim = int(backbone.num_features)
        return ConformerAdapter(dim, self.width(dim), self.kernel_size, self.dropout)
