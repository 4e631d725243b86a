"""FTA's fused CPU kernel: exact against dense -inf-masked attention (forward and gradients), the same bits whatever
the layout or thread count, counted by the FLOP counter, and a clear fallback when it cannot be built or is wrong."""
from __future__ import annotations

import pytest
import torch
from einops import rearrange

from audio_ticl.benchmark.metrics import forward_flops
from audio_ticl.models import fta_kernel as fk
from audio_ticl.models.attention import (
    frequency_time_attention,
    frequency_time_attention_packed,
    fta_attended_pairs,
    fta_dense_reference,
)
from audio_ticl.models.errors import ModelError
from audio_ticl.models.mixers import create_mixer

KERNEL = fk.fta_kernel()
pytestmark = pytest.mark.skipif(KERNEL is None, reason=f"no FTA CPU kernel here: {fk.fta_kernel_error()}")

# grids with T' below, at and above the vector width and not a multiple of it; one row, one column, one patch;
# 0 to 3 prefix tokens (none, CLS, CLS + distillation, VPT-like)
CASES = [
    ((3, 5), 1), ((4, 7), 2), ((6, 3), 0), ((12, 17), 2), ((1, 6), 1), ((5, 1), 2), ((1, 1), 1),
    ((12, 16), 1), ((2, 33), 3), ((12, 101), 2),
]


def _qkv(grid, prefix, head_dim, batch=2, heads=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    length = prefix + grid[0] * grid[1]
    return [torch.randn(batch, heads, length, head_dim, generator=gen) for _ in range(4)]


# head dims: 32 (16-float vectors where the rows are long enough), 24 (8-float vectors), 20 (zero-padded to 24)
@pytest.mark.parametrize("head_dim", [32, 24, 20])
@pytest.mark.parametrize("grid,prefix", CASES)
def test_kernel_equals_dense_masked_attention_with_gradients(grid, prefix, head_dim):
    q, k, v, dout = _qkv(grid, prefix, head_dim)
    leaves = [t.clone().requires_grad_(True) for t in (q, k, v)]
    out = frequency_time_attention(*leaves, grid, prefix, impl="kernel")
    grads = torch.autograd.grad(out, leaves, dout)
    q64, k64, v64 = (t.double().requires_grad_(True) for t in (q, k, v))
    ref = fta_dense_reference(q64, k64, v64, grid, prefix)
    ref_grads = torch.autograd.grad(ref, (q64, k64, v64), dout.double())
    torch.testing.assert_close(out.double(), ref, atol=2e-6, rtol=1e-5)
    for name, a, b in zip("qkv", grads, ref_grads):
        torch.testing.assert_close(a.double(), b, atol=2e-5, rtol=1e-4, msg=lambda m, n=name: f"d{n}: {m}")


def test_auto_takes_the_kernel_for_float32_and_the_flash_path_otherwise():
    grid, prefix = (4, 9), 2
    q, k, v, _ = _qkv(grid, prefix, KERNEL.vector_width)
    assert torch.equal(frequency_time_attention(q, k, v, grid, prefix), frequency_time_attention(
        q, k, v, grid, prefix, impl="kernel"))
    assert not torch.equal(frequency_time_attention(q, k, v, grid, prefix), frequency_time_attention(
        q, k, v, grid, prefix, impl="flash"))  # a different summation order: proves auto did not take flash
    q64, k64, v64 = (t.double() for t in (q, k, v))  # float64: the flash path
    assert torch.equal(frequency_time_attention(q64, k64, v64, grid, prefix), frequency_time_attention(
        q64, k64, v64, grid, prefix, impl="flash"))


def test_packed_layout_strided_inputs_and_thread_count_give_the_same_bits():
    grid, prefix, heads = (6, 21), 2, 3
    head_dim = KERNEL.vector_width
    length = prefix + grid[0] * grid[1]
    qkv = torch.randn(2, length, 3 * heads * head_dim, generator=torch.Generator().manual_seed(1), requires_grad=True)
    dout = torch.randn(2, length, heads * head_dim, generator=torch.Generator().manual_seed(2))

    def packed(threads: int):
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            out = frequency_time_attention_packed(qkv, heads, grid, prefix, impl="kernel")
            return out, torch.autograd.grad(out, qkv, dout)[0]
        finally:
            torch.set_num_threads(before)

    out1, grad1 = packed(1)
    out2, grad2 = packed(2)
    assert torch.equal(out1, out2) and torch.equal(grad1, grad2)
    q, k, v = rearrange(qkv, "b l (s h d) -> s b h l d", s=3, h=heads).unbind(0)  # strided views
    assert not q.is_contiguous()
    split = frequency_time_attention(q, k, v, grid, prefix, impl="kernel")
    assert torch.equal(rearrange(split, "b h l d -> b l (h d)"), out1)
    (grad_split,) = torch.autograd.grad(split, qkv, rearrange(dout, "b l (h d) -> b h l d", h=heads))
    assert torch.equal(grad_split, grad1)


@pytest.mark.parametrize("head_dim", [32, 24])  # the real head dim, not the padded one
def test_the_flop_counter_counts_the_attended_pairs(head_dim):
    grid, prefix, heads = (12, 9), 2, 4
    mixer = create_mixer("fta", heads * head_dim, heads)
    q, k, v, _ = _qkv(grid, prefix, head_dim, heads=heads)
    flops = forward_flops(lambda: mixer.attend(q, k, v, grid, prefix), mixer)
    assert flops == 4 * 2 * heads * fta_attended_pairs(grid, prefix) * head_dim


def test_impl_kernel_refuses_what_it_cannot_run():
    grid, prefix = (3, 4), 1
    q, k, v, _ = _qkv(grid, prefix, KERNEL.vector_width)
    with pytest.raises(ModelError, match="CPU float32 tensors, got cpu torch.float64"):
        frequency_time_attention(q.double(), k.double(), v.double(), grid, prefix, impl="kernel")
    with pytest.raises(ModelError, match="CPU float32 tensors, got cpu torch.bfloat16"):
        frequency_time_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), grid, prefix, impl="kernel")


@pytest.fixture
def fresh_kernel_cache(monkeypatch):
    fk.fta_kernel.cache_clear()
    yield
    monkeypatch.undo()  # before the check below: the test's patches must not outlive it
    fk.fta_kernel.cache_clear()
    assert fk.fta_kernel() is not None


def _assert_falls_back(reason: str) -> None:
    assert fk.fta_kernel() is None
    assert reason in fk.fta_kernel_error()
    grid, prefix = (3, 5), 1
    q, k, v, _ = _qkv(grid, prefix, 16)
    assert torch.equal(frequency_time_attention(q, k, v, grid, prefix),
                       frequency_time_attention(q, k, v, grid, prefix, impl="flash"))
    with pytest.raises(ModelError, match="could not be used here"):
        frequency_time_attention(q, k, v, grid, prefix, impl="kernel")


def test_the_environment_switch_turns_the_kernel_off(monkeypatch, fresh_kernel_cache):
    monkeypatch.setenv(fk.ENV_SWITCH, "0")
    _assert_falls_back(f"switched off by {fk.ENV_SWITCH}")


def test_a_kernel_that_computes_wrong_numbers_is_not_used(monkeypatch, fresh_kernel_cache):
    real = fk.FTAKernel.forward

    def off_by_a_bit(self, q, k, v, out, *args):
        lse = real(self, q, k, v, out, *args)
        out.add_(1e-3)
        return lse

    monkeypatch.setattr(fk.FTAKernel, "forward", off_by_a_bit)
    _assert_falls_back("kernel out differs from dense attention")


def test_a_failed_build_names_the_compiler_error(monkeypatch, tmp_path, fresh_kernel_cache):
    broken = tmp_path / "fta_cpu_kernel.cpp"
    broken.write_text("this is not C++;\n")
    monkeypatch.setattr(fk, "KERNEL_SOURCE", broken)
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "build"))
    _assert_falls_back("error:")
