"""The one place that touches torch's private CPU flash-attention ops, and the probe that decides whether to.

FTA's fused CPU path (``models.attention``) calls ATen's ``_scaled_dot_product_flash_attention_for_cpu`` and its
backward directly, because the public ``scaled_dot_product_attention`` returns no log-sum-exp and has no backward
that takes one. Those ops are private: a torch release may drop them, rename an argument or change what they
return. :func:`cpu_flash_available` therefore runs them once per dtype on a tiny problem (a masked forward and its
backward) and compares with plain attention in float64; any exception or difference means False, and the callers
take the portable path. The answer is cached, so the probe costs one tiny problem per process and dtype.
"""
from __future__ import annotations

import functools
import threading

import torch
import torch.nn.functional as F

__all__ = ["FLASH_DTYPES", "cpu_flash_available", "flash_forward", "flash_backward", "flash_forward_op"]

#: dtypes the fused CPU kernels support
FLASH_DTYPES = (torch.float32, torch.float64, torch.bfloat16)

_ATEN = torch.ops.aten


def flash_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    """(Z, L, hd) or (B, H, L, hd) q, k, v -> (output, log-sum-exp): ATen's fused CPU flash-attention forward."""
    return _ATEN._scaled_dot_product_flash_attention_for_cpu(q, k, v, **kwargs)


def flash_backward(*args, **kwargs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dq, dk, dv) from ATen's fused CPU flash-attention backward (its positional arguments, unchanged)."""
    return _ATEN._scaled_dot_product_flash_attention_for_cpu_backward(*args, **kwargs)


def flash_forward_op():
    """The forward op's overload packet (for FLOP-counter formulas), or None where this torch has none."""
    return getattr(_ATEN, "_scaled_dot_product_flash_attention_for_cpu", None)


def _probe(dtype: torch.dtype) -> None:
    """Run both ops on a tiny masked problem; raise unless they compute plain attention and its gradient."""
    gen = torch.Generator().manual_seed(0)  # a private generator: the probe draws nothing from the global one
    q, k, v, dout = (torch.randn(2, 3, 4, 8, generator=gen).to(dtype) for _ in range(4))
    mask = torch.zeros(4, 4, dtype=dtype)
    mask.fill_diagonal_(float("-inf"))
    tol = 2e-2 if dtype == torch.bfloat16 else 1e-4
    out, lse = flash_forward(q, k, v, attn_mask=mask, scale=0.5)
    grads = flash_backward(dout, q, k, v, out, lse, 0.0, False, attn_mask=mask, scale=0.5)
    q64, k64, v64 = (t.double().requires_grad_(True) for t in (q, k, v))
    ref = F.scaled_dot_product_attention(q64, k64, v64, attn_mask=mask.double(), scale=0.5)
    expected = (ref, *torch.autograd.grad(ref, (q64, k64, v64), dout.double()))
    for got, want in zip((out, *grads), expected):
        if tuple(got.shape) != tuple(want.shape) or not torch.allclose(got.double(), want, atol=tol, rtol=tol):
            raise RuntimeError("torch's CPU flash-attention ops no longer compute plain attention")


@functools.cache
def cpu_flash_available(dtype: torch.dtype = torch.float32) -> bool:
    """True when torch's private CPU flash-attention ops run and compute plain attention in ``dtype`` (cached).

    The probe runs in a short-lived thread: dispatch modes (``FlopCounterMode``), autocast and grad mode are per
    thread, so it never shows up in a caller's FLOP count and does not depend on the caller's state.
    """
    if dtype not in FLASH_DTYPES:
        return False
    result: list[bool] = []

    def run() -> None:
        try:
            _probe(dtype)
            result.append(True)
        except Exception:  # noqa: BLE001 - any failure of a private op means: use the portable path
            result.append(False)

    thread = threading.Thread(target=run, name="audio-ticl-cpu-flash-probe", daemon=True)
    thread.start()
    thread.join()
    return bool(result and result[0])
