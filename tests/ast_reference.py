"""Re-creations of the public AST and SSAST ``ASTModel`` code, small, for the converter tests (no download).

Read from github:YuanGongND/ast and github:YuanGongND/ssast, ``src/models/ast_models.py``: the model wraps a timm
DeiT as ``self.v`` (timm 0.4.5 there; timm 1.x here, whose ViT / DeiT key names are the same), replaces its patch
embedding by a bare ``proj`` (a 1-channel Conv2d with strides (fstride, tstride)), owns a learned position
embedding over its (F', T') grid plus the prefix tokens, and runs ``x.unsqueeze(1).transpose(2, 3)`` ->
``v.patch_embed`` -> prefix tokens -> ``+ v.pos_embed`` -> ``v.blocks`` -> ``v.norm`` -> pooling -> ``mlp_head``.
The position-embedding adaptation to another length is written here as each repository writes it, independently
of ``audio_ticl.models.pos_embed``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from timm.models.deit import VisionTransformerDistilled
from timm.models.vision_transformer import VisionTransformer
from torch import nn


class PatchEmbed(nn.Module):
    """AST's / SSAST's override of timm's PatchEmbed: ``proj(x).flatten(2).transpose(1, 2)``, no size checks."""

    def __init__(self, proj: nn.Conv2d) -> None:
        super().__init__()
        self.proj = proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


def redraw(model: nn.Module, seed: int = 0) -> nn.Module:
    """Re-draw every parameter (timm's init leaves CLS ~0 and biases 0, which would hide mistakes)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dtype.is_floating_point and p.requires_grad:
                unit = 1.0 if "norm" in name and "weight" in name else 0.0
                p.copy_(torch.randn(p.shape, generator=gen) * 0.1 + unit)
    return model


def grid_of(fdim: int, tdim: int, shape: tuple[int, int], stride: tuple[int, int]) -> tuple[int, int]:
    """``get_shape``: the conv output size of a (fdim, tdim) input."""
    return (fdim - shape[0]) // stride[0] + 1, (tdim - shape[1]) // stride[1] + 1


def make_v(dim: int, depth: int, heads: int, distilled: bool, shape: tuple[int, int], stride: tuple[int, int],
           grid: tuple[int, int]) -> nn.Module:
    """timm's (distilled) DeiT with AST's patch embedding and a position embedding for ``grid``."""
    cls = VisionTransformerDistilled if distilled else VisionTransformer
    v = cls(img_size=32, patch_size=16, embed_dim=dim, depth=depth, num_heads=heads, num_classes=10)
    v.patch_embed = PatchEmbed(nn.Conv2d(1, dim, kernel_size=shape, stride=stride))
    v.pos_embed = nn.Parameter(torch.zeros(1, (2 if distilled else 1) + grid[0] * grid[1], dim))
    return v


def run_v(v: nn.Module, x: torch.Tensor, n_prefix: int) -> torch.Tensor:
    """The shared body of AST's forward and SSAST's finetuning*: (B, T, F) -> final-normed tokens."""
    x = x.unsqueeze(1).transpose(2, 3)
    x = v.patch_embed(x)
    prefix = [v.cls_token] + ([v.dist_token] if n_prefix == 2 else [])
    x = torch.cat([p.expand(x.shape[0], -1, -1) for p in prefix] + [x], dim=1)
    x = v.pos_drop(x + v.pos_embed)
    for blk in v.blocks:
        x = blk(x)
    return v.norm(x)


class ASTModel(nn.Module):
    """AST (Gong et al. 2021) as saved in the AudioSet checkpoint: ``v`` (DeiT-distilled) and ``mlp_head``."""

    def __init__(self, dim=64, depth=2, heads=4, label_dim=7, fstride=10, tstride=10, input_fdim=128,
                 input_tdim=136) -> None:
        super().__init__()
        self.grid = grid_of(input_fdim, input_tdim, (16, 16), (fstride, tstride))
        self.v = make_v(dim, depth, heads, True, (16, 16), (fstride, tstride), self.grid)
        self.mlp_head = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, label_dim))

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        x = run_v(self.v, x, 2)
        return (x[:, 0] + x[:, 1]) / 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp_head(self.pooled(x))

    def finetuned_at(self, input_tdim: int, fstride=10, tstride=10) -> ASTModel:
        """``ASTModel(audioset_pretrain=True, input_tdim=...)``: the same weights, the position grid adapted."""
        new = ASTModel(self.v.embed_dim, len(self.v.blocks), self.v.blocks[0].attn.num_heads,
                       self.mlp_head[1].out_features, fstride, tstride, 128, input_tdim)
        state = {k: v for k, v in self.state_dict().items() if k != "v.pos_embed"}
        new.load_state_dict(state, strict=False)
        new.v.pos_embed = nn.Parameter(ast_adapt(self.v.pos_embed.detach(), 2, self.grid, new.grid))
        return new.eval()


def ast_adapt(pos: torch.Tensor, n_prefix: int, old: tuple[int, int], new: tuple[int, int]) -> torch.Tensor:
    """AST's audioset_pretrain branch (written there for 12 x 101): time first, then frequency.

    Time: crop from the middle (``old_t//2 - new_t//2``) when it shrinks, else bilinear to (old_f, new_t);
    frequency: crop from the middle when it shrinks, bilinear to (new_f, new_t) when it grows.
    """
    (of, ot), (nf, nt), d = old, new, pos.shape[2]
    g = pos[:, n_prefix:].reshape(1, of * ot, d).transpose(1, 2).reshape(1, d, of, ot)
    if nt < ot:
        g = g[:, :, :, ot // 2 - nt // 2: ot // 2 - nt // 2 + nt]
    else:
        g = F.interpolate(g, size=(of, nt), mode="bilinear")
    if nf < of:
        g = g[:, :, of // 2 - nf // 2: of // 2 - nf // 2 + nf, :]
    elif nf > of:
        g = F.interpolate(g, size=(nf, nt), mode="bilinear")
    return torch.cat([pos[:, :n_prefix], g.reshape(1, d, nf * nt).transpose(1, 2)], dim=1)


class SSASTModel(nn.Module):
    """SSAST (Gong et al. 2022) at ``pretrain_stage=True``: ``v``, ``p_input_*dim``, the pretraining heads."""

    def __init__(self, dim=64, depth=2, heads=4, fshape=16, tshape=16, input_fdim=128, input_tdim=128,
                 distilled=True) -> None:
        super().__init__()
        self.cls_token_num = 2 if distilled else 1
        self.fshape, self.tshape = fshape, tshape
        self.p_f_dim, self.p_t_dim = grid_of(input_fdim, input_tdim, (fshape, tshape), (fshape, tshape))
        self.v = make_v(dim, depth, heads, distilled, (fshape, tshape), (fshape, tshape), (self.p_f_dim, self.p_t_dim))
        self.p_input_fdim = nn.Parameter(torch.tensor(input_fdim), requires_grad=False)
        self.p_input_tdim = nn.Parameter(torch.tensor(input_tdim), requires_grad=False)
        self.cpredlayer = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 256))
        self.gpredlayer = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 256))
        self.unfold = nn.Unfold(kernel_size=(fshape, tshape), stride=(fshape, tshape))
        self.mask_embed = nn.Parameter(torch.zeros(1, 1, dim))

    def finetuned(self, fstride: int, tstride: int, input_tdim: int, input_fdim: int = 128) -> nn.Module:
        """``ASTModel(pretrain_stage=False, ...)``'s encoder: new strides, grid adapted as SSAST does."""
        v = make_v(self.v.embed_dim, len(self.v.blocks), self.v.blocks[0].attn.num_heads, self.cls_token_num == 2,
                   (self.fshape, self.tshape), (fstride, tstride), (1, 1))
        state = {k: x for k, x in self.v.state_dict().items() if k != "pos_embed"}
        v.load_state_dict(state, strict=False)
        f_dim, t_dim = grid_of(input_fdim, input_tdim, (self.fshape, self.tshape), (fstride, tstride))
        n, d = self.cls_token_num, v.embed_dim
        pos = self.v.pos_embed.detach()
        g = pos[:, n:].reshape(1, self.p_f_dim * self.p_t_dim, d).transpose(1, 2)
        g = g.reshape(1, d, self.p_f_dim, self.p_t_dim)
        if t_dim < self.p_t_dim:
            g = g[:, :, :, self.p_t_dim // 2 - t_dim // 2: self.p_t_dim // 2 - t_dim // 2 + t_dim]
        else:  # SSAST writes size=(8, t_dim): 8 is p_f_dim of its 128-bin patch models, and for frame models
            # (p_f_dim 1) 1 -> 8 -> 1 bilinear rows give back the same row
            g = F.interpolate(g, size=(self.p_f_dim, t_dim), mode="bilinear")
        assert f_dim >= self.p_f_dim  # SSAST's frequency-crop branch (f_dim < p_f_dim) is not exercised
        g = F.interpolate(g, size=(f_dim, t_dim), mode="bilinear")
        v.pos_embed = nn.Parameter(torch.cat([pos[:, :n], g.reshape(1, d, f_dim * t_dim).transpose(1, 2)], dim=1))
        return v.eval()

    def finetuning_avgtok(self, v: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """``finetuningavgtok`` before ``mlp_head``: mean of the patch tokens."""
        return run_v(v, x, self.cls_token_num)[:, self.cls_token_num:].mean(dim=1)
