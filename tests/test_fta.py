"""Frequency-Time Attention: exactness against the dense -inf-masked reference, locality, gradients, errors."""
from __future__ import annotations

import types

import pytest
import torch
from einops import rearrange
from torch.utils.flop_counter import FlopCounterMode

from audio_ticl.models import attention, cpu_flash
from audio_ticl.models.attention import (
    criss_cross_mask,
    frequency_time_attention,
    frequency_time_attention_packed,
    fta_attended_pairs,
    fta_dense_reference,
)
from audio_ticl.models.errors import ModelError
from audio_ticl.models.mixers import MIXERS, FrequencyTimeAttention, GlobalSelfAttention, create_mixer

# (grid, prefix tokens): square and non-square grids, 1 and 2 prefix tokens, degenerate single row / column
CASES = [((3, 5), 1), ((4, 7), 2), ((6, 3), 1), ((12, 5), 2), ((1, 6), 1), ((5, 1), 2), ((3, 4), 0), ((1, 1), 1)]
IMPLS = ["flash", "einsum"]


def _qkv(grid, prefix, dtype, batch=2, heads=3, head_dim=8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    length = prefix + grid[0] * grid[1]
    return [torch.randn(batch, heads, length, head_dim, generator=gen, dtype=dtype) for _ in range(3)]


def test_criss_cross_mask_pattern():
    mask = criss_cross_mask((3, 4), 1)
    assert mask.shape == (13, 13)
    assert mask[0].all() and mask[:, 0].all()  # CLS attends / is attended everywhere
    # patch (f=1, t=2) is token 1 + 1*4 + 2 = 7: its row (f=1) and column (t=2), nothing else
    expected = {1 + 1 * 4 + t for t in range(4)} | {1 + f * 4 + 2 for f in range(3)} | {0}
    assert set(torch.nonzero(mask[7]).flatten().tolist()) == expected
    assert fta_attended_pairs((3, 4), 1) == int(mask.sum())


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("grid,prefix", CASES)
def test_fta_equals_dense_masked_sdpa_float64(grid, prefix, impl):
    q, k, v = (t.requires_grad_(True) for t in _qkv(grid, prefix, torch.float64))
    ref = fta_dense_reference(q, k, v, grid, prefix)
    out = frequency_time_attention(q, k, v, grid, prefix, impl=impl)
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=0)
    grad = torch.randn_like(ref)
    ref_grads = torch.autograd.grad(ref, (q, k, v), grad)
    out_grads = torch.autograd.grad(out, (q, k, v), grad)
    for a, b in zip(out_grads, ref_grads):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("grid,prefix", [((12, 13), 1), ((12, 9), 2)])
def test_fta_equals_dense_masked_sdpa_float32(grid, prefix, impl):
    q, k, v = _qkv(grid, prefix, torch.float32, heads=4, head_dim=64)
    out = frequency_time_attention(q, k, v, grid, prefix, impl=impl)
    torch.testing.assert_close(out, fta_dense_reference(q, k, v, grid, prefix), atol=1e-5, rtol=0)


@pytest.mark.parametrize("prefix", [1, 3])
def test_fta_in_bfloat16_with_several_prefix_tokens(prefix):
    """The branch weights come from float32 log-sum-exps; with several prefix tokens (VPT prompts, DeiT's
    distillation token) they meet bfloat16 values in a matmul, which failed ("expected scalar type Float")."""
    grid = (4, 5)
    q, k, v = (t.requires_grad_(True) for t in _qkv(grid, prefix, torch.bfloat16))
    out = frequency_time_attention(q, k, v, grid, prefix, impl="flash")
    out.float().sum().backward()
    ref = fta_dense_reference(*(t.detach().double() for t in (q, k, v)), grid, prefix)
    assert out.dtype == q.grad.dtype == torch.bfloat16
    torch.testing.assert_close(out.double(), ref, atol=0.05, rtol=0)


@pytest.mark.parametrize("grid,prefix", [((3, 5), 1), ((4, 6), 2)])
def test_packed_qkv_path_matches_reference_with_gradients(grid, prefix):
    heads, head_dim = 3, 8
    length = prefix + grid[0] * grid[1]
    qkv = torch.randn(2, length, 3 * heads * head_dim, dtype=torch.float64, requires_grad=True)
    q, k, v = rearrange(qkv, "b l (s h d) -> s b h l d", s=3, h=heads).unbind(0)
    ref = rearrange(fta_dense_reference(q, k, v, grid, prefix), "b h l d -> b l (h d)")
    out = frequency_time_attention_packed(qkv, heads, grid, prefix)
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=0)
    grad = torch.randn_like(ref)
    (g_ref,) = torch.autograd.grad(ref, qkv, grad)
    (g_out,) = torch.autograd.grad(out, qkv, grad)
    torch.testing.assert_close(g_out, g_ref, atol=1e-10, rtol=0)


@pytest.mark.parametrize("impl", IMPLS)
def test_fta_is_local_to_row_and_column(impl):
    grid, prefix = (4, 6), 1
    n_time = grid[1]
    q, k, v = _qkv(grid, prefix, torch.float64)
    f, t = 1, 2
    query = prefix + f * n_time + t
    base = frequency_time_attention(q, k, v, grid, prefix, impl=impl)

    def perturbed(token: int) -> torch.Tensor:
        k2, v2 = k.clone(), v.clone()
        k2[:, :, token] += 3.0
        v2[:, :, token] -= 5.0
        return frequency_time_attention(q, k2, v2, grid, prefix, impl=impl)

    outside = prefix + 3 * n_time + 4  # f=3, t=4: neither row 1 nor column 2
    assert torch.equal(perturbed(outside)[:, :, query], base[:, :, query])
    for inside in (prefix + f * n_time + 5, prefix + 3 * n_time + t, 0):  # same row, same column, CLS
        assert not torch.allclose(perturbed(inside)[:, :, query], base[:, :, query])
    assert not torch.allclose(perturbed(outside)[:, :, 0], base[:, :, 0])  # CLS sees everything


@pytest.mark.parametrize("grid", [(1, 7), (6, 1)])
def test_fta_on_a_single_row_or_column_is_global_attention(grid):
    """With F' = 1 (or T' = 1) a token's row (column) is every token: FTA must equal GSA."""
    torch.manual_seed(0)
    gsa = GlobalSelfAttention(32, 4).double()
    fta = FrequencyTimeAttention(32, 4).double()
    fta.load_state_dict(gsa.state_dict())
    x = torch.randn(2, 1 + grid[0] * grid[1], 32, dtype=torch.float64)
    torch.testing.assert_close(fta(x, grid, 1), gsa(x, grid, 1), atol=1e-10, rtol=0)


def test_fta_mixer_matches_reference_on_its_own_projections():
    torch.manual_seed(0)
    mixer = create_mixer("fta", 48, 4).double()
    grid, prefix = (5, 7), 2
    x = torch.randn(2, prefix + 35, 48, dtype=torch.float64)
    q, k, v = rearrange(mixer.qkv(x), "b l (s h d) -> s b h l d", s=3, h=4).unbind(0)
    ref = mixer.proj(rearrange(fta_dense_reference(q, k, v, grid, prefix), "b h l d -> b l (h d)"))
    torch.testing.assert_close(mixer(x, grid, prefix), ref, atol=1e-10, rtol=0)


def test_mixer_registry_and_errors():
    assert set(MIXERS) == {"gsa", "fta", "gsa_materialized"}
    with pytest.raises(KeyError, match="unknown token mixer 'nope'"):
        create_mixer("nope", 32, 4)
    with pytest.raises(ModelError, match="not divisible"):
        create_mixer("fta", 30, 4)
    q, k, v = _qkv((3, 4), 1, torch.float32)
    with pytest.raises(ModelError, match=r"token count 13 does not match grid \(4, 4\)"):
        frequency_time_attention(q, k, v, (4, 4), 1)
    with pytest.raises(ModelError, match="impl"):
        frequency_time_attention(q, k, v, (3, 4), 1, impl="dense")


# ------------------------------------------------------------------------------------ private-op probe
def test_the_probe_passes_here_and_auto_takes_the_fused_path():
    """float64: the dtype where the flash path is auto's choice (float32 prefers this package's own kernel)."""
    assert cpu_flash.cpu_flash_available(torch.float32) and cpu_flash.cpu_flash_available(torch.float64)
    grid, prefix = (4, 7), 2
    q, k, v = _qkv(grid, prefix, torch.float64)
    assert torch.equal(frequency_time_attention(q, k, v, grid, prefix), frequency_time_attention(q, k, v, grid, prefix,
                                                                                                impl="flash"))


def test_the_probe_draws_no_random_numbers_and_counts_no_flops():
    cpu_flash.cpu_flash_available.cache_clear()
    state = torch.get_rng_state()
    with FlopCounterMode(display=False) as counter:
        assert cpu_flash.cpu_flash_available(torch.float32)
    assert counter.get_total_flops() == 0 and torch.equal(torch.get_rng_state(), state)


def _raise(*args, **kwargs):
    raise RuntimeError("simulated: this torch's private op is broken")


def _wrong(q, k, v, **kwargs):  # runs, but no longer computes attention
    return torch.zeros_like(q), torch.zeros(q.shape[:-1], dtype=q.dtype)


@pytest.mark.parametrize("forward", [_raise, _wrong], ids=["raises", "wrong_result"])
def test_a_failing_private_op_falls_back_to_the_portable_path(monkeypatch, forward):
    grid, prefix = (3, 5), 1
    q, k, v = (t.requires_grad_(True) for t in _qkv(grid, prefix, torch.float32))
    qkv = torch.randn(2, prefix + 15, 3 * 24, generator=torch.Generator().manual_seed(3), requires_grad=True)
    portable = frequency_time_attention(q, k, v, grid, prefix, impl="einsum")
    portable_grads = torch.autograd.grad(portable.sum(), (q, k, v))
    portable_packed = frequency_time_attention_packed(qkv, 3, grid, prefix, impl="einsum")
    broken = types.SimpleNamespace(
        _scaled_dot_product_flash_attention_for_cpu=forward,
        _scaled_dot_product_flash_attention_for_cpu_backward=_raise,
    )
    monkeypatch.setattr(cpu_flash, "_ATEN", broken)
    monkeypatch.setattr(attention, "fta_kernel", lambda: None)  # no fused kernel of our own either
    cpu_flash.cpu_flash_available.cache_clear()
    try:
        assert not cpu_flash.cpu_flash_available(torch.float32)
        out = frequency_time_attention(q, k, v, grid, prefix)  # "auto"
        assert torch.equal(out, portable)
        for a, b in zip(torch.autograd.grad(out.sum(), (q, k, v)), portable_grads):
            assert torch.equal(a, b)
        assert torch.equal(frequency_time_attention_packed(qkv, 3, grid, prefix), portable_packed)
        assert FrequencyTimeAttention(24, 3)(qkv[..., :24].detach(), grid, prefix).shape == (2, 16, 24)  # mixer too
        with pytest.raises(ModelError, match="impl 'flash' needs torch's CPU flash-attention ops"):
            frequency_time_attention(q, k, v, grid, prefix, impl="flash")
    finally:
        monkeypatch.undo()
        cpu_flash.cpu_flash_available.cache_clear()
    assert cpu_flash.cpu_flash_available(torch.float32)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fta_on_cuda_matches_reference():
    """Off CPU the portable path runs ("auto"); it must agree with the dense reference there too."""
    grid, prefix = (12, 17), 2
    q, k, v = (t.cuda().requires_grad_(True) for t in _qkv(grid, prefix, torch.float32, heads=4, head_dim=64))
    out = frequency_time_attention(q, k, v, grid, prefix)
    ref = fta_dense_reference(q, k, v, grid, prefix)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=0)
    grad = torch.randn_like(ref)
    for a, b in zip(torch.autograd.grad(out, (q, k, v), grad), torch.autograd.grad(ref, (q, k, v), grad)):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    mixer = FrequencyTimeAttention(64, 4).cuda()
    assert mixer(torch.randn(2, prefix + 12 * 17, 64, device="cuda"), grid, prefix).shape == (2, 206, 64)
