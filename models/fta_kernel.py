"""FTA's fused CPU kernel (``fta_cpu_kernel.cpp``), built at first use by ``models.native`` and probed against
dense masked attention before it is trusted. Where it cannot be built or its probe fails, :func:`fta_kernel`
returns None and logs why once; FTA then takes ATen's CPU flash path (``impl="flash"``) or the portable einsum
path, which compute the same function. ``AUDIO_TICL_FTA_KERNEL=0`` switches the kernel off.
"""
from __future__ import annotations

import functools
from pathlib import Path

import torch

from audio_ticl.models.native import build_ops, load_probed

__all__ = ["FTAKernel", "fta_kernel", "fta_kernel_error", "KERNEL_SOURCE", "ENV_SWITCH"]

KERNEL_SOURCE = Path(__file__).with_name("fta_cpu_kernel.cpp")
ENV_SWITCH = "AUDIO_TICL_FTA_KERNEL"
_ERRORS: list[str] = []


class FTAKernel:
    """The loaded kernel's ops (``torch.ops.audio_ticl_fta``), as ``models.attention`` calls them."""

    def __init__(self) -> None:
        self.ops = torch.ops.audio_ticl_fta
        self.vector_width = int(self.ops.vector_width())

    def forward(self, q, k, v, out, n_freq: int, n_time: int, num_prefix: int, scale: float) -> torch.Tensor:
        """Writes the patch rows of ``out`` (B, H, L, hd); returns the patch queries' joint lse, (Z, N)."""
        return self.ops.forward(q, k, v, out, n_freq, n_time, num_prefix, scale)

    def backward(self, dout, q, k, v, out, lse, dq, dk, dv, n_freq: int, n_time: int, num_prefix: int,
                 scale: float) -> tuple[torch.Tensor, torch.Tensor]:
        """Writes the patch rows of dq, dk, dv; returns (dS, P) of the patch queries on the prefix keys (Z, P, N)."""
        dsp, pp = self.ops.backward(dout, q, k, v, out, lse, dq, dk, dv, n_freq, n_time, num_prefix, scale)
        return dsp, pp


def _build() -> FTAKernel:
    build_ops(KERNEL_SOURCE, "audio_ticl_fta_cpu", "FTA's fused CPU kernel")
    return FTAKernel()


def _probe(kernel: FTAKernel) -> None:
    """Forward and backward on small grids (prefix 0 to 2, odd T; short rows take the 8-float path, T' = 33 the
    16-float one where the CPU has it) against dense masked attention in float64."""
    from audio_ticl.models.attention import _FTAFunction, fta_dense_reference

    gen = torch.Generator().manual_seed(0)
    hd = 2 * kernel.vector_width
    for n_freq, n_time, prefix in ((3, 5, 2), (1, 7, 0), (4, 3, 1), (2, 19, 1), (2, 33, 1)):
        length = prefix + n_freq * n_time
        q, k, v, dout = (torch.randn(2, 2, length, hd, generator=gen) for _ in range(4))
        with torch.enable_grad():
            leaves = [t.clone().requires_grad_(True) for t in (q, k, v)]
            out = _FTAFunction.apply(*leaves, n_freq, n_time, prefix, hd**-0.5, kernel)
            grads = torch.autograd.grad(out, leaves, dout)
            q64, k64, v64 = (t.double().requires_grad_(True) for t in (q, k, v))
            ref = fta_dense_reference(q64, k64, v64, (n_freq, n_time), prefix)
            want = (ref, *torch.autograd.grad(ref, (q64, k64, v64), dout.double()))
        for name, a, b in zip(("out", "dq", "dk", "dv"), (out.detach(), *grads), want):
            if not torch.allclose(a.double(), b, atol=1e-4, rtol=1e-4):
                err = (a.double() - b).abs().max().item()
                raise RuntimeError(
                    f"kernel {name} differs from dense attention by {err:.2e} on grid {n_freq}x{n_time} "
                    f"with {prefix} prefix tokens"
                )


@functools.cache
def fta_kernel() -> FTAKernel | None:
    """The built and probed kernel, or None (with the reason in :func:`fta_kernel_error`). Cached."""

    def build_and_probe() -> FTAKernel:
        kernel = _build()
        _probe(kernel)
        return kernel

    return load_probed(build_and_probe, "FTA's fused CPU kernel", "FTA falls back to ATen's CPU flash path",
                       ENV_SWITCH, _ERRORS)


def fta_kernel_error() -> str | None:
    """Why :func:`fta_kernel` returned None (None if it has not, or was not asked yet)."""
    return _ERRORS[-1] if _ERRORS else None
