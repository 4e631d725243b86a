"""Resampling of learned position embeddings between patch grids (AST / SSAST conventions).

A backbone trained at one clip length is reused at another: prefix-token embeddings are kept, the patch part
is viewed as a (D, F', T') map and each axis is centre-cropped when it shrinks (AST's choice, which keeps the
embeddings the model actually learned) or bilinearly interpolated when it grows. ``shrink="interpolate"``
interpolates in both directions instead.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange

from audio_ticl.models.errors import ModelError

__all__ = ["resample_pos_embed"]


def _centre_crop(x: torch.Tensor, size: int, dim: int) -> torch.Tensor:
    # AST's offset, old//2 - new//2, so converted AST / ImageNet checkpoints load exactly as AST loads them; it
    # differs from (old - new)//2 by one when old is even and new odd (24 -> 9 time columns at 101 frames).
    start = x.shape[dim] // 2 - size // 2
    return x.narrow(dim, start, size)


def resample_pos_embed(
    pos: torch.Tensor,
    old_grid: tuple[int, int],
    new_grid: tuple[int, int],
    num_prefix: int,
    shrink: Literal["crop", "interpolate"] = "crop",
) -> torch.Tensor:
    """(1, P + F*T, D) position embedding for grid ``old_grid`` -> (1, P + F'*T', D) for ``new_grid``."""
    old_f, old_t = old_grid
    new_f, new_t = new_grid
    if pos.ndim != 3 or pos.shape[1] != num_prefix + old_f * old_t:
        raise ModelError(
            f"position embedding of shape {tuple(pos.shape)} does not match grid {tuple(old_grid)} with "
            f"{num_prefix} prefix tokens (expected (1, {num_prefix + old_f * old_t}, D))"
        )
    if shrink not in ("crop", "interpolate"):
        raise ModelError(f"shrink must be 'crop' or 'interpolate', got {shrink!r}")
    if tuple(old_grid) == tuple(new_grid):
        return pos.clone()
    prefix, patches = pos[:, :num_prefix], pos[:, num_prefix:]
    grid = rearrange(patches, "1 (f t) d -> 1 d f t", f=old_f, t=old_t)
    for dim, new in ((2, new_f), (3, new_t)):
        old = grid.shape[dim]
        if new < old and shrink == "crop":
            grid = _centre_crop(grid, new, dim)
        elif new != old:
            size = (new, grid.shape[3]) if dim == 2 else (grid.shape[2], new)
            grid = F.interpolate(grid, size=size, mode="bilinear", align_corners=False)
    patches = rearrange(grid, "1 d f t -> 1 (f t) d")
    return torch.cat([prefix, patches], dim=1).contiguous()
