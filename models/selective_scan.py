"""Mamba's selective scan (S6; Gu & Dao 2023, Alg. 2), one function over three backends:

* ``reference``: a plain sequential loop in PyTorch (autograd), the ground truth every backend is tested against;
* ``cpu``: this package's fused C++ scan (``models/selective_scan_cpu.cpp``): one pass per channel, the vector
  lanes over channels and the N states in registers, softplus and the gate inside, threads over channel blocks, a
  backward that recomputes the states segment by segment (llama.cpp's ``ssm_scan`` layout, plus a backward);
* ``cuda``: mamba-ssm's ``selective_scan_fn`` (the optional ``cuda`` extra), for CUDA tensors where it imports.

Semantics and argument shapes are mamba-ssm's ``selective_scan_fn``: u, delta, z (batch, E, L); A (E, N);
B, C (batch, N, L) (one input-dependent B and C shared by every channel); D, delta_bias (E). Per channel,
dt = softplus(delta + delta_bias) (or without the softplus), h_t = exp(dt_t A) h_{t-1} + dt_t B_t u_t,
y_t = <h_t, C_t> + D u_t, and y_t * silu(z_t) when z is given. The output has u's dtype; the state is float32.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from einops import rearrange
from torch.autograd.function import once_differentiable

from audio_ticl.models import mamba_cuda
from audio_ticl.models.errors import ModelError
from audio_ticl.models.scan_kernel import ScanKernel, scan_kernel, scan_kernel_error

__all__ = ["SCAN_BACKENDS", "ScanBackend", "selective_scan", "selective_scan_reference", "selective_scan_cpu",
           "cuda_scan_available", "scan_backend_for"]

ScanBackend = Literal["auto", "reference", "cpu", "cuda"]
SCAN_BACKENDS = ("reference", "cpu", "cuda")


def selective_scan_reference(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
) -> torch.Tensor:
    """The sequential scan, step by step (slow, exact, any device): the ground truth."""
    dtype = u.dtype
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    u, delta, A, B, C = (t.to(compute) for t in (u, delta, A, B, C))
    if delta_bias is not None:
        delta = delta + delta_bias.to(compute)[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    decay = torch.exp(torch.einsum("bel,en->beln", delta, A))  # (b, e, l, n)
    drive = torch.einsum("bel,bnl,bel->beln", delta, B, u)
    h = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
    ys = []
    for t in range(u.shape[-1]):
        h = decay[:, :, t] * h + drive[:, :, t]
        ys.append(torch.einsum("ben,bn->be", h, C[:, :, t]))
    y = torch.stack(ys, dim=-1)
    if D is not None:
        y = y + u * D.to(compute)[:, None]
    if z is not None:
        y = y * F.silu(z.to(compute))
    return y.to(dtype)


def _n_contiguous(x: torch.Tensor) -> torch.Tensor:
    """``x`` (B, L, N) as it is when N is contiguous (a view of x_proj's output), else a contiguous copy."""
    return x if x.stride(-1) == 1 else x.contiguous()


class _CPUScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, u, delta, A, B, C, D, z, delta_bias, delta_softplus, kernel):  # type: ignore[override]
        b_t, c_t = (_n_contiguous(rearrange(x, "b n l -> b l n")) for x in (B, C))
        out = kernel.forward(u, delta, A, b_t, c_t, D, z, delta_bias, delta_softplus)
        ctx.save_for_backward(u, delta, A, b_t, c_t, D, z, delta_bias)
        ctx.delta_softplus, ctx.kernel = delta_softplus, kernel
        return out

    @staticmethod
    @once_differentiable
    def backward(ctx, dout):  # type: ignore[override]
        u, delta, A, b_t, c_t, D, z, delta_bias = ctx.saved_tensors
        du, ddelta, dA, dB, dC, dD, dz, dbias = ctx.kernel.backward(
            dout, u, delta, A, b_t, c_t, D, z, delta_bias, ctx.delta_softplus
        )
        dB, dC = (rearrange(x, "b l n -> b n l") for x in (dB, dC))
        return du, ddelta, dA, dB, dC, dD, dz if z is not None else None, dbias, None, None


def selective_scan_cpu(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    kernel: ScanKernel | None = None,
) -> torch.Tensor:
    """The fused C++ scan, softplus, bias and gate included (vectorised over channels in the kernel); computes in
    float32 (other dtypes are cast, the output takes u's dtype)."""
    kernel = kernel if kernel is not None else scan_kernel()
    if kernel is None:
        raise ModelError(f"selective scan backend 'cpu' could not be used here ({scan_kernel_error()})")
    channels = u.shape[1]
    D = D if D is not None else u.new_zeros(channels)
    delta_bias = delta_bias if delta_bias is not None else u.new_zeros(channels)
    # u, delta and z go in with their strides: the kernel reads (B, E, L) views of a (B, L, E) layout directly
    f32 = [u.float(), delta.float(), A.float().contiguous(), B.float(), C.float(), D.float().contiguous()]
    gate = z.float() if z is not None else None
    y = _CPUScan.apply(*f32, gate, delta_bias.float().contiguous(), delta_softplus, kernel)
    return y.to(u.dtype)


def cuda_scan_available() -> bool:
    """True where mamba-ssm's CUDA scan imports (the optional ``cuda`` extra on a machine with CUDA)."""
    return mamba_cuda.selective_scan_fn() is not None


def _selective_scan_cuda(u, delta, A, B, C, D, z, delta_bias, delta_softplus) -> torch.Tensor:
    return mamba_cuda.selective_scan_fn()(u, delta, A, B, C, D, z, delta_bias, delta_softplus)


def scan_backend_for(device: torch.device | str, backend: ScanBackend = "auto") -> str:
    """The backend ``backend`` resolves to for tensors on ``device`` (a ModelError when it cannot run there)."""
    device = torch.device(device)
    if backend not in ("auto", *SCAN_BACKENDS):
        raise ModelError(f"selective scan backend must be one of auto, {', '.join(SCAN_BACKENDS)}; got {backend!r}")
    if backend == "auto":
        if device.type == "cuda" and cuda_scan_available():
            return "cuda"
        if device.type == "cpu" and scan_kernel() is not None:
            return "cpu"
        return "reference"
    if backend == "cpu" and device.type != "cpu":
        raise ModelError(f"selective scan backend 'cpu' runs on CPU tensors, got {device}")
    if backend == "cuda" and not (device.type == "cuda" and cuda_scan_available()):
        raise ModelError("selective scan backend 'cuda' needs CUDA tensors and mamba-ssm (pip install "
                         f"'audio-ticl[cuda]'); got {device}, mamba-ssm importable: {cuda_scan_available()}")
    return backend


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    backend: ScanBackend = "auto",
) -> torch.Tensor:
    """The selective scan by ``backend`` ("auto": cuda on CUDA tensors where mamba-ssm imports, cpu on CPU tensors
    where the fused kernel was built, else the reference)."""
    chosen = scan_backend_for(u.device, backend)
    args = (u, delta, A, B, C, D, z, delta_bias, delta_softplus)
    if chosen == "cuda":
        return _selective_scan_cuda(*args)
    if chosen == "cpu":
        return selective_scan_cpu(*args)
    return selective_scan_reference(*args)
