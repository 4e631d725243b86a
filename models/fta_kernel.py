"""FTA's fused CPU kernel (``fta_cpu_kernel.cpp``): built once per machine with torch's C++ extension loader, then
probed against dense masked attention before it is trusted.

Why compiled at first use rather than shipped: it is compiled with ``-march=native`` for the machine that runs it
(AVX-512 where there is one), and a wheel per CPU would be a packaging job of its own. The build needs a C++
compiler and ninja (a dependency), takes about a minute once, and is cached by torch
(``~/.cache/torch_extensions``, or ``$TORCH_EXTENSIONS_DIR``), keyed by the source, the flags and this machine's
CPU flags.

Where it cannot be built or its probe fails, :func:`fta_kernel` returns None and logs why once; FTA then takes
ATen's CPU flash path (``impl="flash"``) or the portable einsum path, which compute the same function.
``AUDIO_TICL_FTA_KERNEL=0`` switches the kernel off.
"""
from __future__ import annotations

import functools
import hashlib
import logging
import os
import threading
from pathlib import Path

import torch

__all__ = ["FTAKernel", "fta_kernel", "fta_kernel_error", "KERNEL_SOURCE", "ENV_SWITCH"]

log = logging.getLogger("ticl")

KERNEL_SOURCE = Path(__file__).with_name("fta_cpu_kernel.cpp")
ENV_SWITCH = "AUDIO_TICL_FTA_KERNEL"
_CFLAGS = ["-O3", "-march=native", "-ffp-contract=fast", "-fopenmp"]
_ERRORS: list[str] = []


def _cpu_fingerprint() -> str:
    """The CPU's flags (``-march=native`` code is only valid where they are the same)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


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
    quiet = logging.getLogger("torch.utils.cpp_extension")  # its import warns that no CUDA is found: not needed
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension  # imported late: it is slow
    finally:
        quiet.setLevel(level)

    key = hashlib.sha256(
        (_cpu_fingerprint() + " ".join(_CFLAGS) + torch.__version__ + KERNEL_SOURCE.read_text()).encode()
    ).hexdigest()[:12]
    log.info("building FTA's fused CPU kernel (once per machine, about a minute): %s", KERNEL_SOURCE.name)
    cpp_extension.load(
        name=f"audio_ticl_fta_cpu_{key}",
        sources=[str(KERNEL_SOURCE)],
        extra_cflags=_CFLAGS,
        extra_ldflags=["-fopenmp"],
        is_python_module=False,
        verbose=False,
    )
    return FTAKernel()


def _probe(kernel: FTAKernel) -> None:
    """Forward and backward on small grids (prefix 0 to 2, odd T) against dense masked attention in float64."""
    from audio_ticl.models.attention import _FTAFunction, fta_dense_reference

    gen = torch.Generator().manual_seed(0)
    hd = 2 * kernel.vector_width
    for n_freq, n_time, prefix in ((3, 5, 2), (1, 7, 0), (4, 3, 1), (2, 19, 1)):
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


def _first_error_line(message: str) -> str:
    """The compiler's first ``error:`` line of a failed build (ninja's own last line says nothing), else the last."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    return (errors or lines or ["(no message)"])[0 if errors else -1]


@functools.cache
def fta_kernel() -> FTAKernel | None:
    """The built and probed kernel, or None (with the reason in :func:`fta_kernel_error`). Cached.

    Built and probed in a short-lived thread: dispatch modes (``FlopCounterMode``), autocast and grad mode are
    per thread, so neither shows up in a caller's FLOP count or depends on the caller's state.
    """
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no", "off"):
        _ERRORS.append(f"switched off by {ENV_SWITCH}")
        return None
    result: list[FTAKernel] = []

    def run() -> None:
        try:
            kernel = _build()
            _probe(kernel)
            result.append(kernel)
        except Exception as exc:  # noqa: BLE001 - no compiler, no ninja, a failed probe: fall back, say why
            _ERRORS.append(f"{type(exc).__name__}: {_first_error_line(str(exc))}")

    thread = threading.Thread(target=run, name="audio-ticl-fta-kernel-build", daemon=True)
    thread.start()
    thread.join()
    if not result:
        log.warning("FTA's fused CPU kernel is not used (%s); FTA falls back to ATen's CPU flash path",
                    fta_kernel_error())
        return None
    return result[0]


def fta_kernel_error() -> str | None:
    """Why :func:`fta_kernel` returned None (None if it has not, or was not asked yet)."""
    return _ERRORS[-1] if _ERRORS else None
