"""What the measurements ran on, and whether the CPU was shared while they ran."""
from __future__ import annotations

import os
import platform

import torch


def busy_note(threads: int, hint: str = "compare with --threads 1 --clock cpu") -> str:
    """A warning when other processes compete for the CPUs right now: then every parallel region of a
    multi-threaded op may wait a whole scheduler time slice for a worker thread, which punishes a mixer made of
    many ops (FTA) far more than one fused op (SDPA), and the table measures the machine's load, not the mixers."""
    try:
        with open("/proc/loadavg") as f:
            fields = f.read().split()
        others = int(fields[3].split("/")[0]) - 1  # runnable tasks now, minus this process
        load = float(fields[0])
    except (OSError, ValueError, IndexError):
        return ""
    cores = os.cpu_count() or 1
    if threads > 1 and others + threads > cores:
        return (
            f"note: {others} other runnable task(s) (load average {load:.1f}) on {cores} cores: they compete "
            f"with the {threads} threads, so these timings are unreliable; {hint}"
        )
    return ""


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (the platform's processor string elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def device_name(device: torch.device) -> str:
    """The GPU's name for CUDA, else the CPU model with its core count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()} ({os.cpu_count()} logical cores)"
