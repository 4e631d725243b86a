"""Attention ops on (B, H, L, hd) tensors: global (dense) attention and factorized Frequency-Time Attention.

Token layout everywhere: ``L = P + N``; the first ``P`` tokens are prefix tokens (CLS, distillation token), the
``N = F' * T'`` patch tokens follow in frequency-major order ``(f t)``.

Frequency-Time Attention (FTA, AI-CL): a patch query at (f, t) attends to the patch keys of its frequency row f
(same f, every t), of its time column t (same t, every f) and to all prefix keys, with ONE softmax over that union;
the query's own key lies in its row and its column and is counted once. Prefix queries attend to every key.

How it is computed, exactly and without ever building an N x N map (cost O(N (F' + T' + P))):

* the row branch is one fused ``flash attention`` call over the (B*H*F') rows, each a T' x T' problem;
* the column branch is one fused call over strided (transposed) views of the same tensors, each an F' x F'
  problem with the diagonal masked to -inf (so the self key is only counted by the row branch);
* the prefix keys seen by patch queries are a tiny (N x P) product;
* the three partial softmaxes are merged with their log-sum-exps into the joint softmax.

The backward pass calls the fused flash backward of each branch with the JOINT output and log-sum-exp: the
probabilities it rebuilds, exp(s - lse_joint), are then the joint ones, so the per-branch gradients add up to the
exact gradient of the joint softmax (the split-KV trick of FlashAttention). Nothing N x N is stored either.

The fused kernels are ATen's CPU flash attention (``_scaled_dot_product_flash_attention_for_cpu`` and its
backward). On other devices, or if a future torch drops those ops, ``impl="einsum"`` (plain autograd: row,
column and prefix scores with one joint softmax) is used; it is also the second reference the tests compare.
"""
from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch.autograd.function import once_differentiable

from models.errors import ModelError

__all__ = [
    "global_attention",
    "frequency_time_attention",
    "frequency_time_attention_packed",
    "criss_cross_mask",
    "fta_dense_reference",
    "fta_attended_pairs",
]

FTAImpl = Literal["auto", "flash", "einsum"]

_ATEN = torch.ops.aten
_HAS_CPU_FLASH = hasattr(_ATEN, "_scaled_dot_product_flash_attention_for_cpu") and hasattr(
    _ATEN, "_scaled_dot_product_flash_attention_for_cpu_backward"
)
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


# ----------------------------------------------------------------------------------------------- fused CPU path
def _split(x: torch.Tensor, num_prefix: int, n_freq: int, n_time: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(Z, L, hd) -> prefix (Z, P, hd) and patch grid (Z, F, T, hd) views."""
    return x[:, :num_prefix], x[:, num_prefix:].unflatten(1, (n_freq, n_time))


def _fta_forward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    n_freq: int,
    n_time: int,
    num_prefix: int,
    scale: float,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Fused FTA forward. q, k, v: (Z, L, hd), Z = B*H; writes (B, H, L, hd) ``out`` (any strides).

    Returns the joint log-sum-exp of the patch queries (Z, F, T) and the prefix-query probabilities (Z, P, L),
    which the backward needs.
    """
    batch, heads = out.shape[0], out.shape[1]
    p = num_prefix
    q_pre, q_grid = _split(q, p, n_freq, n_time)
    k_pre, k_grid = _split(k, p, n_freq, n_time)
    v_pre, v_grid = _split(v, p, n_freq, n_time)
    out_grid = out[:, :, p:].unflatten(2, (n_freq, n_time))  # (B, H, F, T, hd) view

    def per_head(x: torch.Tensor) -> torch.Tensor:  # (Z, ...) -> (B, H, ...) view
        return x.unflatten(0, (batch, heads))

    # row branch: z f t d  (each frequency row is one T x T problem)
    o_row, lse_row = _ATEN._scaled_dot_product_flash_attention_for_cpu(q_grid, k_grid, v_grid, scale=scale)
    m = lse_row
    if n_freq > 1:
        # column branch: z t f d views of the same memory (each time column one F x F problem, self masked)
        o_col, lse_col = _ATEN._scaled_dot_product_flash_attention_for_cpu(
            q_grid.transpose(1, 2),
            k_grid.transpose(1, 2),
            v_grid.transpose(1, 2),
            attn_mask=_diag_mask(n_freq, q.dtype, q.device),
            scale=scale,
        )
        o_col, lse_col = o_col.transpose(1, 2), lse_col.transpose(1, 2)  # back to z f t (d)
        m = torch.maximum(m, lse_col)
    if p > 0:
        s_pre = torch.bmm(q_grid.flatten(1, 2), k_pre.transpose(1, 2)).unflatten(1, (n_freq, n_time))  # z f t p
        s_pre.mul_(scale)
        m = torch.maximum(m, s_pre.amax(-1))

    # joint softmax = branch softmaxes weighted by exp(lse_branch - lse_joint)
    w_row = (lse_row - m).exp_()
    z = w_row.clone()
    if n_freq > 1:
        w_col = (lse_col - m).exp_()
        z.add_(w_col)
    if p > 0:
        e_pre = (s_pre - m.unsqueeze(-1)).exp_()
        z.add_(e_pre.sum(-1))
    lse = z.log().add_(m)
    inv_z = z.reciprocal_()
    torch.mul(per_head(o_row), per_head(w_row.mul_(inv_z)).unsqueeze(-1), out=out_grid)
    if n_freq > 1:
        out_grid.addcmul_(per_head(o_col), per_head(w_col.mul_(inv_z)).unsqueeze(-1))
    if p == 1:
        out_grid.addcmul_(per_head(e_pre.mul_(inv_z.unsqueeze(-1))), per_head(v_pre).unsqueeze(2))
    elif p > 1:
        out_grid.add_(per_head(torch.matmul(e_pre.mul_(inv_z.unsqueeze(-1)), v_pre.unsqueeze(1))))

    # prefix queries: plain softmax over all L keys (P x L, negligible)
    a_pre = None
    if p > 0:
        a_pre = torch.softmax(torch.bmm(q_pre, k.transpose(1, 2)).mul_(scale), dim=-1)  # z p l
        out[:, :, :p] = per_head(torch.bmm(a_pre, v))
    return lse, a_pre


def _fta_backward(
    dout: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    a_pre: torch.Tensor | None,
    dq: torch.Tensor,
    dk: torch.Tensor,
    dv: torch.Tensor,
    n_freq: int,
    n_time: int,
    num_prefix: int,
    scale: float,
) -> None:
    """Fused FTA backward; all tensors (Z, L, hd), ``dq, dk, dv`` zero-initialised and accumulated in place."""
    p = num_prefix
    q_pre, q_grid = _split(q, p, n_freq, n_time)
    k_pre, k_grid = _split(k, p, n_freq, n_time)
    v_pre, v_grid = _split(v, p, n_freq, n_time)
    _, o_grid = _split(out, p, n_freq, n_time)
    d_pre, d_grid = _split(dout, p, n_freq, n_time)
    dq_pre, dq_grid = _split(dq, p, n_freq, n_time)
    dk_pre, dk_grid = _split(dk, p, n_freq, n_time)
    dv_pre, dv_grid = _split(dv, p, n_freq, n_time)

    # row and column branches: flash backward with the joint output / lse -> exact joint-softmax gradients
    g_q, g_k, g_v = _ATEN._scaled_dot_product_flash_attention_for_cpu_backward(
        d_grid, q_grid, k_grid, v_grid, o_grid, lse, 0.0, False, scale=scale
    )
    dq_grid.add_(g_q)
    dk_grid.add_(g_k)
    dv_grid.add_(g_v)
    if n_freq > 1:

        def tr(x: torch.Tensor) -> torch.Tensor:
            return x.transpose(1, 2)

        g_q, g_k, g_v = _ATEN._scaled_dot_product_flash_attention_for_cpu_backward(
            tr(d_grid), tr(q_grid), tr(k_grid), tr(v_grid), tr(o_grid), tr(lse), 0.0, False,
            attn_mask=_diag_mask(n_freq, q.dtype, q.device), scale=scale,
        )
        dq_grid.add_(tr(g_q))
        dk_grid.add_(tr(g_k))
        dv_grid.add_(tr(g_v))
    if p == 0:
        return

    # prefix keys seen by the patch queries (N x P)
    q_flat, d_flat, o_flat = q_grid.flatten(1, 2), d_grid.flatten(1, 2), o_grid.flatten(1, 2)  # z n d
    a = torch.bmm(q_flat, k_pre.transpose(1, 2)).mul_(scale).sub_(lse.flatten(1).unsqueeze(-1)).exp_()  # z n p
    delta = (d_flat * o_flat).sum(-1, keepdim=True)  # z n 1: rowsum(dO * O), the softmax Jacobian term
    dv_pre.add_(torch.bmm(a.transpose(1, 2), d_flat))
    ds = torch.bmm(d_flat, v_pre.transpose(1, 2)).sub_(delta).mul_(a).mul_(scale)  # z n p
    dq_grid.add_(torch.bmm(ds, k_pre).unflatten(1, (n_freq, n_time)))
    dk_pre.add_(torch.bmm(ds.transpose(1, 2), q_flat))

    # prefix queries: plain softmax attention over all keys
    assert a_pre is not None
    dv.add_(torch.bmm(a_pre.transpose(1, 2), d_pre))
    da = torch.bmm(d_pre, v.transpose(1, 2))  # z p l
    ds = da.sub_((da * a_pre).sum(-1, keepdim=True)).mul_(a_pre).mul_(scale)
    dq_pre.add_(torch.bmm(ds, k))
    dk.add_(torch.bmm(ds.transpose(1, 2), q_pre))


class _FTAFunction(torch.autograd.Function):
    """FTA on separate (B, H, L, hd) q, k, v -> (B, H, L, hd)."""

    @staticmethod
    def forward(ctx, q, k, v, n_freq: int, n_time: int, num_prefix: int, scale: float):  # type: ignore[override]
        batch, heads, length, hd = q.shape
        q3, k3, v3 = (x.reshape(batch * heads, length, hd) for x in (q, k, v))
        out = q.new_empty(batch, heads, length, hd)
        lse, a_pre = _fta_forward(q3, k3, v3, out, n_freq, n_time, num_prefix, scale)
        ctx.save_for_backward(q3, k3, v3, out, lse, a_pre)
        ctx.dims = (n_freq, n_time, num_prefix, scale)
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):  # type: ignore[override]
        q3, k3, v3, out, lse, a_pre = ctx.saved_tensors
        n_freq, n_time, num_prefix, scale = ctx.dims
        batch, heads, length, hd = out.shape
        grads = q3.new_zeros(3, batch * heads, length, hd)
        _fta_backward(
            dout.reshape(q3.shape), q3, k3, v3, out.view(q3.shape), lse, a_pre, grads[0], grads[1], grads[2],
            n_freq, n_time, num_prefix, scale,
        )
        dq, dk, dv = (g.view(batch, heads, length, hd) for g in grads)
        return dq, dk, dv, None, None, None, None


class _FTAPackedFunction(torch.autograd.Function):
    """FTA on a packed qkv projection (B, L, 3*H*hd) -> (B, L, H*hd), the layout the mixer's Linears use.

    One copy into head-major (3, B*H, L, hd) buffers is needed either way; doing it here (instead of letting
    autograd differentiate three strided views) keeps the backward to one copy back into the packed layout.
    """

    @staticmethod
    def forward(ctx, qkv, num_heads: int, n_freq: int, n_time: int, num_prefix: int, scale: float):  # type: ignore[override]
        batch, length, _ = qkv.shape
        q3, k3, v3 = rearrange(qkv, "b l (s h d) -> s (b h) l d", s=3, h=num_heads).contiguous()
        hd = q3.shape[-1]
        out = qkv.new_empty(batch, length, num_heads, hd)  # b l h d memory, written through a b h l d view
        lse, a_pre = _fta_forward(q3, k3, v3, out.transpose(1, 2), n_freq, n_time, num_prefix, scale)
        ctx.save_for_backward(q3, k3, v3, out, lse, a_pre)
        ctx.dims = (num_heads, n_freq, n_time, num_prefix, scale)
        return rearrange(out, "b l h d -> b l (h d)")

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):  # type: ignore[override]
        q3, k3, v3, out, lse, a_pre = ctx.saved_tensors
        num_heads, n_freq, n_time, num_prefix, scale = ctx.dims

        def head_major(x: torch.Tensor) -> torch.Tensor:
            return rearrange(x, "b l (h d) -> (b h) l d", h=num_heads).contiguous()

        grads = q3.new_zeros(3, *q3.shape)
        _fta_backward(
            head_major(dout), q3, k3, v3, head_major(out.flatten(2)), lse, a_pre, grads[0], grads[1], grads[2],
            n_freq, n_time, num_prefix, scale,
        )
        dqkv = rearrange(grads, "s (b h) l d -> b l (s h d)", h=num_heads)
        return dqkv, None, None, None, None, None


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


def _use_flash(x: torch.Tensor, impl: FTAImpl) -> bool:
    if impl not in ("auto", "flash", "einsum"):
        raise ModelError(f"FTA impl must be 'auto', 'flash' or 'einsum', got {impl!r}")
    supported = _HAS_CPU_FLASH and x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64, torch.bfloat16)
    if impl == "flash" and not supported:
        raise ModelError(
            f"FTA impl 'flash' needs torch's CPU flash-attention ops and a CPU float tensor, got {x.device} {x.dtype}"
        )
    return impl == "flash" or (impl == "auto" and supported)


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
    if _use_flash(q, impl):
        return _FTAFunction.apply(q, k, v, n_freq, n_time, num_prefix, scale)
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
    if _use_flash(qkv, impl):
        return _FTAPackedFunction.apply(qkv, num_heads, n_freq, n_time, num_prefix, scale)
    q, k, v = rearrange(qkv, "b l (s h d) -> s b h l d", s=3, h=num_heads).unbind(0)
    out = _fta_einsum(q, k, v, n_freq, n_time, num_prefix, scale)
    return rearrange(out, "b h l d -> b l (h d)")
