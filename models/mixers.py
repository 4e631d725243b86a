"""Token mixers: interchangeable attention modules with one forward signature.

``forward(x: (B, P+N, D), grid: (F', T'), num_prefix: P) -> (B, P+N, D)``; the first P tokens are prefix tokens,
the N = F'*T' patch tokens follow frequency-major. Every mixer owns ``qkv`` (Linear D -> 3D) and ``proj``
(Linear D -> D), so pretrained ViT weights load into either one unchanged.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
from einops import rearrange
from torch import nn

from audio_ticl.models.attention import (
    FTAImpl,
    _check_grid,
    criss_cross_mask,
    frequency_time_attention,
    frequency_time_attention_packed,
    fta_dense_reference,
    global_attention,
)
from audio_ticl.models.errors import ModelError, UnknownNameError

__all__ = [
    "TokenMixer",
    "GlobalSelfAttention",
    "FrequencyTimeAttention",
    "MIXERS",
    "create_mixer",
    "criss_cross_mask",
    "fta_dense_reference",
    "frequency_time_attention",
    "global_attention",
]


class TokenMixer(nn.Module):
    """Base: multi-head qkv / proj Linears; subclasses choose which (query, key) pairs interact."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ModelError(f"embed dim {dim} is not divisible by num_heads {num_heads}")
        self.dim = dim
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim**-0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, grid: tuple[int, int], num_prefix: int) -> torch.Tensor:
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}"


class GlobalSelfAttention(TokenMixer):
    """GSA: every token attends to every token (fused SDPA), the ViT / AST baseline."""

    def forward(self, x: torch.Tensor, grid: tuple[int, int], num_prefix: int) -> torch.Tensor:
        _check_grid(x.shape[1], grid, num_prefix)
        q, k, v = rearrange(self.qkv(x), "b l (s h d) -> s b h l d", s=3, h=self.num_heads).unbind(0)
        out = global_attention(q, k, v, scale=self.scale)
        return self.proj(rearrange(out, "b h l d -> b l (h d)"))


class FrequencyTimeAttention(TokenMixer):
    """FTA (AI-CL): patch tokens attend their frequency row, time column and the prefix tokens; factorized.

    ``impl``: "auto" (fused CPU kernels on CPU, portable einsum elsewhere), "flash" or "einsum".
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, impl: FTAImpl = "auto") -> None:
        super().__init__(dim, num_heads, qkv_bias)
        self.impl: FTAImpl = impl

    def forward(self, x: torch.Tensor, grid: tuple[int, int], num_prefix: int) -> torch.Tensor:
        out = frequency_time_attention_packed(
            self.qkv(x), self.num_heads, grid, num_prefix, scale=self.scale, impl=self.impl
        )
        return self.proj(out)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, impl={self.impl!r}"


MIXERS: dict[str, Callable[..., TokenMixer]] = {
    "gsa": GlobalSelfAttention,
    "fta": FrequencyTimeAttention,
}


def create_mixer(name: str, dim: int, num_heads: int, **kwargs) -> TokenMixer:
    """Build the mixer registered as ``name`` (see ``MIXERS``)."""
    try:
        cls = MIXERS[name]
    except KeyError:
        raise UnknownNameError(f"unknown token mixer {name!r}; choose one of {sorted(MIXERS)}") from None
    return cls(dim, num_heads, **kwargs)
