"""mamba-ssm's and causal-conv1d's CUDA entry points for the Mamba mixer, and when they may be used.

Both come from the optional ``cuda`` extra (``pip install 'audio-ticl[cuda]'``); without them, or off CUDA, every
function here says "not available" and the mixer runs its module-by-module path. They bypass the modules they
fuse (a direction's conv1d, x_proj, dt_proj and the shared out_proj), so they are used only where no hook sits on
those modules: a PET method attached there (BitFit on the conv and dt_proj biases, LoRA on out_proj) keeps the
module path, which calls every module and so every hook.
"""
from __future__ import annotations

import functools
import importlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

__all__ = ["selective_scan_fn", "mamba_inner", "causal_conv1d", "hooked", "conv_silu"]


@functools.cache
def _cuda_function(module: str, name: str) -> Callable | None:
    """``module.name`` where CUDA is available and the module imports, else None."""
    if not torch.cuda.is_available():
        return None
    try:
        return getattr(importlib.import_module(module), name)
    except Exception:  # noqa: BLE001 - not installed, or built for another torch/CUDA: not available
        return None


def selective_scan_fn() -> Callable | None:
    """mamba-ssm's ``selective_scan_fn``, or None."""
    return _cuda_function("mamba_ssm.ops.selective_scan_interface", "selective_scan_fn")


def mamba_inner() -> Callable | None:
    """mamba-ssm's ``mamba_inner_fn`` (one direction: causal conv, x_proj, dt_proj, scan, gate, out_proj), or None."""
    return _cuda_function("mamba_ssm.ops.selective_scan_interface", "mamba_inner_fn")


def causal_conv1d() -> Callable | None:
    """causal-conv1d's ``causal_conv1d_fn`` (depthwise causal conv with the SiLU fused), or None."""
    return _cuda_function("causal_conv1d", "causal_conv1d_fn")


def hooked(*modules: nn.Module) -> bool:
    """True if any of ``modules`` has a forward hook or pre-hook (a PET module, a user's probe)."""
    return any(m._forward_hooks or m._forward_pre_hooks for m in modules)


def conv_silu(conv: nn.Conv1d, x: torch.Tensor) -> torch.Tensor:
    """``silu(causal depthwise conv(x))`` on (B, E, L): causal-conv1d's kernel on CUDA where it imports and the
    conv is not hooked; on the CPU this package's kernel for (B, L, E) layouts (``models.causal_conv``); else the
    module (its left-padded outputs)."""
    if not x.is_cuda:
        from audio_ticl.models.causal_conv import conv_silu_channels_last

        done = conv_silu_channels_last(conv, x)
        if done is not None:
            return done
    fused = causal_conv1d() if x.is_cuda and not hooked(conv) else None
    if fused is not None:
        if x.stride(1) != 1 and x.stride(2) != 1:
            x = x.contiguous()
        return fused(x, rearrange(conv.weight, "e 1 w -> e w"), conv.bias, activation="silu")
    return F.silu(conv(x)[..., : x.shape[-1]])
