"""The mixer's CUDA paths, routed on the CPU with stand-ins written from mamba-ssm's reference semantics
(``mamba_inner_ref``, ``causal_conv1d_ref``): the fused path computes what the module path does, and is not taken
where a PET hook sits on a module it would bypass. The real kernels are checked on a GPU by
``tests/test_selective_scan_cuda.py``."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange

from audio_ticl.models import create_pet, mamba_cuda
from audio_ticl.models import mamba as mamba_module
from audio_ticl.models.mamba import BiMambaMixer
from audio_ticl.models.selective_scan import selective_scan_reference


def fake_mamba_inner_fn(xz, conv1d_weight, conv1d_bias, x_proj_weight, delta_proj_weight, out_proj_weight,
                        out_proj_bias, A, B=None, C=None, D=None, delta_bias=None, B_proj_bias=None,
                        C_proj_bias=None, delta_softplus=True):
    """mamba-ssm's ``mamba_inner_ref``, with variable B and C (from x_proj), in plain PyTorch."""
    fake_mamba_inner_fn.calls += 1
    length, rank, state = xz.shape[-1], delta_proj_weight.shape[1], A.shape[-1]
    x, z = xz.chunk(2, dim=1)
    x = F.silu(F.conv1d(x, conv1d_weight, conv1d_bias, padding=conv1d_weight.shape[-1] - 1,
                        groups=x.shape[1])[..., :length])
    x_dbl = F.linear(rearrange(x, "b d l -> (b l) d"), x_proj_weight)
    delta = rearrange(delta_proj_weight @ x_dbl[:, :rank].t(), "d (b l) -> b d l", l=length)
    b = rearrange(x_dbl[:, rank:rank + state], "(b l) n -> b n l", l=length)
    c = rearrange(x_dbl[:, -state:], "(b l) n -> b n l", l=length)
    y = selective_scan_reference(x, delta, A, b, c, D, z=z, delta_bias=delta_bias, delta_softplus=delta_softplus)
    return F.linear(rearrange(y, "b d l -> b l d"), out_proj_weight, out_proj_bias)


def _routed_to_cuda(monkeypatch):
    fake_mamba_inner_fn.calls = 0
    monkeypatch.setattr(mamba_module, "scan_backend_for", lambda device, backend="auto": "cuda")
    monkeypatch.setattr(mamba_cuda, "mamba_inner", lambda: fake_mamba_inner_fn)


def test_the_fused_path_computes_the_module_path_in_both_orders(monkeypatch):
    torch.manual_seed(0)
    mixer = BiMambaMixer(16, scan="reference")
    x = torch.randn(2, 11, 16)
    expected = {r: mixer(x, reverse=r) for r in (False, True)}
    _routed_to_cuda(monkeypatch)
    for reverse in (False, True):
        torch.testing.assert_close(mixer(x, reverse=reverse), expected[reverse], atol=1e-5, rtol=1e-5)
    assert fake_mamba_inner_fn.calls == 4  # two directions, twice


def test_a_pet_hook_on_a_fused_module_keeps_the_module_path(monkeypatch):
    from audio_ticl.models import create_model

    torch.manual_seed(0)
    model = create_model("ssamba_custom", input_frames=48, embed_dim=16, depth=2, fstride=16, tstride=16).eval()
    params = create_pet("bitfit").inject(model, 0)  # hooks on conv1d and dt_proj, which mamba_inner_fn bypasses
    with torch.no_grad():
        for p in params:
            p.add_(0.1)
    x = torch.randn(1, 48, 128)
    expected = model(x, task_id=0)
    _routed_to_cuda(monkeypatch)
    torch.testing.assert_close(model(x, task_id=0), expected)
    assert fake_mamba_inner_fn.calls == 0


def test_conv_silu_uses_causal_conv1d_on_cuda_only_without_hooks(monkeypatch):
    conv = torch.nn.Conv1d(4, 4, 4, groups=4, padding=3)
    x = torch.randn(1, 4, 9)
    plain = mamba_cuda.conv_silu(conv, x)
    torch.testing.assert_close(plain, F.silu(conv(x)[..., :9]))
    assert not mamba_cuda.hooked(conv)
    conv.register_forward_hook(lambda m, a, out: None)
    assert mamba_cuda.hooked(conv)
