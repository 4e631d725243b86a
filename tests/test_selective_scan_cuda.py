"""The ``cuda`` backend (mamba-ssm's selective_scan_fn, causal-conv1d, mamba_inner_fn) against the sequential
reference, on a GPU. Skipped where CUDA or the ``cuda`` extra is missing; this is the prepared device check
(``pytest tests/test_selective_scan_cuda.py`` on the GPU machine)."""
from __future__ import annotations

import pytest
import torch
from scan_inputs import scan_inputs

from audio_ticl.models import mamba_cuda
from audio_ticl.models.mamba import BiMambaMixer
from audio_ticl.models.selective_scan import cuda_scan_available, selective_scan, selective_scan_reference

pytestmark = pytest.mark.skipif(not cuda_scan_available(), reason="needs CUDA and mamba-ssm (the cuda extra)")
NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


@pytest.mark.parametrize("batch, length, dtype, tol", [
    (2, 13, torch.float32, 1e-4), (1, 1, torch.float32, 1e-4), (3, 257, torch.float32, 1e-4),
    (2, 33, torch.bfloat16, 3e-2),
])
def test_cuda_scan_equals_the_reference_with_every_gradient(batch, length, dtype, tol):
    inputs = [t.cuda() for t in scan_inputs(batch, 24, length, dtype=dtype, float32_params=True)]
    leaves = [t.clone().requires_grad_(True) for t in inputs]
    ref_leaves = [t.double().requires_grad_(True) for t in inputs]
    out = selective_scan(*leaves, delta_softplus=True, backend="cuda")
    ref = selective_scan_reference(*ref_leaves, delta_softplus=True)
    torch.testing.assert_close(out.double(), ref, atol=tol, rtol=tol)
    dout = torch.randn_like(ref)
    grads = torch.autograd.grad(out, leaves, dout.to(out.dtype))
    ref_grads = torch.autograd.grad(ref, ref_leaves, dout)
    for name, a, b in zip(NAMES, grads, ref_grads):
        torch.testing.assert_close(a.double(), b, atol=10 * tol, rtol=10 * tol, msg=lambda m, n=name: f"d{n}: {m}")


@pytest.mark.skipif(mamba_cuda.mamba_inner() is None, reason="needs mamba_inner_fn")
@pytest.mark.parametrize("reverse", [False, True])
def test_the_mixers_fused_path_equals_its_reference_path(reverse):
    torch.manual_seed(0)
    fused = BiMambaMixer(64, scan="cuda").cuda()
    plain = BiMambaMixer(64, scan="reference").cuda()
    plain.load_state_dict(fused.state_dict())
    x = torch.randn(2, 101, 64, device="cuda", requires_grad=True)
    out, ref = fused(x, reverse=reverse), plain(x, reverse=reverse)
    torch.testing.assert_close(out, ref, atol=1e-4, rtol=1e-4)
    (gx,) = torch.autograd.grad(out.square().sum(), x)
    (rx,) = torch.autograd.grad(ref.square().sum(), x)
    torch.testing.assert_close(gx, rx, atol=1e-3, rtol=1e-3)


@pytest.mark.skipif(mamba_cuda.causal_conv1d() is None, reason="needs causal-conv1d")
def test_causal_conv1d_equals_the_module():
    conv = torch.nn.Conv1d(32, 32, 4, groups=32, padding=3).cuda()
    x = torch.randn(2, 64, 50, device="cuda")[:, :32]  # a channel-strided view, as the mixer's chunk of xz
    expected = torch.nn.functional.silu(conv(x.contiguous())[..., :50])
    torch.testing.assert_close(mamba_cuda.conv_silu(conv, x), expected, atol=1e-5, rtol=1e-5)
