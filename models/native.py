"""Building this package's C++ CPU kernels (FTA's fused attention, Mamba's selective scan) at first use, and
trusting them only after a probe.

Why compiled at first use rather than shipped: each is compiled with ``-march=native`` for the machine that runs
it (AVX-512 where there is one), and a wheel per CPU would be a packaging job of its own. A build needs a C++
compiler and ninja (a dependency), takes 10-60 s once, and is cached by torch (``~/.cache/torch_extensions``, or
``$TORCH_EXTENSIONS_DIR``), keyed by the source and its headers, the flags, torch's version and this machine's
CPU flags. Each kernel registers dispatcher ops (``TORCH_LIBRARY``), so FLOP counters and the profiler see them by
name.

Where a kernel cannot be built, or its probe against the pure-PyTorch reference fails, its loader returns None and
logs why once, and the caller takes its pure-PyTorch path.
"""
from __future__ import annotations

import hashlib
import logging
import os
import platform
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import torch

__all__ = ["CFLAGS", "cpu_fingerprint", "build_ops", "first_error_line", "switched_off", "load_probed"]

log = logging.getLogger("ticl")

CFLAGS = ["-O3", "-march=native", "-ffp-contract=fast", "-fopenmp"]
T = TypeVar("T")


def cpu_fingerprint() -> str:
    """The CPU's flags (``-march=native`` code is only valid where they are the same)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build_ops(source: Path, prefix: str, what: str) -> None:
    """Compile ``source`` (or reuse torch's cached build) and load it, registering its ops."""
    quiet = logging.getLogger("torch.utils.cpp_extension")  # its import warns that no CUDA is found: not needed
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        from torch.utils import cpp_extension  # imported late: it is slow
    finally:
        quiet.setLevel(level)
    headers = "".join(h.read_text() for h in sorted(source.parent.glob("*.h")))  # shared code (vector_exp.h)
    key = hashlib.sha256(
        (cpu_fingerprint() + " ".join(CFLAGS) + torch.__version__ + source.read_text() + headers).encode()
    ).hexdigest()[:12]
    log.info("loading %s from %s (compiled on first use on a machine, 10-60 s; cached after)", what, source.name)
    cpp_extension.load(
        name=f"{prefix}_{key}",
        sources=[str(source)],
        extra_cflags=CFLAGS,
        extra_ldflags=["-fopenmp"],
        extra_include_paths=[str(source.parent)],
        is_python_module=False,
        verbose=False,
    )


def first_error_line(message: str) -> str:
    """The compiler's first ``error:`` line of a failed build (ninja's own last line says nothing), else the last."""
    lines = [line.strip() for line in message.strip().splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    return (errors or lines or ["(no message)"])[0 if errors else -1]


def switched_off(env_switch: str) -> bool:
    """True when the environment variable says 0, false, no or off."""
    return os.environ.get(env_switch, "1").strip().lower() in ("0", "false", "no", "off")


def load_probed(build_and_probe: Callable[[], T], what: str, fallback: str, env_switch: str,
                errors: list[str]) -> T | None:
    """``build_and_probe()``'s result, or None with the reason appended to ``errors`` and logged once.

    Run in a short-lived thread: dispatch modes (``FlopCounterMode``), autocast and grad mode are per thread, so
    neither shows up in a caller's FLOP count or depends on the caller's state.
    """
    if switched_off(env_switch):
        errors.append(f"switched off by {env_switch}")
        return None
    result: list[T] = []

    def run() -> None:
        try:
            result.append(build_and_probe())
        except Exception as exc:  # noqa: BLE001 - no compiler, no ninja, a failed probe: fall back, say why
            errors.append(f"{type(exc).__name__}: {first_error_line(str(exc))}")

    thread = threading.Thread(target=run, name=f"audio-ticl-build-{what}", daemon=True)
    thread.start()
    thread.join()
    if not result:
        log.warning("%s is not used (%s); %s", what, errors[-1], fallback)
        return None
    return result[0]
