"""The CPU causal conv on (B, L, E) tokens equals nn.Conv1d's left-padded outputs, forward and every gradient, on a
ragged channel block; the Mamba layer takes it only where no hook sits on the conv."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from audio_ticl.models import mamba_cuda
from audio_ticl.models.causal_conv import causal_conv_cpu
from audio_ticl.models.scan_kernel import scan_kernel

pytestmark = pytest.mark.skipif(scan_kernel() is None, reason="no CPU scan kernel here")


@pytest.mark.parametrize("silu", [True, False])
def test_the_kernel_equals_conv1d_with_every_gradient(silu):
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(37, 37, 4, groups=37, padding=3)
    x = torch.randn(3, 11, 37, requires_grad=True)  # (B, L, E)
    got = causal_conv_cpu(x, conv.weight, conv.bias, silu=silu)
    pre = conv(x.transpose(1, 2))[..., :11].transpose(1, 2)
    ref = F.silu(pre) if silu else pre
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    dout = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(got, (x, conv.weight, conv.bias), dout),
                    torch.autograd.grad(ref, (x, conv.weight, conv.bias), dout)):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)


def test_the_layer_uses_it_for_its_layout_and_keeps_the_module_when_hooked():
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(8, 8, 4, groups=8, padding=3)
    x_ble = torch.randn(2, 9, 8)
    view = x_ble.transpose(1, 2)  # (B, E, L) view of (B, L, E) memory, as the layer's chunk of in_proj
    out = mamba_cuda.conv_silu(conv, view)
    assert out.stride(1) == 1  # (B, L, E) memory: x_proj reads it without a copy
    torch.testing.assert_close(out, F.silu(conv(view.contiguous())[..., :9]), atol=1e-5, rtol=1e-5)
    calls = []
    conv.register_forward_hook(lambda m, a, o: calls.append(1))
    mamba_cuda.conv_silu(conv, view)
    assert calls == [1]  # the hook ran: the module path
