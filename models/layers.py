"""Small building blocks shared by the backbones: patch embedding, MLP, activations, stochastic depth."""
from __future__ import annotations

import torch
from einops import rearrange
from torch import nn

__all__ = ["PatchEmbed", "Mlp", "QuickGELU", "DropPath"]


class PatchEmbed(nn.Module):
    """Overlapping 16x16 patches of a (frames, mel bins) fbank, as AST: one Conv2d with 1 input channel.

    ``patch_size`` is one side (square patches) or ``(frequency, time)``, e.g. SSAST's 128 x 2 frame patches.

    The fbank is turned so that frequency is the image height and time the width; the conv strides are
    ``(fstride, tstride)``. Tokens come out frequency-major, ``b d f t -> b (f t) d``, which is the order every
    mixer and PET module in this package assumes.
    """

    def __init__(
        self, embed_dim: int, patch_size: int | tuple[int, int] = 16, fstride: int = 10, tstride: int = 10
    ) -> None:
        super().__init__()
        shape = (patch_size, patch_size) if isinstance(patch_size, int) else tuple(int(s) for s in patch_size)
        if len(shape) != 2:
            raise ValueError(f"patch_size must be an int or (frequency, time), got {patch_size!r}")
        #: (frequency, time) extent of a patch
        self.patch_shape: tuple[int, int] = (shape[0], shape[1])
        #: the side of a square patch, or the (frequency, time) pair
        self.patch_size: int | tuple[int, int] = shape[0] if shape[0] == shape[1] else self.patch_shape
        self.fstride = fstride
        self.tstride = tstride
        self.proj = nn.Conv2d(1, embed_dim, kernel_size=self.patch_shape, stride=(fstride, tstride))

    def grid_size(self, n_frames: int, n_mels: int) -> tuple[int, int]:
        """(F', T') patch grid for an input of ``n_frames`` x ``n_mels``."""
        pf, pt = self.patch_shape
        if n_frames < pt or n_mels < pf:
            raise ValueError(
                f"input of {n_frames} frames x {n_mels} mel bins is smaller than one patch "
                f"({pf} mel bins x {pt} frames)"
            )
        return (n_mels - pf) // self.fstride + 1, (n_frames - pt) // self.tstride + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, F) fbank -> (B, F'*T', D) tokens, frequency-major."""
        x = rearrange(x, "b t f -> b 1 f t")
        x = self.proj(x)
        return rearrange(x, "b d f t -> b (f t) d")


class Mlp(nn.Module):
    """Transformer feed-forward: fc1, GELU, fc2 (timm's Mlp without dropout)."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class QuickGELU(nn.Module):
    """x * sigmoid(1.702 x): the GELU approximation of CLIP, used by the AI-CL / Convpass adapters."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class DropPath(nn.Module):
    """Stochastic depth: drop a whole residual branch per sample while training, identity otherwise."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"drop_path must be in [0, 1), got {drop_prob}")
        self.drop_prob = drop_prob

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask.div_(keep)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"
