"""Audio Spectrogram Transformer (AST / SSAST) backbone with interchangeable token mixers.

Input: a (B, T, F) log-mel fbank (T frames, F = 128 mel bins). Overlapping 16x16 patches with strides
(fstride, tstride) give a (F', T') grid of tokens, frequency-major; CLS (and optionally a DeiT distillation token)
is prepended and a learned position embedding added. The model is built for one input length (``input_frames``);
``forward_features(x, pos_embed=...)`` runs any other length whose grid it is given a position embedding for
(``resampled_pos_embed(frames)`` makes one). Pre-norm blocks:

    h = LN1(x);  x = x + mixer(h)
    h = LN2(x);  x = x + MLP(h)

then a final LayerNorm (``forward_features`` returns these tokens) and pooling (``forward_head``): "cls" (CLS
token), "cls_dist" (mean of CLS and distillation token, AST), "mean" (mean of the patch tokens, SSAST).

It follows ``models.protocol.Backbone`` (timm's names). PET modules are not part of the model's code: a PET method
hooks them onto modules by name (``blocks.*.mixer``, ``blocks.*.mlp``, ...), and ``forward_features`` passes the
task id, grid and prefix count to them through the per-forward context (``models.context``).
"""
from __future__ import annotations

import warnings
from typing import Any, Literal

import torch
from torch import nn

from audio_ticl.models.context import ForwardContext, forward_context
from audio_ticl.models.errors import ModelError
from audio_ticl.models.layers import DropPath, Mlp, PatchEmbed
from audio_ticl.models.mixers import create_mixer
from audio_ticl.models.pos_embed import resample_pos_embed
from audio_ticl.models.registry import register_model

__all__ = ["Block", "ASTBackbone", "ast_tiny", "ast_small", "ast_base", "ast_custom"]

Pooling = Literal["cls", "cls_dist", "mean"]
_POOLINGS = ("cls", "cls_dist", "mean")


class Block(nn.Module):
    """Pre-norm transformer block with a pluggable token mixer (PET modules hook onto its submodules by name)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        mixer: str = "gsa",
        drop_path: float = 0.0,
        mixer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.mixer = create_mixer(mixer, dim, num_heads, **(mixer_kwargs or {}))
        self.drop_path1 = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path2 = DropPath(drop_path)

    def forward(self, x: torch.Tensor, grid: tuple[int, int], num_prefix: int) -> torch.Tensor:
        x = x + self.drop_path1(self.mixer(self.norm1(x), grid, num_prefix))
        return x + self.drop_path2(self.mlp(self.norm2(x)))


def _init_weights(module: nn.Module) -> None:
    """timm's ViT init: truncated-normal Linears (std .02) with zero bias, unit LayerNorms."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class ASTBackbone(nn.Module):
    """AST encoder without a head (``models.protocol.Backbone``): ``forward_features`` maps (B, T, F) fbanks to
    (B, P+N, D) tokens, ``forward_head`` pools them, ``forward`` does both."""

    #: PET methods name their targets per family (``models.pet.base``); subclasses with other layers declare theirs
    pet_family = "transformer"

    def __init__(
        self,
        input_frames: int,
        num_mel_bins: int = 128,
        patch_size: int | tuple[int, int] = 16,
        fstride: int = 10,
        tstride: int = 10,
        embed_dim: int = 192,
        depth: int = 12,
        num_heads: int = 3,
        mlp_ratio: float = 4.0,
        mixer: str = "gsa",
        distill_token: bool = False,
        pooling: Pooling = "cls",
        drop_path: float = 0.0,
        mixer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if pooling not in _POOLINGS:
            raise ModelError(f"pooling must be one of {_POOLINGS}, got {pooling!r}")
        if pooling == "cls_dist" and not distill_token:
            raise ModelError("pooling 'cls_dist' needs distill_token=True")
        self.input_frames = int(input_frames)
        self.num_mel_bins = int(num_mel_bins)
        self.embed_dim = self.num_features = embed_dim
        self.mixer_name = mixer
        self.pooling = pooling
        self.num_prefix_tokens = 2 if distill_token else 1

        self.patch_embed = PatchEmbed(embed_dim, patch_size, fstride, tstride)
        self._grid = self.patch_embed.grid_size(self.input_frames, self.num_mel_bins)
        if mixer == "fta" and self._grid[0] == 1:
            raise ModelError(f"mixer 'fta' needs a frequency x time patch grid; this backbone's tokens are frames "
                             f"(grid 1 x {self._grid[1]}), so FTA's row would be every token (global attention) and "
                             "its columns single tokens: use 'gsa'")
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, embed_dim)) if distill_token else None
        self.pos_embed = nn.Parameter(torch.zeros(1, self.num_prefix_tokens + self.num_patches, embed_dim))
        rates = [drop_path * i / (depth - 1) for i in range(depth)] if depth > 1 else [drop_path] * depth
        self.blocks = nn.ModuleList(
            Block(embed_dim, num_heads, mlp_ratio, mixer, rate, mixer_kwargs) for rate in rates
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for p in (self.pos_embed, self.cls_token, self.dist_token):
            if p is not None:
                nn.init.trunc_normal_(p, std=0.02)
        self.apply(_init_weights)

    # ------------------------------------------------------------------------------------------- geometry
    @property
    def patch_grid(self) -> tuple[int, int]:
        """(F', T') patch grid for the configured input size."""
        return self._grid

    @property
    def num_patches(self) -> int:
        return self._grid[0] * self._grid[1]

    def grid_for(self, n_frames: int) -> tuple[int, int]:
        """(F', T') patch grid of an input of ``n_frames`` frames (and this model's mel bins)."""
        try:
            return self.patch_embed.grid_size(int(n_frames), self.num_mel_bins)
        except ValueError as exc:
            raise ModelError(str(exc)) from None

    def resampled_pos_embed(self, n_frames: int, shrink: Literal["crop", "interpolate"] = "crop") -> torch.Tensor:
        """A detached copy of the position embedding resampled to the grid of ``n_frames`` input frames.

        AST's convention (``models.pos_embed.resample_pos_embed``): prefix rows kept, each grid axis centre-cropped
        when it shrinks and bilinearly interpolated when it grows. The model itself is left unchanged; pass the
        result to ``forward_features(x, pos_embed=...)`` to run inputs of that length.
        """
        with torch.no_grad():
            return resample_pos_embed(
                self.pos_embed.detach(), self._grid, self.grid_for(n_frames), self.num_prefix_tokens, shrink
            )

    def resize_pos_embed(self, new_frames: int, shrink: Literal["crop", "interpolate"] = "crop") -> None:
        """Switch the model to ``new_frames`` input frames, resampling the position embedding (prefix kept).

        The position embedding is replaced by a new Parameter: build optimizers after calling this.
        """
        new_grid = self.patch_embed.grid_size(int(new_frames), self.num_mel_bins)
        with torch.no_grad():
            pos = resample_pos_embed(self.pos_embed.data, self._grid, new_grid, self.num_prefix_tokens, shrink)
        self.pos_embed = nn.Parameter(pos, requires_grad=self.pos_embed.requires_grad)
        self.input_frames, self._grid = int(new_frames), new_grid

    # ------------------------------------------------------------------------------------------- forward
    def _check_input(self, x: torch.Tensor) -> None:
        expected = (self.input_frames, self.num_mel_bins)
        if x.ndim != 3 or tuple(x.shape[1:]) != expected:
            raise ModelError(
                f"ASTBackbone expects input (batch, {expected[0]} frames, {expected[1]} mel bins), "
                f"got shape {tuple(x.shape)}"
            )

    def _check_explicit(self, x: torch.Tensor, pos_embed: torch.Tensor) -> tuple[int, int]:
        """Grid of ``x`` (any frame count) checked against an explicitly given position embedding."""
        if x.ndim != 3 or x.shape[2] != self.num_mel_bins:
            raise ModelError(
                f"ASTBackbone expects input (batch, frames, {self.num_mel_bins} mel bins), got shape {tuple(x.shape)}"
            )
        grid = self.grid_for(x.shape[1])
        rows = self.num_prefix_tokens + grid[0] * grid[1]
        if pos_embed.ndim != 3 or pos_embed.shape[0] != 1 or tuple(pos_embed.shape[1:]) != (rows, self.embed_dim):
            raise ModelError(
                f"position embedding of shape {tuple(pos_embed.shape)} does not fit an input of {x.shape[1]} frames: "
                f"its patch grid {grid} with {self.num_prefix_tokens} prefix token(s) needs "
                f"(1, {rows}, {self.embed_dim})"
            )
        return grid

    def forward_features(
        self,
        x: torch.Tensor,
        *,
        task_id: int | None = None,
        pos_embed: torch.Tensor | None = None,
        patch_mask: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """(B, T, F) fbank -> (B, P+N, D) final-normed tokens (prefix first, patches frequency-major).

        ``task_id``: whose PET modules run (None: none), handed to them through the forward context.
        ``pos_embed=None``: the model's own position embedding, and ``x`` must have the configured
        ``input_frames``. Given a ``(1, P + F'*T', D)`` position embedding, ``x`` may have any number of frames:
        the grid (F', T') is derived from ``x``'s shape through the patch geometry and must match it.
        ``patch_mask=(mask, embedding)``: masked-patch pretraining (SSAST); the patch embeddings where ``mask``
        (B, N) is True are replaced by ``embedding`` (1, 1, D) before the position embedding is added.
        """
        if pos_embed is None:
            self._check_input(x)
            grid, pos_embed = self._grid, self.pos_embed
        else:
            grid = self._check_explicit(x, pos_embed)
        with forward_context(ForwardContext(task_id, grid, self.num_prefix_tokens)):
            tokens = self.patch_embed(x)
            if patch_mask is not None:
                mask, embedding = patch_mask
                tokens = torch.where(mask[..., None], embedding.to(tokens.dtype), tokens)
            prefix = [self.cls_token] if self.dist_token is None else [self.cls_token, self.dist_token]
            prefix = torch.cat(prefix, dim=1).expand(tokens.shape[0], -1, -1)
            x = torch.cat([prefix, tokens], dim=1) + pos_embed
            return self.forward_blocks(x, grid)

    def forward_blocks(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        """(B, P+N, D) embedded tokens -> final-normed tokens: the blocks in order, then ``norm``. A backbone with
        another block wiring (SSAMBA's layer pairs) overrides this and keeps everything else."""
        for block in self.blocks:
            x = block(x, grid, self.num_prefix_tokens)
        return self.norm(x)

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = True) -> torch.Tensor:
        """(B, P+N, D) -> (B, D) according to ``pooling``. There is no classifier: ``pre_logits`` changes nothing."""
        if self.pooling == "cls":
            return tokens[:, 0]
        if self.pooling == "cls_dist":
            return (tokens[:, 0] + tokens[:, 1]) / 2
        return tokens[:, self.num_prefix_tokens :].mean(dim=1)

    def forward(self, x: torch.Tensor, task_id: int | None = None) -> torch.Tensor:
        """(B, T, F) fbank -> (B, D) pooled features, with task ``task_id``'s PET modules (None: none)."""
        return self.forward_head(self.forward_features(x, task_id=task_id))

    # ------------------------------------------------------------------------------------------- deprecated
    def forward_tokens(self, x: torch.Tensor, pos_embed: torch.Tensor | None = None) -> torch.Tensor:
        """Deprecated alias of :meth:`forward_features` (timm's name for the tokens); removed in the next release."""
        warnings.warn(
            "ASTBackbone.forward_tokens is deprecated: use forward_features, which now returns the tokens",
            DeprecationWarning,
            stacklevel=2,
        )
        return self.forward_features(x, pos_embed=pos_embed)

    def pool(self, tokens: torch.Tensor) -> torch.Tensor:
        """Deprecated alias of :meth:`forward_head` (timm's name); removed in the next release."""
        warnings.warn("ASTBackbone.pool is deprecated: use forward_head", DeprecationWarning, stacklevel=2)
        return self.forward_head(tokens)


# ----------------------------------------------------------------------------------------------- registry
def _ast(defaults: dict[str, Any], input_frames: int, overrides: dict[str, Any]) -> ASTBackbone:
    """A registered size: its defaults, then any override (geometry included) from the caller."""
    return ASTBackbone(input_frames=input_frames, **{"depth": 12, **defaults, **overrides})


@register_model
def ast_tiny(*, input_frames: int, **kwargs: Any) -> ASTBackbone:
    """AST/SSAST-Tiny: 192-d, 3 heads, depth 12 (~6 M parameters)."""
    return _ast({"embed_dim": 192, "num_heads": 3}, input_frames, kwargs)


@register_model
def ast_small(*, input_frames: int, **kwargs: Any) -> ASTBackbone:
    """AST/SSAST-Small: 384-d, 6 heads, depth 12 (~23 M parameters)."""
    return _ast({"embed_dim": 384, "num_heads": 6}, input_frames, kwargs)


@register_model
def ast_base(*, input_frames: int, **kwargs: Any) -> ASTBackbone:
    """AST/SSAST-Base (ViT-B): 768-d, 12 heads, depth 12 (~87 M parameters)."""
    return _ast({"embed_dim": 768, "num_heads": 12}, input_frames, kwargs)


@register_model
def mfcc_gram(*, input_frames: int, **kwargs: Any) -> ASTBackbone:
    """The MFCC-gram transformer's encoder (Gauy & Finger 2021): 3 layers, d_model 512, 8 heads, d_ff 2048 (MLP
    ratio 4), on MFCC frames: one frame a token with ``patch_size=(n_mfcc, 1)``, ``fstride=n_mfcc``,
    ``tstride=1`` (in a config: ``features.kind: mfcc``, ``model.patch_size: [n_mfcc, 1]``, ``model.fstride: n_mfcc``,
    ``model.tstride: 1``). Departures: pre-norm blocks, a CLS token and a learned position
    embedding (AST's layout, so every strategy and PET method of the suite applies), where the paper's
    Mockingjay-style encoder is post-norm with sinusoidal positions."""
    return _ast({"embed_dim": 512, "num_heads": 8, "depth": 3}, input_frames, kwargs)


@register_model
def ast_custom(*, input_frames: int, embed_dim: int, depth: int, num_heads: int, **kwargs: Any) -> ASTBackbone:
    """AST with explicit width, depth and heads (tiny test models, ablations)."""
    return ASTBackbone(input_frames=input_frames, embed_dim=embed_dim, depth=depth, num_heads=num_heads, **kwargs)
