"""Random selective-scan inputs in mamba-ssm's argument order, shared by the CPU and the CUDA scan tests."""
from __future__ import annotations

import torch


def scan_inputs(batch: int = 2, channels: int = 5, length: int = 13, state: int = 16, gate: bool = True,
                seed: int = 0, dtype: torch.dtype = torch.float32, float32_params: bool = False) -> list:
    """u, delta, A, B, C, D, z (None without ``gate``), delta_bias; ``float32_params`` keeps A, D and the bias in
    float32 whatever ``dtype`` is, as mamba-ssm does."""
    gen = torch.Generator().manual_seed(seed)
    u, z = (torch.randn(batch, channels, length, generator=gen) for _ in range(2))
    delta = torch.randn(batch, channels, length, generator=gen) * 0.5
    a = -torch.exp(torch.randn(channels, state, generator=gen) * 0.5)
    b, c = (torch.randn(batch, state, length, generator=gen) for _ in range(2))
    d, bias = torch.randn(channels, generator=gen), torch.randn(channels, generator=gen) * 0.3 - 2.0
    params = {2, 5, 7} if float32_params else set()
    out = [u, delta, a, b, c, d, z if gate else None, bias]
    return [t if t is None or i in params else t.to(dtype) for i, t in enumerate(out)]
