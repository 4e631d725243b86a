"""The token layout that grid-aware PET modules (ConvPass, the Conformer adapter) convolve over.

A patch backbone's tokens are ``P`` prefix tokens (CLS, distillation) followed by the ``F' x T'`` patch tokens,
frequency-major. A module that convolves over the patch grid splits them, works on the ``(B, C, F', T')`` map,
and joins them back in the same order; this module is that split and join, in one place.
"""
from __future__ import annotations

import torch
from einops import rearrange

from audio_ticl.models.context import ForwardContext
from audio_ticl.models.errors import ModelError

__all__ = ["split_grid", "join_grid"]


def split_grid(z: torch.Tensor, ctx: ForwardContext, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, P+N, C) -> prefix tokens (B, P, C) and the patch map (B, C, F', T') of the running forward's grid."""
    if ctx.grid is None:
        raise ModelError(f"{what} needs a patch grid: it runs on patch backbones only")
    n_freq, n_time = ctx.grid
    patches = rearrange(z[:, ctx.num_prefix :], "b (f t) c -> b c f t", f=n_freq, t=n_time)
    return z[:, : ctx.num_prefix], patches


def join_grid(prefix: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
    """Prefix tokens (B, P, C) and a patch map (B, C, F', T') -> (B, P+N, C) tokens, frequency-major."""
    return torch.cat([prefix, rearrange(patches, "b c f t -> b (f t) c")], dim=1)
