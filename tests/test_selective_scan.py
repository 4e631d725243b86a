"""Mamba's selective scan: the fused CPU scan equals the sequential reference (forward and every gradient) on odd
lengths, batch 1, with and without the gate and the softplus, in float32 and bfloat16; the backends dispatch as
documented; a kernel that cannot be used falls back, saying why."""
from __future__ import annotations

import pytest
import torch
from scan_inputs import scan_inputs

from audio_ticl.models import scan_kernel as sk
from audio_ticl.models.errors import ModelError
from audio_ticl.models.selective_scan import (
    scan_backend_for,
    selective_scan,
    selective_scan_cpu,
    selective_scan_reference,
)

KERNEL = sk.scan_kernel()
needs_kernel = pytest.mark.skipif(KERNEL is None, reason=f"no CPU scan kernel here: {sk.scan_kernel_error()}")
NAMES = ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")


_inputs = scan_inputs


def _with_grads(fn, inputs, dout, **kwargs):
    leaves = [t.detach().clone().requires_grad_(True) if t is not None else None for t in inputs]
    out = fn(*leaves, **kwargs)
    live = [t for t in leaves if t is not None]
    return out, torch.autograd.grad(out, live, dout.to(out.dtype))


def test_the_reference_is_the_recurrence_written_out():
    """One channel, three steps, by hand: h_t = exp(dt A) h_{t-1} + dt B_t u_t, y_t = <h_t, C_t> + D u_t."""
    u, delta = torch.tensor([[[1.0, -2.0, 0.5]]]), torch.tensor([[[0.1, 0.2, 0.3]]])
    a, d = torch.tensor([[-1.0, -2.0]]), torch.tensor([0.5])
    b, c = torch.tensor([[[1.0, 0.0, 2.0], [0.5, 1.0, 0.0]]]), torch.tensor([[[1.0, 1.0, 1.0], [2.0, 0.0, 1.0]]])
    h = torch.zeros(2)
    expected = []
    for t in range(3):
        dt = delta[0, 0, t]
        h = torch.exp(dt * a[0]) * h + dt * b[0, :, t] * u[0, 0, t]
        expected.append((h * c[0, :, t]).sum() + d[0] * u[0, 0, t])
    got = selective_scan_reference(u, delta, a, b, c, d)
    torch.testing.assert_close(got[0, 0], torch.stack(expected))


@needs_kernel
@pytest.mark.parametrize("batch, length, state, gate, softplus", [
    (2, 13, 16, True, True), (1, 1, 16, True, True), (1, 7, 8, False, False), (3, 31, 32, True, False),
])
def test_cpu_scan_equals_the_reference_with_every_gradient(batch, length, state, gate, softplus):
    inputs = _inputs(batch=batch, length=length, state=state, gate=gate)
    if not softplus:  # dt = delta + bias must stay positive, as softplus guarantees (else exp(dt A) grows)
        inputs[1], inputs[7] = inputs[1].abs() * 0.2, inputs[7].abs() * 0.1
    dout = torch.randn(batch, 5, length, generator=torch.Generator().manual_seed(9))
    got, got_grads = _with_grads(selective_scan_cpu, inputs, dout, delta_softplus=softplus)
    ref, ref_grads = _with_grads(selective_scan_reference, [t.double() if t is not None else None for t in inputs],
                                 dout.double(), delta_softplus=softplus)
    torch.testing.assert_close(got.double(), ref, atol=1e-5, rtol=1e-4)
    names = [n for n, t in zip(NAMES, inputs) if t is not None]
    for name, a, b in zip(names, got_grads, ref_grads):
        torch.testing.assert_close(a.double(), b, atol=1e-4, rtol=1e-4, msg=lambda m, n=name: f"d{n}: {m}")


@needs_kernel
def test_cpu_scan_in_bfloat16_computes_in_float32():
    inputs = _inputs(length=9, dtype=torch.bfloat16)
    out = selective_scan_cpu(*inputs, delta_softplus=True)
    ref = selective_scan_reference(*[t.double() if t is not None else None for t in inputs], delta_softplus=True)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.double(), ref, atol=0.05, rtol=0.02)


@needs_kernel
def test_the_thread_count_does_not_change_the_bits():
    inputs = _inputs(batch=2, channels=8, length=17)
    dout = torch.randn(2, 8, 17, generator=torch.Generator().manual_seed(1))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _with_grads(selective_scan_cpu, inputs, dout, delta_softplus=True)
        torch.set_num_threads(2)
        two = _with_grads(selective_scan_cpu, inputs, dout, delta_softplus=True)
    finally:
        torch.set_num_threads(before)
    assert torch.equal(one[0], two[0])
    for a, b in zip(one[1], two[1]):  # B, C, A, D and the bias are summed per thread: equal to rounding
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_backend_dispatch_and_errors():
    assert scan_backend_for("cpu", "reference") == "reference"
    assert scan_backend_for("cpu") == ("cpu" if KERNEL is not None else "reference")
    with pytest.raises(ModelError, match="backend must be one of auto, reference, cpu, cuda; got 'fast'"):
        scan_backend_for("cpu", "fast")
    with pytest.raises(ModelError, match="'cuda' needs CUDA tensors and mamba-ssm"):
        scan_backend_for("cpu", "cuda")
    inputs = _inputs(length=5)
    torch.testing.assert_close(selective_scan(*inputs, delta_softplus=True, backend="reference"),
                               selective_scan_reference(*inputs, delta_softplus=True))


@needs_kernel
def test_a_state_size_the_kernel_cannot_take_is_refused_by_the_kernel():
    inputs = _inputs(state=12)  # any N up to 64: the lanes are channels
    torch.testing.assert_close(selective_scan_cpu(*inputs, delta_softplus=True),
                               selective_scan_reference(*inputs, delta_softplus=True), atol=1e-5, rtol=1e-4)
    with pytest.raises(RuntimeError, match="N must be between 1 and 64, got 72"):
        selective_scan_cpu(*_inputs(state=72))


@needs_kernel
def test_channel_blocks_and_backward_segments_with_ragged_ends():
    """37 channels: blocks of 16 (or 8) lanes and a partial one; 150 steps: the backward's 128-step segments and a
    partial last one. Every output and gradient equals the reference."""
    inputs = _inputs(batch=2, channels=37, length=150, state=16)
    dout = torch.randn(2, 37, 150, generator=torch.Generator().manual_seed(3))
    got, got_grads = _with_grads(selective_scan_cpu, inputs, dout, delta_softplus=True)
    ref, ref_grads = _with_grads(selective_scan_reference, [t.double() for t in inputs], dout.double(),
                                 delta_softplus=True)
    torch.testing.assert_close(got.double(), ref, atol=1e-5, rtol=1e-4)
    for name, a, b in zip(NAMES, got_grads, ref_grads):
        torch.testing.assert_close(a.double(), b, atol=1e-4, rtol=1e-4, msg=lambda m, n=name: f"d{n}: {m}")


@needs_kernel
def test_the_kernels_softplus_holds_far_from_zero():
    """softplus(x) = max(x, 0) + log1p(exp(-|x|)) with a vector log: exact to float rounding from -30 to 30 (A = 0
    and B = u = 1 make the output the running sum of dt, so one step shows dt itself)."""
    x = torch.linspace(-30, 30, 121).reshape(1, 121, 1)
    ones = torch.ones(1, 121, 1)
    out = selective_scan_cpu(ones, x, torch.zeros(121, 16), torch.ones(1, 16, 1), torch.eye(16)[:1].T[None],
                             delta_softplus=True)
    torch.testing.assert_close(out, torch.nn.functional.softplus(x.double()).float(), atol=1e-7, rtol=2e-6)


@pytest.fixture
def fresh_scan_cache(monkeypatch):
    sk.scan_kernel.cache_clear()
    yield
    monkeypatch.undo()
    sk.scan_kernel.cache_clear()


def test_the_environment_switch_turns_the_kernel_off(monkeypatch, fresh_scan_cache):
    monkeypatch.setenv(sk.ENV_SWITCH, "off")
    assert sk.scan_kernel() is None and sk.ENV_SWITCH in sk.scan_kernel_error()
    assert scan_backend_for("cpu") == "reference"
    with pytest.raises(ModelError, match="backend 'cpu' could not be used here"):
        selective_scan_cpu(*_inputs(length=3))


@needs_kernel
def test_a_kernel_that_computes_wrong_numbers_is_not_used(monkeypatch, fresh_scan_cache):
    real = sk.ScanKernel.forward
    monkeypatch.setattr(sk.ScanKernel, "forward", lambda self, *args: real(self, *args) * 1.001)
    assert sk.scan_kernel() is None and "scan out differs from the reference" in sk.scan_kernel_error()


def test_bench_scan_prints_every_backend_and_checks_they_agree(capsys):
    from audio_ticl.benchmark import cli

    assert cli.main(["bench", "scan", "--length", "17", "--channels", "8", "--repeats", "1", "--reference",
                     "--threads", "1"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("selective scan, forward: B=2 E=8 L=17 N=16, fp32")
    backends = {line.split()[0] for line in out.splitlines()[1:] if line.startswith("  ")}
    assert {"cpu" if KERNEL is not None else "reference", "reference", "mambapy"} <= backends
    assert ("x faster than mambapy" in out) or ("mambapy    not installed" in out)


@needs_kernel
def test_the_kernels_own_softplus_and_gate_equal_the_reference():
    """The kernel's own softplus and gate (its full mamba-ssm interface), through its autograd Function alone."""
    from audio_ticl.models.selective_scan import _CPUScan

    inputs = _inputs(length=11)
    dout = torch.randn(2, 5, 11, generator=torch.Generator().manual_seed(3))
    leaves = [t.clone().requires_grad_(True) for t in inputs]
    got = _CPUScan.apply(*leaves, True, KERNEL)
    ref_leaves = [t.double().requires_grad_(True) for t in inputs]
    ref = selective_scan_reference(*ref_leaves, delta_softplus=True)
    torch.testing.assert_close(got.double(), ref, atol=1e-5, rtol=1e-4)
    for a, b in zip(torch.autograd.grad(got, leaves, dout), torch.autograd.grad(ref, ref_leaves, dout.double())):
        torch.testing.assert_close(a.double(), b, atol=1e-4, rtol=1e-4)


@needs_kernel
def test_views_of_the_layers_layout_go_in_without_copies_and_give_the_same_numbers():
    """A Mamba layer's u, delta and z are (B, E, L) views of (B, L, E) tensors and B, C views of x_proj's output:
    the kernel reads them as they are, and its output is laid out as (B, L, E) for out_proj."""
    inputs = _inputs(batch=2, channels=20, length=33)
    u, delta, a, b, c, d, z, bias = inputs
    as_view = [t.transpose(1, 2).contiguous().transpose(1, 2) for t in (u, delta, z)]  # (B, L, E) memory
    x_dbl = torch.cat([b.transpose(1, 2), c.transpose(1, 2), torch.zeros(2, 33, 3)], dim=-1)  # (B, L, 2N + 3)
    b_view, c_view = x_dbl[..., :16].transpose(1, 2), x_dbl[..., 16:32].transpose(1, 2)
    assert not as_view[0].is_contiguous() and b_view.stride(1) == 1
    got = selective_scan_cpu(as_view[0], as_view[1], a, b_view, c_view, d, as_view[2], bias, delta_softplus=True)
    assert got.stride(1) == 1  # channels contiguous: rearrange to (B, L, E) is a view
    torch.testing.assert_close(got, selective_scan_cpu(*inputs, delta_softplus=True), rtol=0, atol=0)
