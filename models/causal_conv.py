"""Mamba's depthwise causal conv1d on (B, L, E) tokens for the CPU: this package's kernel (in
``selective_scan_cpu.cpp``, loaded with the scan), so that a Mamba layer never transposes its activations to
(B, E, L) for ``nn.Conv1d``. Same function as the module's left-padded outputs (checked by the kernel's probe and
``tests/test_causal_conv.py``)."""
from __future__ import annotations

import torch
from einops import rearrange
from torch import nn
from torch.autograd.function import once_differentiable

from audio_ticl.models.errors import ModelError
from audio_ticl.models.scan_kernel import ScanKernel, scan_kernel, scan_kernel_error

__all__ = ["causal_conv_cpu", "conv_silu_channels_last"]


class _CPUCausalConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, silu, kernel):  # type: ignore[override]
        ctx.save_for_backward(x, weight, bias)
        ctx.silu, ctx.kernel, ctx.has_bias = silu, kernel, bias is not None
        return kernel.conv_forward(x, weight, bias, silu)

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):  # type: ignore[override]
        x, weight, bias = ctx.saved_tensors
        dout = dout if dout.stride(-1) == 1 else dout.contiguous()
        dx, dweight, dbias = ctx.kernel.conv_backward(dout, x, weight, bias, ctx.silu)
        return dx, dweight, dbias if ctx.has_bias else None, None, None


def causal_conv_cpu(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, silu: bool = True,
                    kernel: ScanKernel | None = None) -> torch.Tensor:
    """``act(bias + sum_k w[:, k] x[t - K + 1 + k])`` on (B, L, E) ``x`` (E contiguous; float32 computed, the
    output takes x's dtype); ``weight`` is ``nn.Conv1d``'s depthwise (E, 1, K)."""
    kernel = kernel if kernel is not None else scan_kernel()
    if kernel is None:
        raise ModelError(f"the CPU causal conv could not be used here ({scan_kernel_error()})")
    xf = x.float()
    xf = xf if xf.stride(-1) == 1 else xf.contiguous()
    w = rearrange(weight.float(), "e 1 k -> e k").contiguous()
    b = bias.float().contiguous() if bias is not None else None
    return _CPUCausalConv.apply(xf, w, b, silu, kernel).to(x.dtype)


def conv_silu_channels_last(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor | None:
    """``silu(conv(x))`` for (B, E, L) ``x`` laid out as (B, L, E), by the CPU kernel, returned as a (B, E, L)
    view of (B, L, E) memory; None where the kernel does not apply (not CPU, not that layout, no kernel, or a hook
    on the conv, which only the module call would run)."""
    if x.device.type != "cpu" or x.stride(1) != 1 or conv._forward_hooks or conv._forward_pre_hooks:
        return None
    if scan_kernel() is None:
        return None
    return causal_conv_cpu(x.transpose(1, 2), conv.weight, conv.bias).transpose(1, 2)
