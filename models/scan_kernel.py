"""Mamba's CPU selective scan (``selective_scan_cpu.cpp``), built at first use by ``models.native`` and probed
against the sequential reference (``models.selective_scan``) in float64 before it is trusted. Where it cannot be
built or its probe fails, :func:`scan_kernel` returns None and logs why once, and the scan takes the reference
path. ``AUDIO_TICL_SCAN_KERNEL=0`` switches it off.
"""
from __future__ import annotations

import functools
from pathlib import Path

import torch

from audio_ticl.models.native import build_ops, load_probed

__all__ = ["ScanKernel", "scan_kernel", "scan_kernel_error", "KERNEL_SOURCE", "ENV_SWITCH"]

KERNEL_SOURCE = Path(__file__).with_name("selective_scan_cpu.cpp")
ENV_SWITCH = "AUDIO_TICL_SCAN_KERNEL"
_ERRORS: list[str] = []


class ScanKernel:
    """The loaded ops (``torch.ops.audio_ticl_scan``); B and C in the kernel's (batch, L, N) layout."""

    def __init__(self) -> None:
        self.ops = torch.ops.audio_ticl_scan

    def forward(self, u, delta, A, B_t, C_t, D, z, delta_bias, delta_softplus: bool) -> torch.Tensor:
        return self.ops.forward(u, delta, A, B_t, C_t, D, z, delta_bias, delta_softplus)

    def backward(self, dout, u, delta, A, B_t, C_t, D, z, delta_bias, delta_softplus: bool) -> list[torch.Tensor]:
        """du, ddelta, dA, dB (batch, L, N), dC (batch, L, N), dD, dz (empty without z), ddelta_bias."""
        return self.ops.backward(dout, u, delta, A, B_t, C_t, D, z, delta_bias, delta_softplus)

    def conv_forward(self, x, weight, bias, silu: bool) -> torch.Tensor:
        """Depthwise causal conv (and SiLU) on (B, L, E) x, weight (E, K): (B, L, E)."""
        return self.ops.conv_forward(x, weight, bias, silu)

    def conv_backward(self, dout, x, weight, bias, silu: bool) -> list[torch.Tensor]:
        """dx (B, L, E), dweight (E, K), dbias (E)."""
        return self.ops.conv_backward(dout, x, weight, bias, silu)


def _probe(kernel: ScanKernel) -> None:
    """Forward and every gradient against the sequential reference in float64, on odd lengths, batch 1 and 2,
    with and without the gate z and the softplus."""
    from audio_ticl.models.selective_scan import selective_scan_cpu, selective_scan_reference

    gen = torch.Generator().manual_seed(0)
    for batch, channels, length, state, gate, softplus in ((2, 3, 7, 16, True, True), (1, 2, 5, 8, False, False)):
        u, delta, z = (torch.randn(batch, channels, length, generator=gen) for _ in range(3))
        a = -torch.rand(channels, state, generator=gen) - 0.5
        b, c = (torch.randn(batch, state, length, generator=gen) for _ in range(2))
        d, bias = torch.randn(channels, generator=gen), torch.randn(channels, generator=gen) * 0.1
        dout = torch.randn(batch, channels, length, generator=gen)
        inputs = [u, delta.abs() * 0.2, a, b, c, d, z if gate else None, bias]
        with torch.enable_grad():
            leaves = [t.clone().requires_grad_(True) if t is not None else None for t in inputs]
            got = selective_scan_cpu(*leaves, delta_softplus=softplus, kernel=kernel)
            ref_leaves = [t.double().requires_grad_(True) if t is not None else None for t in inputs]
            ref = selective_scan_reference(*ref_leaves, delta_softplus=softplus)
            live = [i for i, t in enumerate(leaves) if t is not None]
            got_grads = torch.autograd.grad(got, [leaves[i] for i in live], dout)
            ref_grads = torch.autograd.grad(ref, [ref_leaves[i] for i in live], dout.double())
        names = ["out"] + [f"d{('u', 'delta', 'A', 'B', 'C', 'D', 'z', 'delta_bias')[i]}" for i in live]
        for name, x, y in zip(names, (got, *got_grads), (ref, *ref_grads)):
            if not torch.allclose(x.double(), y, atol=1e-4, rtol=1e-4):
                raise RuntimeError(f"scan {name} differs from the reference by {(x.double() - y).abs().max():.2e}")
    _probe_conv(kernel, gen)


def _probe_conv(kernel: ScanKernel, gen: torch.Generator) -> None:
    """The causal conv against ``F.conv1d`` (left-padded outputs) in float64, forward and every gradient."""
    from audio_ticl.models.causal_conv import causal_conv_cpu

    x = torch.randn(2, 9, 19, generator=gen)  # (B, L, E): 19 channels, a ragged vector block
    weight, bias = torch.randn(19, 1, 4, generator=gen), torch.randn(19, generator=gen)
    dout = torch.randn(2, 9, 19, generator=gen)
    with torch.enable_grad():
        leaves = [t.clone().requires_grad_(True) for t in (x, weight, bias)]
        got = causal_conv_cpu(*leaves, silu=True, kernel=kernel)
        ref_leaves = [t.double().requires_grad_(True) for t in (x, weight, bias)]
        pre = torch.nn.functional.conv1d(ref_leaves[0].transpose(1, 2), ref_leaves[1], ref_leaves[2], padding=3,
                                         groups=19)[..., :9]
        ref = torch.nn.functional.silu(pre).transpose(1, 2)
        grads = torch.autograd.grad(got, leaves, dout)
        ref_grads = torch.autograd.grad(ref, ref_leaves, dout.double())
    for name, a, b in zip(("out", "dx", "dweight", "dbias"), (got, *grads), (ref, *ref_grads)):
        if not torch.allclose(a.double(), b, atol=1e-4, rtol=1e-4):
            raise RuntimeError(f"causal conv {name} differs from the reference by {(a.double() - b).abs().max():.2e}")


@functools.cache
def scan_kernel() -> ScanKernel | None:
    """The built and probed kernel, or None (with the reason in :func:`scan_kernel_error`). Cached."""

    def build_and_probe() -> ScanKernel:
        build_ops(KERNEL_SOURCE, "audio_ticl_scan_cpu", "Mamba's CPU selective scan")
        kernel = ScanKernel()
        _probe(kernel)
        return kernel

    return load_probed(build_and_probe, "Mamba's CPU selective scan", "the scan takes the sequential reference path",
                       ENV_SWITCH, _ERRORS)


def scan_kernel_error() -> str | None:
    """Why :func:`scan_kernel` returned None (None if it has not, or was not asked yet)."""
    return _ERRORS[-1] if _ERRORS else None
