"""Bidirectional Mamba mixer, Vision Mamba's "bimamba v2" (Zhu et al. 2024, Sec. 3.3 and Alg. 1), as SSAMBA uses it
(Shams et al. 2024): a sequence mixer with the token mixers' signature ``(x, grid, num_prefix)``.

One layer, for tokens x of width D (E = expand * D, N = d_state, R = dt_rank = ceil(D / 16)):

    x, z = in_proj(x).chunk(2)                       # D -> 2E, no bias; each (B, E, L)
    for each direction (forward; backward on the flipped sequence, flipped back after):
        u = silu(causal depthwise conv1d(x))          # kernel d_conv, its own weights per direction
        dt, B, C = x_proj(u).split(R, N, N)          # E -> R + 2N, no bias
        dt = dt_proj(dt)                              # R -> E, with its bias (mamba-ssm: delta_bias in the scan)
        y = selective_scan(u, dt, -exp(A_log), B, C, D, z, softplus)
    out = out_proj((y_forward + y_backward) / 2)     # shared, no bias

Parameter names are Vim's (``conv1d``/``conv1d_b``, ``x_proj``/``x_proj_b``, ``dt_proj``/``dt_proj_b``,
``A_log``/``A_b_log``, ``D``/``D_b``), so SSAMBA checkpoints load by name. The grid is not used: a Mamba layer sees
the tokens as one sequence, prefix (CLS) first.

``reverse=True`` computes ``flip(mixer(flip(x)))`` without flipping the layer's input or output: the forward
direction's parameters scan the sequence from its end, the backward's from its start. SSAMBA's second layer of a
pair runs this way, so every module around the mixer (norm, PET adapters on the patch grid) sees the tokens in
their own order. dt_proj is called as a module (its bias added there, not inside the scan as mamba-ssm's
``delta_bias``; the same sum), so a PET method can hook it.

Initialisation is Mamba's (Gu & Dao 2023, Sec. 3.6 and its code): S4D-real A (A_n = -(n + 1)), D = 1, dt_proj's
bias set so that softplus(bias) lies log-uniformly in [dt_min, dt_max] = [1e-3, 0.1], its weight uniform in
+-R^-0.5.
"""
from __future__ import annotations

import math

import torch
from einops import rearrange, repeat
from torch import nn

from audio_ticl.models import mamba_cuda
from audio_ticl.models.selective_scan import ScanBackend, scan_backend_for, selective_scan

__all__ = ["BiMambaMixer"]


class BiMambaMixer(nn.Module):
    """Bidirectional Mamba ("bimamba v2") on (B, L, D) tokens; ``scan`` picks the selective-scan backend."""

    def __init__(
        self,
        dim: int,
        num_heads: int | None = None,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        dt_min: float = 1e-3,
        dt_max: float = 0.1,
        dt_init_floor: float = 1e-4,
        conv_bias: bool = True,
        bias: bool = False,
        divide_out: bool = True,
        scan: ScanBackend = "auto",
    ) -> None:
        super().__init__()
        del num_heads  # the token mixers' signature; a Mamba layer has no heads
        self.dim, self.d_state, self.d_conv = dim, d_state, d_conv
        self.d_inner = expand * dim
        self.dt_rank = math.ceil(dim / 16)
        self.divide_out = divide_out
        self.scan: ScanBackend = scan
        inner, rank = self.d_inner, self.dt_rank
        self.in_proj = nn.Linear(dim, 2 * inner, bias=bias)
        for suffix in ("", "_b"):
            conv = nn.Conv1d(inner, inner, d_conv, groups=inner, padding=d_conv - 1, bias=conv_bias)
            setattr(self, f"conv1d{suffix}", conv)
            setattr(self, f"x_proj{suffix}", nn.Linear(inner, rank + 2 * d_state, bias=False))
            setattr(self, f"dt_proj{suffix}", nn.Linear(rank, inner, bias=True))
            a_name = "A_log" if suffix == "" else "A_b_log"
            setattr(self, a_name, nn.Parameter(torch.empty(inner, d_state)))
            setattr(self, f"D{suffix}", nn.Parameter(torch.empty(inner)))
        self.out_proj = nn.Linear(inner, dim, bias=bias)
        self._dt_range = (dt_min, dt_max, dt_init_floor)
        self.reset_ssm_parameters()

    def reset_ssm_parameters(self) -> None:
        """Mamba's initialisation of A, D and dt_proj (both directions); the Linears keep PyTorch's."""
        dt_min, dt_max, floor = self._dt_range
        with torch.no_grad():
            for dt_proj, a_log, d in ((self.dt_proj, self.A_log, self.D), (self.dt_proj_b, self.A_b_log, self.D_b)):
                std = self.dt_rank**-0.5
                nn.init.uniform_(dt_proj.weight, -std, std)
                dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
                dt = dt.clamp(min=floor)
                dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)
                a_log.copy_(torch.log(repeat(torch.arange(1, self.d_state + 1, dtype=torch.float32), "n -> e n",
                                             e=self.d_inner)))
                d.fill_(1.0)

    def _direction(self, x: torch.Tensor, z: torch.Tensor, conv: nn.Conv1d, x_proj: nn.Linear, dt_proj: nn.Linear,
                   a_log: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
        """One direction's scan on (B, E, L) x and z -> (B, E, L)."""
        u = mamba_cuda.conv_silu(conv, x)  # causal: the left padding's outputs only
        x_dbl = x_proj(rearrange(u, "b e l -> b l e"))
        dt, b, c = torch.split(x_dbl, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = rearrange(dt_proj(dt), "b l e -> b e l")
        b, c = (rearrange(t, "b l n -> b n l") for t in (b, c))
        return selective_scan(u, delta, -torch.exp(a_log.float()), b, c, d.float(), z, delta_softplus=True,
                              backend=self.scan)

    def forward(self, x: torch.Tensor, grid: tuple[int, int] | None = None, num_prefix: int = 0,
                reverse: bool = False) -> torch.Tensor:
        """(B, L, D) -> (B, L, D); ``grid`` and ``num_prefix`` are accepted for the mixers' signature and unused.
        ``reverse``: ``flip(self(flip(x)))``, computed without flipping ``x`` (see the module docstring)."""
        xz = rearrange(self.in_proj(x), "b l e -> b e l")
        forward = (self.conv1d, self.x_proj, self.dt_proj, self.A_log, self.D)
        backward = (self.conv1d_b, self.x_proj_b, self.dt_proj_b, self.A_b_log, self.D_b)
        natural, flipped = (backward, forward) if reverse else (forward, backward)
        fused = self._fused_inner(x.device)
        if fused is not None:
            return self._forward_fused(fused, xz, natural, flipped)
        u, z = xz.chunk(2, dim=1)
        y_natural = self._direction(u, z, *natural)
        y = y_natural + self._direction(u.flip(-1), z.flip(-1), *flipped).flip(-1)
        if self.divide_out:
            y = y / 2
        return self.out_proj(rearrange(y, "b e l -> b l e"))

    def _fused_inner(self, device: torch.device) -> object | None:
        """mamba-ssm's ``mamba_inner_fn`` where the scan runs on mamba-ssm (CUDA), it imports and none of the
        modules it fuses is hooked (``models.mamba_cuda``); else None (the module path)."""
        if scan_backend_for(device, self.scan) != "cuda":
            return None
        fused = mamba_cuda.mamba_inner()
        bypassed = (self.conv1d, self.conv1d_b, self.x_proj, self.x_proj_b, self.dt_proj, self.dt_proj_b,
                    self.out_proj)
        return None if fused is None or mamba_cuda.hooked(*bypassed) else fused

    def _forward_fused(self, fused, xz: torch.Tensor, natural: tuple, flipped: tuple) -> torch.Tensor:
        """Both directions by ``mamba_inner_fn`` (out_proj included, its bias added once after the sum), as Vim's
        bimamba v2 runs on CUDA."""

        def direction(xz_dir: torch.Tensor, conv, x_proj, dt_proj, a_log, d) -> torch.Tensor:
            return fused(xz_dir, conv.weight, conv.bias, x_proj.weight, dt_proj.weight, self.out_proj.weight, None,
                         -torch.exp(a_log.float()), None, None, d.float(), delta_bias=dt_proj.bias.float(),
                         delta_softplus=True)

        out = direction(xz, *natural) + direction(xz.flip(-1), *flipped).flip(1)
        if self.divide_out:
            out = out / 2
        return out if self.out_proj.bias is None else out + self.out_proj.bias

    def extra_repr(self) -> str:
        return (f"dim={self.dim}, d_inner={self.d_inner}, d_state={self.d_state}, dt_rank={self.dt_rank}, "
                f"d_conv={self.d_conv}, scan={self.scan!r}")
