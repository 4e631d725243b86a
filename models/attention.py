"""Attention ops on (B, H, L, hd) tensors: global (dense) attention, fused or materialized, and factorized
Frequency-Time Attention.

Token layout everywhere: ``L = P + N``; the first ``P`` tokens are prefix tokens (CLS, distillation token), the
``N = F' * T'`` patch tokens follow in frequency-major order ``(f t)``.

Frequency-Time Attention (FTA, AI-CL): a patch query at (f, t) attends to the patch keys of its frequency row f
(same f, every t), of its time column t (same t, every f) and to all prefix keys, with ONE softmax over that union;
the query's own key lies in its row and its column and is counted once. Prefix queries attend to every key.

How it is computed, exactly and without ever building an N x N map (cost O(N (F' + T' + P))), three ways:

* ``impl="kernel"``: this package's fused CPU kernel (``models/fta_cpu_kernel.cpp``, float32, built once per machine
  by ``models.fta_kernel``). One task per (head, frequency row) scores the row's T' queries against their row, their
  columns and the prefix keys, takes ONE softmax over the union in a per-thread buffer, and writes the output and the
  joint log-sum-exp. Its backward rebuilds the probabilities from that log-sum-exp (FlashAttention's recipe).
* ``impl="flash"``: ATen's CPU flash attention, twice: the row branch is one call over the (B*H*F') rows, each a
  T' x T' problem; the column branch one call over strided (transposed) views, each an F' x F' problem with the
  diagonal masked to -inf (the self key is counted by the row branch); the prefix keys a tiny (N x P) product; the
  three partial softmaxes merged by their log-sum-exps. The backward calls each branch's flash backward with the
  JOINT output and log-sum-exp, so the per-branch gradients add up to the exact joint gradient (the split-KV trick).
  Those ops are private (``_scaled_dot_product_flash_attention_for_cpu`` and its backward): ``models.cpu_flash``
  probes them once per dtype.
* ``impl="einsum"``: plain autograd, row, column and prefix scores with one joint softmax; any device. It is the
  second reference the tests compare.

``impl="auto"`` takes the kernel for CPU float32 where it was built and passed its probe, else the flash path for CPU
float32/float64/bfloat16 where its probe passed, else einsum. The dense -inf-masked SDPA
(:func:`fta_dense_reference`) is the ground truth every path is tested against.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch.autograd.function import once_differentiable

from audio_ticl.models.cpu_flash import FLASH_DTYPES, cpu_flash_available, flash_backward, flash_forward
from audio_ticl.models.errors import ModelError
from audio_ticl.models.fta_kernel import FTAKernel, fta_kernel, fta_kernel_error

__all__ = [
    "global_attention",
    "materialized_attention",
    "frequency_time_attention",
    "frequency_time_attention_packed",
    "criss_cross_mask",
    "fta_dense_reference",
    "fta_attended_pairs",
    "fta_auto_path",
    "cpu_flash_available",
]

FTAImpl = Literal["auto", "kernel", "flash", "einsum"]

_DIAG_MASKS: dict[tuple[int, torch.dtype, torch.device], torch.Tensor] = {}


# ----------------------------------------------------------------------------------------------- helpers
def _check_grid(length: int, grid: tuple[int, int], num_prefix: int) -> tuple[int, int]:
    n_freq, n_time = int(grid[0]), int(grid[1])
    if n_freq < 1 or n_time < 1 or num_prefix < 0 or num_prefix + n_freq * n_time != length:
        raise ModelError(
            f"token count {length} does not match grid {tuple(grid)} with {num_prefix} prefix tokens "
            f"(expected {num_prefix} + {n_freq}*{n_time} = {num_prefix + n_freq * n_time})"
        )
    return n_freq, n_time


def _diag_mask(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """(n, n) additive mask, -inf on the diagonal: drops the self key from the column branch."""
    key = (n, dtype, device)
    mask = _DIAG_MASKS.get(key)
    if mask is None:
        mask = torch.zeros(n, n, dtype=dtype, device=device)
        mask.fill_diagonal_(-math.inf)
        _DIAG_MASKS[key] = mask
    return mask


def criss_cross_mask(grid: tuple[int, int], num_prefix: int, device: torch.device | None = None) -> torch.Tensor:
    """Boolean (P+N, P+N) mask of the pairs FTA attends (True = attend). For tests and FLOP counting only."""
    n_freq, n_time = grid
    idx = torch.arange(n_freq * n_time, device=device)
    f, t = idx // n_time, idx % n_time
    patch = (f[:, None] == f[None, :]) | (t[:, None] == t[None, :])
    length = num_prefix + n_freq * n_time
    mask = torch.ones(length, length, dtype=torch.bool, device=device)
    mask[num_prefix:, num_prefix:] = patch
    return mask


def fta_attended_pairs(grid: tuple[int, int], num_prefix: int) -> int:
    """Number of (query, key) pairs FTA scores per head: N (F' + T' - 1 + P) + P (P + N)."""
    n_freq, n_time = grid
    n = n_freq * n_time
    return n * (n_freq + n_time - 1 + num_prefix) + num_prefix * (num_prefix + n)


def fta_dense_reference(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, grid: tuple[int, int], num_prefix: int
) -> torch.Tensor:
    """FTA as dense SDPA with the -inf criss-cross mask: O(N^2), the ground truth the fast paths are tested against."""
    mask = criss_cross_mask(grid, num_prefix, device=q.device)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


def global_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None) -> torch.Tensor:
    """Dense softmax attention over all tokens (GSA): (B, H, L, hd) -> (B, H, L, hd)."""
    return F.scaled_dot_product_attention(q, k, v, scale=scale)


def materialized_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float | None = None
) -> torch.Tensor:
    """Dense softmax attention with the full (B, H, L, L) score matrix built explicitly: (B, H, L, hd) -> same.

    The same function as :func:`global_attention`, computed the way SSAST's and AI-CL's public code does
    (``softmax(q k^T * scale) @ v``), so that the memory papers report for "global attention" can be reproduced;
    fused SDPA never stores the L x L map and is the honest baseline.
    """
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale
    return scores.softmax(dim=-1) @ v


# ----------------------------------------------------------------------------------------------- fused CPU path
def _split(x: torch.Tensor, num_prefix: int, n_freq: int, n_time: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(Z, L, hd) -> prefix (Z, P, hd) and patch grid (Z, F, T, hd) views."""
    return x[:, :num_prefix], rearrange(x[:, num_prefix:], "z (f t) d -> z f t d", f=n_freq, t=n_time)


def _fta_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    n_freq: int,
    n_time: int,
    num_prefix: int,
    scale: float,
    need_lse: bool = True,
    kernel: FTAKernel | None = None,
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Fused FTA forward. q, k, v: (Z, L, hd), Z = B*H; writes (B, H, L, hd) ``out`` (unit last stride).

    The patch queries go through ``kernel`` (this package's fused kernel, q, k, v contiguous) or, when it is None,
    ATen's CPU flash attention. Returns what the backward needs: the joint log-sum-exp of the patch queries
    ((Z, N) from the kernel, (Z, F, T) from the flash path; None unless ``need_lse``) and the prefix-query
    probabilities (Z, P, L).
    """
    batch, heads = out.shape[0], out.shape[1]
    p = num_prefix
    if kernel is not None:
        lse = kernel.forward(q, k, v, out, n_freq, n_time, p, scale)
    else:
        lse = _flash_patch_forward(q, k, v, out, n_freq, n_time, p, scale, need_lse)

    # prefix queries: plain softmax over all L keys (P x L, negligible)
    a_pre = None
    if p > 0:
        a_pre = torch.softmax(torch.baddbmm(q.new_empty(()), q[:, :p], k.transpose(1, 2), beta=0.0, alpha=scale), -1)
        out[:, :, :p] = rearrange(torch.bmm(a_pre, v), "(b h) p d -> b h p d", b=batch, h=heads)
    return lse, a_pre


def _flash_patch_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    n_freq: int,
    n_time: int,
    num_prefix: int,
    scale: float,
    need_lse: bool,
) -> torch.Tensor | None:
    """The patch queries through ATen's CPU flash attention: row and column calls merged by log-sum-exp."""
    batch, heads = out.shape[0], out.shape[1]
    p = num_prefix
    _, q_grid = _split(q, p, n_freq, n_time)
    k_pre, k_grid = _split(k, p, n_freq, n_time)
    v_pre, v_grid = _split(v, p, n_freq, n_time)
    out_grid = rearrange(out[:, :, p:], "b h (f t) d -> b h f t d", f=n_freq)  # view

    def per_head(x: torch.Tensor) -> torch.Tensor:  # (Z, ...) -> (B, H, ...) view
        return rearrange(x, "(b h) ... -> b h ...", b=batch, h=heads)

    # row branch: z f t d  (each frequency row is one T x T problem)
    o_row, lse_row = flash_forward(q_grid, k_grid, v_grid, scale=scale)
    partial_lse = [lse_row.unsqueeze(-1)]
    if n_freq > 1:
        # column branch: z t f d views of the same memory (each time column one F x F problem, self masked)
        o_col, lse_col = flash_forward(
            q_grid.transpose(1, 2),
            k_grid.transpose(1, 2),
            v_grid.transpose(1, 2),
            attn_mask=_diag_mask(n_freq, q.dtype, q.device),
            scale=scale,
        )
        o_col = o_col.transpose(1, 2)  # back to z f t d
        partial_lse.append(lse_col.transpose(1, 2).unsqueeze(-1))
    if p > 0:
        # prefix keys: their raw scores are their own log-sum-exps (one key each)
        s_pre = torch.baddbmm(q.new_empty(()), q[:, p:], k_pre.transpose(1, 2), beta=0.0, alpha=scale)
        partial_lse.append(rearrange(s_pre, "z (f t) p -> z f t p", f=n_freq))

    # joint softmax = each branch's softmax weighted by exp(lse_branch - lse_joint) = softmax over branch lses
    stacked = torch.cat(partial_lse, dim=-1)  # z f t (branches)
    lse = torch.logsumexp(stacked, dim=-1) if need_lse else None  # z f t, for the backward only
    weight = per_head(torch.softmax(stacked, dim=-1))  # b h f t (branches)
    torch.mul(per_head(o_row), weight[..., 0:1], out=out_grid)
    if n_freq > 1:
        out_grid.addcmul_(per_head(o_col), weight[..., 1:2])
    if p == 1:
        out_grid.addcmul_(weight[..., -1:], per_head(v_pre).unsqueeze(2))
    elif p > 1:
        out_grid.add_(torch.matmul(weight[..., -p:].to(v_pre.dtype), per_head(v_pre).unsqueeze(2)))
    return lse


def _fta_backward(
    dout: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    a_pre: torch.Tensor | None,
    grads: torch.Tensor,
    n_freq: int,
    n_time: int,
    num_prefix: int,
    scale: float,
    kernel: FTAKernel | None = None,
) -> None:
    """Fused FTA backward; q, k, v, out, dout: (Z, L, hd) (contiguous for ``kernel``). Writes every element of
    ``grads`` (3, Z, L, hd), contiguous: the patch queries' part through ``kernel`` or ATen's flash backward, then
    the prefix queries' part."""
    p = num_prefix
    dq, dk, dv = grads.unbind(0)
    if kernel is not None:
        dsp, pp = kernel.backward(dout, q, k, v, out, lse, dq, dk, dv, n_freq, n_time, p, scale)
        if p > 0:  # prefix keys seen by the patch queries: dK = scale dS^T Q, dV = P^T dO
            dk[:, :p].copy_(torch.bmm(dsp, q[:, p:])).mul_(scale)
            dv[:, :p].copy_(torch.bmm(pp, dout[:, p:]))
    else:
        _flash_patch_backward(dout, q, k, v, out, lse, grads, n_freq, n_time, p, scale)
    if p == 0:
        return

    # prefix queries: plain softmax attention over all keys
    assert a_pre is not None
    q_pre, d_pre = q[:, :p], dout[:, :p]
    da = torch.bmm(d_pre, v.transpose(1, 2))  # z p l
    ds = da.sub_((da * a_pre).sum(-1, keepdim=True)).mul_(a_pre)
    dq[:, :p].copy_(torch.bmm(ds, k)).mul_(scale)
    dk.baddbmm_(ds.transpose(1, 2), q_pre, alpha=scale)
    dv.baddbmm_(a_pre.transpose(1, 2), d_pre)


def _flash_patch_backward(
    dout: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    grads: torch.Tensor,
    n_freq: int,
    n_time: int,
    num_prefix: int,
    scale: float,
) -> None:
    """The patch queries' gradients through ATen's CPU flash backward: all patch rows of ``grads`` and the prefix
    rows of dK and dV (the prefix queries' part is added by the caller)."""
    p = num_prefix
    _, q_grid = _split(q, p, n_freq, n_time)
    k_pre, k_grid = _split(k, p, n_freq, n_time)
    v_pre, v_grid = _split(v, p, n_freq, n_time)
    _, o_grid = _split(out, p, n_freq, n_time)
    _, d_grid = _split(dout, p, n_freq, n_time)
    dq, dk, dv = grads.unbind(0)
    _, dq_grid = _split(dq, p, n_freq, n_time)
    dk_pre, dk_grid = _split(dk, p, n_freq, n_time)
    dv_pre, dv_grid = _split(dv, p, n_freq, n_time)

    # row and column branches: flash backward with the joint output / lse -> exact joint-softmax gradients
    g_row = flash_backward(
        d_grid, q_grid, k_grid, v_grid, o_grid, lse, 0.0, False, scale=scale
    )
    if n_freq > 1:

        def tr(x: torch.Tensor) -> torch.Tensor:
            return x.transpose(1, 2)

        g_col = flash_backward(
            tr(d_grid), tr(q_grid), tr(k_grid), tr(v_grid), tr(o_grid), tr(lse), 0.0, False,
            attn_mask=_diag_mask(n_freq, q.dtype, q.device), scale=scale,
        )
        for target, g_r, g_c in zip((dq_grid, dk_grid, dv_grid), g_row, g_col):
            torch.add(g_r, tr(g_c), out=target)
    else:
        for target, g_r in zip((dq_grid, dk_grid, dv_grid), g_row):
            target.copy_(g_r)
    if p == 0:
        return

    # prefix keys seen by the patch queries (N x P): probabilities rebuilt from the joint lse
    q_flat, d_flat, o_flat = q[:, p:], dout[:, p:], out[:, p:]  # z n d
    a = torch.baddbmm(q.new_empty(()), q_flat, k_pre.transpose(1, 2), beta=0.0, alpha=scale)
    a = a.sub_(rearrange(lse, "z f t -> z (f t) 1")).exp_()  # z n p
    delta = (d_flat * o_flat).sum(-1, keepdim=True)  # z n 1: rowsum(dO * O), the softmax Jacobian term
    ds = torch.bmm(d_flat, v_pre.transpose(1, 2)).sub_(delta).mul_(a)  # z n p (unscaled dS)
    dv_pre.copy_(torch.bmm(a.transpose(1, 2), d_flat))
    dk_pre.copy_(torch.bmm(ds.transpose(1, 2), q_flat)).mul_(scale)
    dq[:, p:].baddbmm_(ds, k_pre, alpha=scale)


class _FTAFunction(torch.autograd.Function):
    """FTA on separate (B, H, L, hd) q, k, v -> (B, H, L, hd); ``kernel`` None takes ATen's flash path."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        n_freq: int,
        n_time: int,
        num_prefix: int,
        scale: float,
        kernel: FTAKernel | None = None,
    ) -> torch.Tensor:
        batch, heads, length, hd = q.shape
        q3, k3, v3 = (rearrange(x, "b h l d -> (b h) l d") for x in (q, k, v))
        if kernel is not None:
            q3, k3, v3 = q3.contiguous(), k3.contiguous(), v3.contiguous()
        out = q.new_empty(batch, heads, length, hd)
        lse, a_pre = _fta_forward(
            q3, k3, v3, out, n_freq, n_time, num_prefix, scale, any(ctx.needs_input_grad), kernel
        )
        ctx.save_for_backward(q3, k3, v3, out, lse, a_pre)
        ctx.dims = (n_freq, n_time, num_prefix, scale)
        ctx.kernel = kernel
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):  # type: ignore[override]
        q3, k3, v3, out, lse, a_pre = ctx.saved_tensors
        n_freq, n_time, num_prefix, scale = ctx.dims
        grads = q3.new_empty(3, *q3.shape)
        _fta_backward(
            rearrange(dout, "b h l d -> (b h) l d").contiguous(), q3, k3, v3, rearrange(out, "b h l d -> (b h) l d"),
            lse, a_pre, grads, n_freq, n_time, num_prefix, scale, ctx.kernel,
        )
        dq, dk, dv = (rearrange(g, "(b h) l d -> b h l d", b=out.shape[0]) for g in grads)
        return dq, dk, dv, None, None, None, None, None


class _FTAPackedFunction(torch.autograd.Function):
    """FTA on a packed qkv projection (B, L, 3*H*hd) -> (B, L, H*hd), the layout the mixer's Linears use.

    One copy into head-major (3, B*H, L, hd) buffers is needed either way; doing it here (instead of letting
    autograd differentiate three strided views) keeps the backward to one copy back into the packed layout.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx,
        qkv: torch.Tensor,
        num_heads: int,
        n_freq: int,
        n_time: int,
        num_prefix: int,
        scale: float,
        kernel: FTAKernel | None = None,
    ) -> torch.Tensor:
        batch, length, _ = qkv.shape
        q3, k3, v3 = rearrange(qkv, "b l (s h d) -> s (b h) l d", s=3, h=num_heads).contiguous()
        hd = q3.shape[-1]
        out = qkv.new_empty(batch, length, num_heads, hd)  # b l h d memory, written through a b h l d view
        lse, a_pre = _fta_forward(
            q3, k3, v3, out.transpose(1, 2), n_freq, n_time, num_prefix, scale, ctx.needs_input_grad[0], kernel
        )
        ctx.save_for_backward(q3, k3, v3, out, lse, a_pre)
        ctx.dims = (num_heads, n_freq, n_time, num_prefix, scale)
        ctx.kernel = kernel
        return rearrange(out, "b l h d -> b l (h d)")

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):  # type: ignore[override]
        q3, k3, v3, out, lse, a_pre = ctx.saved_tensors
        num_heads, n_freq, n_time, num_prefix, scale = ctx.dims

        dout = rearrange(dout, "b l (h d) -> (b h) l d", h=num_heads).contiguous()
        out = rearrange(out, "b l h d -> (b h) l d").contiguous()
        grads = q3.new_empty(3, *q3.shape)
        _fta_backward(dout, q3, k3, v3, out, lse, a_pre, grads, n_freq, n_time, num_prefix, scale, ctx.kernel)
        dqkv = rearrange(grads, "s (b h) l d -> b l (s h d)", h=num_heads)
        return dqkv, None, None, None, None, None, None


# ----------------------------------------------------------------------------------------------- portable path
def _fta_einsum(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, n_freq: int, n_time: int, num_prefix: int, scale: float
) -> torch.Tensor:
    """Portable FTA (any device, plain autograd): row + column + prefix scores, one joint softmax."""
    p = num_prefix
    q_grid = rearrange(q[:, :, p:], "b h (f t) d -> b h f t d", f=n_freq)
    k_grid = rearrange(k[:, :, p:], "b h (f t) d -> b h f t d", f=n_freq)
    v_grid = rearrange(v[:, :, p:], "b h (f t) d -> b h f t d", f=n_freq)
    s_row = torch.einsum("bhftd,bhfsd->bhfts", q_grid, k_grid) * scale
    s_col = torch.einsum("bhftd,bhgtd->bhftg", q_grid, k_grid) * scale
    eye = torch.eye(n_freq, dtype=torch.bool, device=q.device)  # self key already counted in its row
    s_col = s_col.masked_fill(rearrange(eye, "f g -> f 1 g"), -math.inf)
    s_pre = torch.einsum("bhftd,bhpd->bhftp", q_grid, k[:, :, :p]) * scale
    attn = torch.softmax(torch.cat([s_pre, s_row, s_col], dim=-1), dim=-1)
    a_pre, a_row, a_col = attn.split([p, n_time, n_freq], dim=-1)
    o_grid = (
        torch.einsum("bhfts,bhfsd->bhftd", a_row, v_grid)
        + torch.einsum("bhftg,bhgtd->bhftd", a_col, v_grid)
        + torch.einsum("bhftp,bhpd->bhftd", a_pre, v[:, :, :p])
    )
    o_grid = rearrange(o_grid, "b h f t d -> b h (f t) d")
    if p == 0:
        return o_grid
    o_pre = F.scaled_dot_product_attention(q[:, :, :p], k, v, scale=scale)
    return torch.cat([o_pre, o_grid], dim=2)


def _fused_backend(x: torch.Tensor, impl: FTAImpl) -> tuple[bool, FTAKernel | None]:
    """(use a fused CPU path, the kernel to use or None for ATen's flash ops) for ``impl`` on tensors like ``x``."""
    if impl not in ("auto", "kernel", "flash", "einsum"):
        raise ModelError(f"FTA impl must be 'auto', 'kernel', 'flash' or 'einsum', got {impl!r}")
    if impl == "einsum":
        return False, None
    on_cpu = x.device.type == "cpu"
    if impl in ("auto", "kernel"):
        kernel = fta_kernel() if on_cpu and x.dtype == torch.float32 else None
        if kernel is not None:
            return True, kernel
        if impl == "kernel":
            runs_here = on_cpu and x.dtype == torch.float32
            why = f"it could not be used here ({fta_kernel_error()})" if runs_here else (
                f"it runs on CPU float32 tensors, got {x.device} {x.dtype}"
            )
            raise ModelError(f"FTA impl 'kernel' needs this package's fused CPU kernel: {why}")
    supported = on_cpu and x.dtype in FLASH_DTYPES and cpu_flash_available(x.dtype)
    if impl == "flash" and not supported:
        raise ModelError(
            f"FTA impl 'flash' needs torch's CPU flash-attention ops (working in this torch) and a CPU float tensor, "
            f"got {x.device} {x.dtype}"
        )
    return supported, None


def fta_auto_path(device: torch.device | str, dtype: torch.dtype) -> str:
    """Which computation ``impl="auto"`` takes for tensors of this device and dtype, in words (for reports)."""
    fused, kernel = _fused_backend(torch.empty(0, dtype=dtype, device=device), "auto")
    if kernel is not None:
        return "this package's fused CPU kernel (models/fta_cpu_kernel.cpp)"
    if fused:
        return "ATen's CPU flash attention, row and column calls merged by log-sum-exp"
    return "the portable einsum path (row, column and prefix scores, one softmax)"


def frequency_time_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    grid: tuple[int, int],
    num_prefix: int,
    scale: float | None = None,
    impl: FTAImpl = "auto",
) -> torch.Tensor:
    """Frequency-Time Attention: (B, H, P+N, hd) q, k, v -> (B, H, P+N, hd). See the module docstring."""
    n_freq, n_time = _check_grid(q.shape[2], grid, num_prefix)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    fused, kernel = _fused_backend(q, impl)
    if fused:
        return _FTAFunction.apply(q, k, v, n_freq, n_time, num_prefix, scale, kernel)
    return _fta_einsum(q, k, v, n_freq, n_time, num_prefix, scale)


def frequency_time_attention_packed(
    qkv: torch.Tensor,
    num_heads: int,
    grid: tuple[int, int],
    num_prefix: int,
    scale: float | None = None,
    impl: FTAImpl = "auto",
) -> torch.Tensor:
    """FTA on the packed output of a qkv Linear: (B, P+N, 3*D) -> (B, P+N, D), heads merged ``(h d)``."""
    batch, length, three_dim = qkv.shape
    n_freq, n_time = _check_grid(length, grid, num_prefix)
    head_dim = three_dim // (3 * num_heads)
    scale = head_dim**-0.5 if scale is None else scale
    fused, kernel = _fused_backend(qkv, impl)
    if fused:
        return _FTAPackedFunction.apply(qkv, num_heads, n_freq, n_time, num_prefix, scale, kernel)
    q, k, v = rearrange(qkv, "b l (s h d) -> s b h l d", s=3, h=num_heads).unbind(0)
    out = _fta_einsum(q, k, v, n_freq, n_time, num_prefix, scale)
    return rearrange(out, "b h l d -> b l (h d)")
