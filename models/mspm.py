"""SSAST's masked spectrogram patch modelling (MSPM; Gong, Lai, Chung, Glass, AAAI 2022, Sec. 2.2), for any
backbone of this package's protocol (AST patch or frame models, SSAMBA).

Per clip, M patches are masked: their patch embeddings are replaced by one learnable ``mask_embed`` before the
position embedding, and the encoder's outputs at those positions go to two heads, each ``Linear(D, D), ReLU,
Linear(D, P)`` with P the values of one patch (256 for 16 x 16 and for 128 x 2):

* discriminative (``cpredlayer``): InfoNCE among the masked patches of the same clip: prediction m must pick its
  own patch's values out of the clip's M masked patches (softmax over the M dot products);
* generative (``gpredlayer``): the mean squared error to the masked patches' values.

SSAST's joint objective runs the two as two forward passes with their own masks, ``NCE + 10 x MSE``
(``pretrain_joint``). Patch models mask clusters: a seed patch and its c x c neighbourhood, c drawn once per clip
from {3, 4, 5}, until M patches are masked; frame models (one frequency row) mask M random frames. Pretraining
patches do not overlap (strides equal to the patch), as in SSAST.

Departures from SSAST's code, on purpose: its cluster neighbourhoods wrap from the end of one frequency row into
the next (index arithmetic ``start + T' i + j``) and never mask patch 0 (``mask_cand > 0``), and it trims to M
by the iteration order of a Python set, which favours low indices (low frequencies); here a neighbourhood is
clipped at the grid's borders, every patch can be masked, and the last cluster is trimmed at random.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from audio_ticl.models.errors import ModelError

__all__ = ["neighbourhood", "cluster_mask_ids", "frame_mask_ids", "patch_values", "info_nce", "MSPMHeads", "MSPM",
           "CLUSTER_SIZES", "GENERATIVE_WEIGHT"]

#: SSAST's cluster factor: randrange(3) + 3
CLUSTER_SIZES = (3, 4, 5)
#: SSAST's joint loss: NCE + 10 x MSE
GENERATIVE_WEIGHT = 10.0


def neighbourhood(seed: int, size: int, grid: tuple[int, int]) -> list[int]:
    """The ``size`` x ``size`` patches from ``seed`` towards higher frequency and later time, clipped at the
    grid's borders (frequency-major indices)."""
    rows, cols = grid
    f0, t0 = divmod(seed, cols)
    return [f * cols + t for f in range(f0, min(rows, f0 + size)) for t in range(t0, min(cols, t0 + size))]


def cluster_mask_ids(grid: tuple[int, int], n_mask: int, generator: torch.Generator | None = None,
                     sizes: tuple[int, ...] = CLUSTER_SIZES) -> torch.Tensor:
    """``n_mask`` distinct patch indices (frequency-major) of a ``grid`` = (F', T'), masked in c x c clusters."""
    rows, cols = grid
    total = rows * cols
    if not 1 <= n_mask <= total:
        raise ModelError(f"cannot mask {n_mask} of {total} patches")
    size = sizes[int(torch.randint(len(sizes), (1,), generator=generator))]
    masked = torch.zeros(total, dtype=torch.bool)
    order: list[int] = []
    while len(order) < n_mask:
        seed = int(torch.randint(total, (1,), generator=generator))
        fresh = [i for i in neighbourhood(seed, size, grid) if not masked[i]]
        if len(order) + len(fresh) > n_mask:  # the last cluster: a random part of it, to exactly n_mask
            keep = torch.randperm(len(fresh), generator=generator)[: n_mask - len(order)]
            fresh = [fresh[int(i)] for i in keep]
        for index in fresh:
            masked[index] = True
        order += fresh
    return torch.tensor(sorted(order))


def frame_mask_ids(n_tokens: int, n_mask: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """``n_mask`` distinct random token indices of a frame model (SSAST's ``gen_maskid_frame``)."""
    if not 1 <= n_mask <= n_tokens:
        raise ModelError(f"cannot mask {n_mask} of {n_tokens} frames")
    return torch.randperm(n_tokens, generator=generator)[:n_mask].sort().values


def patch_values(x: torch.Tensor, patch_shape: tuple[int, int]) -> torch.Tensor:
    """(B, T, F) features -> (B, N, pf * pt): each non-overlapping patch's values, frequency-major, in the order
    SSAST's ``unfold`` gives them (the generative head's targets)."""
    spectrogram = rearrange(x, "b t f -> b 1 f t")
    return rearrange(F.unfold(spectrogram, kernel_size=patch_shape, stride=patch_shape), "b p n -> b n p")


def info_nce(predictions: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """SSAST's discriminative loss on (B, M, P) predictions and targets: for every clip, the (M, M) dot products,
    log-softmax over the targets, the mean negative log-probability of the right one; and the accuracy (the
    share of predictions whose best target is their own)."""
    logits = torch.einsum("bmp,bnp->bmn", predictions, targets)
    right = torch.arange(logits.shape[1], device=logits.device).expand(logits.shape[0], -1)
    loss = F.cross_entropy(rearrange(logits, "b m n -> (b m) n"), rearrange(right, "b m -> (b m)"))
    accuracy = (logits.argmax(dim=-1) == right).float().mean()
    return loss, accuracy


class MSPMHeads(nn.Module):
    """SSAST's pretraining parameters beside the encoder: ``mask_embed`` and the two prediction heads."""

    def __init__(self, dim: int, patch_values: int) -> None:
        super().__init__()
        self.mask_embed = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.xavier_normal_(self.mask_embed)  # SSAST's init
        self.cpredlayer = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, patch_values))
        self.gpredlayer = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, patch_values))


class MSPM(nn.Module):
    """A backbone and its MSPM heads; ``forward(x)`` returns the joint loss and the parts
    (``nce``, ``mse``, ``accuracy``). ``n_mask``: patches masked per clip (SSAST: 400 of 512)."""

    def __init__(self, backbone: nn.Module, n_mask: int) -> None:
        super().__init__()
        embed = backbone.patch_embed
        if (embed.fstride, embed.tstride) != tuple(embed.patch_shape):
            raise ModelError(f"MSPM pretrains on non-overlapping patches, as SSAST: strides "
                             f"{(embed.fstride, embed.tstride)} must equal the patch shape {tuple(embed.patch_shape)}")
        grid = tuple(backbone.patch_grid)
        if not 1 <= n_mask < grid[0] * grid[1]:
            raise ModelError(f"n_mask must be between 1 and the {grid[0] * grid[1] - 1} patches of the grid {grid} "
                             f"less one, got {n_mask}")
        self.backbone, self.n_mask, self.grid = backbone, int(n_mask), grid
        self.patch_shape = tuple(embed.patch_shape)
        self.heads = MSPMHeads(backbone.embed_dim, self.patch_shape[0] * self.patch_shape[1])

    @property
    def frame_model(self) -> bool:
        """One frequency row: frames are masked at random instead of in clusters."""
        return self.grid[0] == 1

    def mask_ids(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, M) masked patch indices, one draw per clip."""
        if self.frame_model:
            draws = [frame_mask_ids(self.grid[1], self.n_mask, generator) for _ in range(batch)]
        else:
            draws = [cluster_mask_ids(self.grid, self.n_mask, generator) for _ in range(batch)]
        return torch.stack(draws)

    def masked_outputs(self, x: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """The encoder's outputs (B, M, D) at the masked patches ``ids`` (B, M), their embeddings replaced."""
        mask = torch.zeros(x.shape[0], self.grid[0] * self.grid[1], dtype=torch.bool, device=x.device)
        mask.scatter_(1, ids.to(x.device), True)
        tokens = self.backbone.forward_features(x, patch_mask=(mask, self.heads.mask_embed))
        prefix = self.backbone.num_prefix_tokens
        index = (ids.to(x.device) + prefix)[..., None].expand(-1, -1, tokens.shape[-1])
        return tokens.gather(1, index)

    def _targets(self, values: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """The masked patches' values: ``values`` (B, N, P) of ``patch_values`` at ``ids`` (B, M)."""
        return values.gather(1, ids.to(values.device)[..., None].expand(-1, -1, values.shape[-1]))

    def discriminative(self, x: torch.Tensor, ids: torch.Tensor,
                       values: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """InfoNCE loss and accuracy with masks ``ids`` (SSAST's ``pretrain_mpc``); ``values``: ``x``'s patch
        values when the caller has them."""
        values = patch_values(x, self.patch_shape) if values is None else values
        return info_nce(self.heads.cpredlayer(self.masked_outputs(x, ids)), self._targets(values, ids))

    def generative(self, x: torch.Tensor, ids: torch.Tensor, values: torch.Tensor | None = None) -> torch.Tensor:
        """Mean squared error of the reconstructed masked patches (SSAST's ``pretrain_mpg``)."""
        values = patch_values(x, self.patch_shape) if values is None else values
        return F.mse_loss(self.heads.gpredlayer(self.masked_outputs(x, ids)), self._targets(values, ids))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """SSAST's joint step: two passes with their own masks, ``loss = nce + 10 mse``."""
        values = patch_values(x, self.patch_shape)  # the targets of both passes
        nce, accuracy = self.discriminative(x, self.mask_ids(x.shape[0], generator), values)
        mse = self.generative(x, self.mask_ids(x.shape[0], generator), values)
        return {"loss": nce + GENERATIVE_WEIGHT * mse, "nce": nce.detach(), "mse": mse.detach(),
                "accuracy": accuracy.detach()}
