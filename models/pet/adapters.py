"""Bottleneck adapters: Houlsby, Pfeiffer, AdaptFormer and AAT, one module per target and task.

All four share one module, :class:`Bottleneck`: ``Linear D->m, activation, Linear m->D`` times a scale. Its
up-projection (weight and bias) starts at zero, so every method below starts as the identity of the frozen
model (the papers' near-identity inits made exact); the down-projection keeps ``nn.Linear``'s default init.
One adapter has ``2 D m + m + D`` parameters. They differ only in where the adapters go (``models.pet.tuner``
placements, on the block's submodules; ``blocks.*.mixer`` is the token mixer, ``blocks.*.mlp`` the MLP):

* ``sequential``: ``y + s * up(act(down(y)))`` on the target's output ``y`` (the adapter's own residual), before
  the block's drop-path and residual add;
* ``parallel``: ``target(h) + s * up(act(down(h)))`` beside the target, reading the target's input ``h`` (LN output).

Per-task parameter counts for ViT-B (D = 768, 12 blocks) with the defaults are in each method's docstring.
"""
from __future__ import annotations

import fnmatch
from typing import ClassVar

import torch
from torch import nn

from audio_ticl.models.context import ForwardContext
from audio_ticl.models.errors import ModelError
from audio_ticl.models.pet.base import PETMethod, register_pet
from audio_ticl.models.pet.tuner import Placement

__all__ = ["Bottleneck", "HoulsbyMethod", "PfeifferMethod", "AdaptFormerMethod", "AATMethod", "ACTIVATIONS"]

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU}


def _activation(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ModelError(f"unknown adapter activation {name!r}; choose one of {sorted(ACTIVATIONS)}") from None


class Bottleneck(nn.Module):
    """(B, L, D) -> (B, L, D): ``s * up(act(down(x)))``, plus ``x`` when ``residual`` (a sequential adapter)."""

    def __init__(
        self, dim: int, bottleneck: int, activation: str = "gelu", scale: float = 1.0, residual: bool = False,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if bottleneck < 1:
            raise ModelError(f"adapter bottleneck must be at least 1, got {bottleneck}")
        self.scale = float(scale)
        self.residual = bool(residual)
        self.down = nn.Linear(dim, bottleneck)
        self.act = _activation(activation)
        self.drop = nn.Dropout(dropout)
        self.up = nn.Linear(bottleneck, dim)
        nn.init.zeros_(self.up.weight)  # zero up-projection: the adapter adds exactly zero at the start
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        delta = self.up(self.drop(self.act(self.down(x)))) * self.scale
        return x + delta if self.residual else delta

    def extra_repr(self) -> str:
        return f"scale={self.scale}, residual={self.residual}"


def bottleneck_params(dim: int, bottleneck: int) -> int:
    """Parameters of one :class:`Bottleneck`: ``2 D m + m + D``."""
    return 2 * dim * bottleneck + bottleneck + dim


class _BottleneckMethod(PETMethod):
    """A bottleneck adapter of width ``bottleneck`` (or ``dim // reduction`` when ``bottleneck`` is None)."""

    #: target pattern -> placement
    sites: ClassVar[dict[str, Placement]] = {}

    def __init__(
        self, bottleneck: int | None = 64, reduction: int | None = None, activation: str = "gelu",
        scale: float = 1.0, dropout: float = 0.0,
    ) -> None:
        if (bottleneck is None) == (reduction is None):
            raise ModelError(f"{self.name}: give exactly one of bottleneck={bottleneck!r} and reduction={reduction!r}")
        _activation(activation)
        self.bottleneck = bottleneck
        self.reduction = reduction
        self.activation = activation
        self.scale = scale
        self.dropout = dropout

    @property
    def targets(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self.sites)

    def width(self, dim: int) -> int:
        return int(self.bottleneck) if self.bottleneck is not None else dim // int(self.reduction)  # type: ignore

    def placement_for(self, target_name: str) -> Placement:
        parts = target_name.split(".")
        for pattern, placement in self.sites.items():
            split = pattern.split(".")
            if len(split) == len(parts) and all(fnmatch.fnmatchcase(a, b) for a, b in zip(parts, split)):
                return placement
        raise ModelError(f"{self.name}: {target_name} matches none of its sites {sorted(self.sites)}")

    def create_module(self, backbone: nn.Module, target_name: str, target: nn.Module, task_id: int) -> nn.Module:
        dim = int(backbone.num_features)
        residual = self.placement_for(target_name) == "sequential"
        return Bottleneck(dim, self.width(dim), self.activation, self.scale, residual, self.dropout)


@register_pet
class HoulsbyMethod(_BottleneckMethod):
    """Houlsby et al. 2019, "Parameter-Efficient Transfer Learning for NLP", Section 2.1 and Figure 2: two
    sequential adapters per block, on the attention output and on the MLP output, each with its own skip
    connection, before the block's residual add.

    Defaults: ``bottleneck=64`` (one of the sizes {8, 64, 256} of Section 3.1), ``activation="gelu"`` (the
    paper leaves the nonlinearity open; GELU as PETL_AST's bottleneck adapter), ``scale=1``. Init: Houlsby et al.
    draw near-zero weights (Section 2.1, "near-identity"); here the up-projection is exactly zero, so the method
    starts as the identity of the frozen model.

    Parameters per task: ``L * 2 * (2 D m + m + D)``; ViT-B (L = 12, D = 768, m = 64): 2 379 264.
    """

    name = "houlsby"
    sites = {"blocks.*.mixer": "sequential", "blocks.*.mlp": "sequential"}
    placement = "sequential"
    #: SSAMBA: the adapter on the mixer's output; a Mamba layer has no MLP for the second
    family_targets = {"mamba": ("blocks.*.mixer",)}


@register_pet
class PfeifferMethod(_BottleneckMethod):
    """Pfeiffer et al. 2021, "AdapterFusion: Non-Destructive Task Composition for Transfer Learning" (EACL): the
    single-task adapter found by their architecture search, one sequential adapter per block after the
    feed-forward sublayer, reading the sublayer's output *after* its residual add (in their post-LN BERT, after
    the residual and LayerNorm). On a pre-norm block that is the block's output ``y = x' + MLP(LN2(x'))``:
    ``y + up(ReLU(down(y)))``, which is what AdapterHub's reference ``SeqBnConfig`` computes on pre-LN ViTs
    (``x' + h + up(ReLU(down(x' + h)))``). Target ``blocks.*``, sequential.

    Defaults (AdapterHub's released Pfeiffer configs): ``reduction=16`` (bottleneck D/16 = 48 for ViT-B),
    ``activation="relu"``, ``scale=1``; pass ``bottleneck=..., reduction=None`` for a fixed width. Zero
    up-projection: identity at start.

    Parameters per task: ``L * (2 D m + m + D)``; ViT-B (m = 48): 894 528.
    """

    name = "pfeiffer"
    sites = {"blocks.*": "sequential"}
    placement = "sequential"
    family_targets = {
        "mamba": "its one adapter follows the feed-forward sublayer (Pfeiffer et al. 2021), which a Mamba layer "
        "lacks, and SSAMBA's paired layers call their branches, not the blocks it would hook; houlsby's adapter on "
        "the mixer output is the bottleneck adapter that applies",
    }

    def __init__(
        self, bottleneck: int | None = None, reduction: int | None = 16, activation: str = "relu",
        scale: float = 1.0, dropout: float = 0.0,
    ) -> None:
        super().__init__(bottleneck, reduction, activation, scale, dropout)


@register_pet
class AdaptFormerMethod(_BottleneckMethod):
    """Chen et al. 2022, "AdaptFormer: Adapting Vision Transformers for Scalable Visual Recognition" (NeurIPS),
    Section 3.2: AdaptMLP, a scaled bottleneck in parallel with the MLP, reading the same LN output, as the paper's
    equations write it: ``x' + MLP(LN(x')) + s * up(ReLU(down(LN(x'))))`` (the authors' code feeds the adapter
    ``x'`` itself, ``ffn_adapter_layernorm_option="none"``; this follows the paper).

    Defaults (Section 4.1): ``bottleneck=64``, ``scale=0.1``, ``activation="relu"``; up-projection zero-initialised
    as in the paper, so the method starts as the identity.

    Parameters per task: ``L * (2 D m + m + D)``; ViT-B (m = 64): 1 189 632.
    """

    name = "adaptformer"
    sites = {"blocks.*.mlp": "parallel"}
    placement = "parallel"
    family_targets = {
        "mamba": "AdaptMLP runs beside the MLP (Chen et al. 2022, Sec. 3.2); a Mamba layer (SSAMBA) has no MLP",
    }

    def __init__(
        self, bottleneck: int | None = 64, reduction: int | None = None, activation: str = "relu",
        scale: float = 0.1, dropout: float = 0.0,
    ) -> None:
        super().__init__(bottleneck, reduction, activation, scale, dropout)


@register_pet
class AATMethod(_BottleneckMethod):
    """Liang et al. 2024, "AAT: Adapting Audio Transformer for Various Acoustics Recognition Tasks" (arXiv
    2401.10544), Section 2 (method): a "Spatial Adapter" sequential after multi-head attention and an "MLP
    Adapter" in parallel with the MLP, both bottlenecks of width D/4 with zero-initialised up-projections, so the
    method starts as the identity. The paper reports training 7.118 % of the parameters; the basis of that figure
    is not reproduced here (D/4 on AST-B gives 8.24 % of the backbone, 7.61 % of backbone plus adapters).

    Defaults: ``reduction=4`` (D/4 = 192 for ViT-B), ``activation="gelu"``, ``scale=1``.

    Parameters per task: ``L * 2 * (2 D m + m + D)``; ViT-B (m = 192): 7 100 928 (8.2 % of the 86 M backbone).
    """

    name = "aat"
    sites = {"blocks.*.mixer": "sequential", "blocks.*.mlp": "parallel"}
    family_targets = {
        "mamba": "half of AAT is its MLP adapter (Liang et al. 2024, Sec. 2); a Mamba layer (SSAMBA) has no MLP, and "
        "the spatial half alone is houlsby on the mixer",
    }

    def __init__(
        self, bottleneck: int | None = None, reduction: int | None = 4, activation: str = "gelu",
        scale: float = 1.0, dropout: float = 0.0,
    ) -> None:
        super().__init__(bottleneck, reduction, activation, scale, dropout)
