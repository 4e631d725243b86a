"""Visual prompt tuning (VPT), shallow and deep, per task: learned prompt tokens that every token can attend to.

Jia et al. 2022, "Visual Prompt Tuning" (ECCV), Section 3.2: ``p`` learnable d-dimensional tokens are inserted
right after CLS, after the position embedding (prompts have no position). *VPT-shallow* inserts them before the
first block only, and they flow through the blocks like any token; *VPT-deep* gives every block its own prompts,
which replace the previous block's prompt outputs. The prompt outputs are dropped after the last block, so the
final LayerNorm and the pooling see the backbone's own tokens (CLS, or the mean of the patches).

Placement: one ``prompt`` module (``models.pet.tuner``) per block, ``blocks.*``. A block is called as
``block(x, grid, num_prefix)``; each module's ``enter`` rewrites that call: the first block's inserts the task's
prompts after the backbone's prefix tokens (``ctx.num_prefix``: CLS, and a DeiT distillation token), a deep
block's replaces them with its own, and every block's raises ``num_prefix`` by ``p``. **The prompts are prefix
tokens** to the token mixer: with GSA every token attends to them, as in VPT; with FTA every patch token attends
to its frequency row, its time column and *every prefix token*, CLS and all prompts, and the prompts, like CLS,
attend to everything. FTA's pairs a head grow by ``p (2 N + 2 P + p)`` (N patches, P backbone prefix tokens).

VPT cannot start as the identity of the frozen model: a prompt changes the keys and values every token attends
to, and no value of the prompts removes them from the softmax (a zero prompt still takes attention mass). The
prompts are drawn as VPT's code draws them, uniform in ``±sqrt(6 / (fan_in + D))`` with ``fan_in`` the patch
projection's (its "xavier uniform"; one input channel here, three for RGB in VPT).
"""
from __future__ import annotations

import inspect
import math
from typing import Any

import torch
from torch import nn

from audio_ticl.models.context import ForwardContext
from audio_ticl.models.errors import ModelError
from audio_ticl.models.pet.base import PETMethod, register_pet
from audio_ticl.models.pet.tuner import match_targets

__all__ = ["BlockPrompts", "VPTMethod", "VPTShallowMethod", "VPTDeepMethod"]


class BlockPrompts(nn.Module):
    """One block's prompt handling for one task.

    ``prompts``: this block's own (1, p, D) tokens, or None (a VPT-shallow block after the first, which only
    carries the prompts the first block inserted). ``insert``: the first block (the prompts are new tokens).
    ``strip``: the last block (its output loses the prompt tokens).
    """

    def __init__(self, dim: int, length: int, *, own_prompts: bool, insert: bool, strip: bool, init_bound: float,
                 dropout: float = 0.0) -> None:
        super().__init__()
        if length < 1:
            raise ModelError(f"VPT needs at least one prompt token, got length={length}")
        if insert and not own_prompts:
            raise ModelError("the block that inserts the prompts must own them")
        self.length = int(length)
        self.insert = bool(insert)
        self.strip = bool(strip)
        self.drop = nn.Dropout(dropout)
        self.prompts = nn.Parameter(torch.empty(1, length, dim).uniform_(-init_bound, init_bound)) if own_prompts \
            else None

    def enter(self, args: tuple, kwargs: dict, ctx: ForwardContext) -> tuple[tuple, dict]:
        """The block's call ``(x, grid, num_prefix)`` with this task's prompts in ``x`` and ``num_prefix + p``."""
        x, grid, num_prefix = _block_call(args, kwargs)
        start = ctx.num_prefix
        if self.prompts is not None:
            prompts = self.drop(self.prompts).expand(x.shape[0], -1, -1).to(x.dtype)
            rest = x[:, start:] if self.insert else x[:, start + self.length :]
            x = torch.cat([x[:, :start], prompts, rest], dim=1)
        return (x, grid, num_prefix + self.length), {}

    def exit(self, out: torch.Tensor, ctx: ForwardContext) -> torch.Tensor | None:
        """The last block's output without the prompt tokens; other blocks' outputs unchanged (None)."""
        if not self.strip:
            return None
        start = ctx.num_prefix
        return torch.cat([out[:, :start], out[:, start + self.length :]], dim=1)

    def extra_repr(self) -> str:
        own = self.prompts is not None
        return f"length={self.length}, own_prompts={own}, insert={self.insert}, strip={self.strip}"


def _block_call(args: tuple, kwargs: dict) -> tuple[torch.Tensor, Any, int]:
    """(x, grid, num_prefix) of a block's call, positional or by keyword."""
    names = ("x", "grid", "num_prefix")
    values = dict(zip(names, args))
    values.update({k: v for k, v in kwargs.items() if k in names})
    missing = [n for n in names if n not in values]
    if missing:
        raise ModelError(f"VPT: a block was called without {missing}; it needs block(x, grid, num_prefix)")
    return values["x"], values["grid"], int(values["num_prefix"])


class VPTMethod(PETMethod):
    """VPT on every block ``blocks.*`` (see the module docstring); ``deep`` picks the variant."""

    targets = ("blocks.*",)
    family_targets = {
        "mamba": "VPT's prompts are read by attention from every position (Jia et al. 2022, Sec. 3.2); a Mamba layer "
        "reads a token only through its recurrent state, one side per direction, and SSAMBA's paired layers call "
        "their branches, not the blocks whose calls VPT rewrites",
    }
    placement = "prompt"
    deep: bool = False

    def __init__(self, length: int = 10, dropout: float = 0.0) -> None:
        if int(length) < 1:
            raise ModelError(f"{self.name}: length must be at least 1, got {length}")
        self.length = int(length)
        self.dropout = float(dropout)

    def inject(self, backbone: nn.Module, task_id: int) -> list[nn.Parameter]:
        self._blocks = [name for name, _ in self._found(backbone)]
        return super().inject(backbone, task_id)

    def _found(self, backbone: nn.Module) -> list[tuple[str, nn.Module]]:
        found = match_targets(backbone, self.targets_for(backbone))
        for name, block in found:
            params = inspect.signature(block.forward).parameters
            if "num_prefix" not in params:
                raise ModelError(
                    f"{self.name}: {name} ({type(block).__name__}) takes no num_prefix argument; VPT needs blocks "
                    "called as block(x, grid, num_prefix) (the patch-grid backbones)"
                )
        return found

    def create_module(self, backbone: nn.Module, target_name: str, target: nn.Module, task_id: int) -> nn.Module:
        first, last = target_name == self._blocks[0], target_name == self._blocks[-1]
        proj = getattr(getattr(backbone, "patch_embed", None), "proj", None)
        fan_in = math.prod(proj.weight.shape[1:]) if proj is not None else 0
        dim = int(backbone.num_features)
        bound = math.sqrt(6.0 / (fan_in + dim))
        return BlockPrompts(
            dim, self.length, own_prompts=first or self.deep, insert=first, strip=last, init_bound=bound,
            dropout=self.dropout,
        )


@register_pet
class VPTShallowMethod(VPTMethod):
    """VPT-shallow (Jia et al. 2022, Section 3.2): ``length`` prompts inserted before the first block.

    Defaults: ``length=10``, one of the prompt lengths VPT searches for ViT ({1, 5, 10, 50, 100, 200});
    ``dropout=0`` (VPT's and PETL_AST's default). Not the identity at the start (module docstring).

    Parameters per task: ``p D``; ViT-B (p = 10, D = 768): 7 680.
    """

    name = "vpt_shallow"
    deep = False


@register_pet
class VPTDeepMethod(VPTMethod):
    """VPT-deep (Jia et al. 2022, Section 3.2): ``length`` new prompts at every block.

    Defaults as :class:`VPTShallowMethod`. Not the identity at the start (module docstring).

    Parameters per task: ``L p D``; ViT-B (L = 12, p = 10, D = 768): 92 160.
    """

    name = "vpt_deep"
    deep = True
