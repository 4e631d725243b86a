"""Token mixers: interchangeable attention modules with one forward signature.

``forward(x: (B, P+N, D), grid: (F', T'), num_prefix: P) -> (B, P+N, D)``; the first P tokens are prefix tokens,
the N = F'*T' patch tokens follow frequency-major. Every mixer owns ``qkv`` (Linear D -> 3D) and ``proj``
(Linear D -> D), so pretrained ViT weights load into either one unchanged.

``attend(q, k, v, grid, num_prefix)`` is a mixer's attention op alone on (B, H, P+N, hd) tensors, the part that
differs between mixers; ``forward`` is qkv -> ``attend`` -> proj, so ``ticl efficiency --scope op`` can time the
op of any registered mixer through ``MIXERS``.
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
    materialized_attention,
)
from audio_ticl.models.errors import ModelError, UnknownNameError

__all__ = [
    "TokenMixer",
    "GlobalSelfAttention",
    "FrequencyTimeAttention",
    "MaterializedSelfAttention",
    "MIXERS",
    "create_mixer",
    "criss_cross_mask",
    "fta_dense_reference",
    "frequency_time_attention",
    "global_attention",
    "materialized_attention",
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

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grid: tuple[int, int], num_prefix: int
    ) -> torch.Tensor:
        """The attention op alone: (B, H, P+N, hd) q, k, v -> (B, H, P+N, hd). What a subclass defines."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor, grid: tuple[int, int], num_prefix: int) -> torch.Tensor:
        _check_grid(x.shape[1], grid, num_prefix)
        q, k, v = rearrange(self.qkv(x), "b l (s h d) -> s b h l d", s=3, h=self.num_heads).unbind(0)
        out = self.attend(q, k, v, grid, num_prefix)
        return self.proj(rearrange(out, "b h l d -> b l (h d)"))

    def extra_repr(self) -> str:
        return f"dim={self.dim}, num_heads={self.num_heads}"


class GlobalSelfAttention(TokenMixer):
    """GSA: every token attends to every token (fused SDPA), the ViT / AST baseline."""

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grid: tuple[int, int], num_prefix: int
    ) -> torch.Tensor:
        return global_attention(q, k, v, scale=self.scale)


class MaterializedSelfAttention(TokenMixer):
    """GSA computed with the explicit (B, H, L, L) score matrix, as SSAST's and AI-CL's public code does.

    The same function as ``gsa`` (same weights, same outputs up to rounding); it exists so that the memory the
    papers compare against can be measured beside fused SDPA, the honest baseline (``ticl efficiency``).
    """

    #: ``ticl efficiency`` skips a case whose (B, H, L, L) maps would not fit (``benchmark.efficiency.fit``)
    materializes_scores = True

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grid: tuple[int, int], num_prefix: int
    ) -> torch.Tensor:
        return materialized_attention(q, k, v, scale=self.scale)


class FrequencyTimeAttention(TokenMixer):
    """FTA (AI-CL): patch tokens attend their frequency row, time column and the prefix tokens; factorized.

    ``impl``: "auto" (this package's fused kernel for CPU float32, ATen's CPU flash ops for other CPU dtypes, the
    portable einsum elsewhere), "kernel", "flash" or "einsum"; see ``models.attention``.
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True, impl: FTAImpl = "auto") -> None:
        super().__init__(dim, num_heads, qkv_bias)
        self.impl: FTAImpl = impl

    def attend(
        self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grid: tuple[int, int], num_prefix: int
    ) -> torch.Tensor:
        return frequency_time_attention(q, k, v, grid, num_prefix, scale=self.scale, impl=self.impl)

    def forward(self, x: torch.Tensor, grid: tuple[int, int], num_prefix: int) -> torch.Tensor:
        """``attend`` on the packed qkv layout: the same kernels (``_fta_forward`` / ``_fta_backward``, or the
        einsum path), but one copy into head-major buffers and one back in the backward instead of autograd
        splitting and re-stacking q, k and v (a test checks that both give identical bits)."""
        out = frequency_time_attention_packed(
            self.qkv(x), self.num_heads, grid, num_prefix, scale=self.scale, impl=self.impl
        )
        return self.proj(out)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, impl={self.impl!r}"


MIXERS: dict[str, Callable[..., TokenMixer]] = {
    "gsa": GlobalSelfAttention,
    "fta": FrequencyTimeAttention,
    "gsa_materialized": MaterializedSelfAttention,
}


def create_mixer(name: str, dim: int, num_heads: int, **kwargs) -> TokenMixer:
    """Build the mixer registered as ``name`` (see ``MIXERS``)."""
    try:
        cls = MIXERS[name]
    except KeyError:
        raise UnknownNameError(f"unknown token mixer {name!r}; choose one of {sorted(MIXERS)}") from None
    return cls(dim, num_heads, **kwargs)
