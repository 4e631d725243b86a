"""The bidirectional Mamba mixer ("bimamba v2"): Vim's parameter names and shapes, Mamba's initialisation, both
directions present and each the mirror of the other, and the same outputs and gradients on every scan backend."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from audio_ticl.models.mamba import BiMambaMixer
from audio_ticl.models.scan_kernel import scan_kernel


def test_parameter_names_and_shapes_are_vims():
    mixer = BiMambaMixer(192)
    shapes = {name: tuple(p.shape) for name, p in mixer.named_parameters()}
    expected = {"in_proj.weight": (768, 192), "out_proj.weight": (192, 384)}
    for s, a in (("", "A_log"), ("_b", "A_b_log")):
        expected |= {f"conv1d{s}.weight": (384, 1, 4), f"conv1d{s}.bias": (384,), f"x_proj{s}.weight": (44, 384),
                     f"dt_proj{s}.weight": (384, 12), f"dt_proj{s}.bias": (384,), a: (384, 16), f"D{s}": (384,)}
    assert shapes == expected  # no in_proj / out_proj bias; dt_rank = ceil(192 / 16) = 12


def test_mambas_initialisation():
    torch.manual_seed(0)
    mixer = BiMambaMixer(64)
    for dt_proj, a_log, d in ((mixer.dt_proj, mixer.A_log, mixer.D), (mixer.dt_proj_b, mixer.A_b_log, mixer.D_b)):
        dt = F.softplus(dt_proj.bias)
        assert dt.min() >= 1e-3 * 0.999 and dt.max() <= 0.1 * 1.001
        assert dt.max() / dt.min() > 10  # spread log-uniformly, not a constant
        torch.testing.assert_close(-torch.exp(a_log), -torch.arange(1.0, 17.0).expand(128, 16))  # S4D-real
        assert torch.equal(d, torch.ones(128)) and dt_proj.weight.abs().max() <= 4**-0.5


def _mixer(scan="reference", dim=32, seed=0):
    torch.manual_seed(seed)
    mixer = BiMambaMixer(dim, scan=scan)
    with torch.no_grad():  # random backward parameters, so that the two directions differ
        for p in mixer.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return mixer


def test_both_directions_are_present():
    """SSAMBA's CPU fallback drops the backward branch; here a token must reach the positions before it too."""
    mixer = _mixer()
    x = torch.randn(1, 11, 32)
    base = mixer(x)
    late, early = x.clone(), x.clone()
    late[:, -1] += 1.0
    early[:, 0] += 1.0
    assert not torch.allclose(mixer(late)[:, 0], base[:, 0])  # the backward direction carried it back
    assert not torch.allclose(mixer(early)[:, -1], base[:, -1])  # the forward direction carried it on
    assert torch.equal(mixer(late)[:, :0], base[:, :0])


def test_the_backward_direction_is_the_forward_one_on_the_flipped_sequence():
    mixer = _mixer()
    mirrored = copy.deepcopy(mixer)
    with torch.no_grad():  # swap the directions' parameters
        for a, b in (("conv1d", "conv1d_b"), ("x_proj", "x_proj_b"), ("dt_proj", "dt_proj_b")):
            sa, sb = ({k: v.clone() for k, v in getattr(mirrored, n).state_dict().items()} for n in (a, b))
            getattr(mirrored, a).load_state_dict(sb)
            getattr(mirrored, b).load_state_dict(sa)
        mirrored.A_log.copy_(mixer.A_b_log)
        mirrored.A_b_log.copy_(mixer.A_log)
        mirrored.D.copy_(mixer.D_b)
        mirrored.D_b.copy_(mixer.D)
    x = torch.randn(2, 9, 32, dtype=torch.float64)
    torch.testing.assert_close(mirrored.double()(x.flip(1)).flip(1), mixer.double()(x))


@pytest.mark.skipif(scan_kernel() is None, reason="no CPU scan kernel here")
def test_the_cpu_scan_gives_the_reference_outputs_and_gradients():
    ref, fast = _mixer("reference"), _mixer("cpu")
    x = torch.randn(2, 23, 32)
    out_ref, out_fast = ref(x), fast(x)
    torch.testing.assert_close(out_fast, out_ref, atol=1e-5, rtol=1e-4)
    grad = torch.randn_like(out_ref)
    ref_grads = torch.autograd.grad(out_ref, list(ref.parameters()), grad)
    fast_grads = torch.autograd.grad(out_fast, list(fast.parameters()), grad)
    for (name, _), a, b in zip(ref.named_parameters(), fast_grads, ref_grads):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-3, msg=lambda m, n=name: f"{n}: {m}")
