"""What the measurements ran on, and whether the CPU was shared while they ran."""
from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def own_runnable_threads(task_dir: Path = Path("/proc/self/task")) -> int:
    """This process's threads that are runnable now (state R): the caller, and torch's OpenMP workers while they
    spin after a parallel region. /proc/loadavg counts every runnable thread, ours included."""
    running = 0
    for stat in task_dir.glob("*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # the thread ended between the listing and the read
            continue
        running += text[text.rindex(")") + 2:].startswith("R")
    return max(running, 1)


def busy_note(threads: int, hint: str = "compare with --threads 1 --clock cpu", loadavg: Path = Path("/proc/loadavg"),
              task_dir: Path = Path("/proc/self/task")) -> str:
    """A warning when other processes compete for the CPUs right now: then every parallel region of a
    multi-threaded op may wait a whole scheduler time slice for a worker thread, which punishes a mixer made of
    many ops (FTA) far more than one fused op (SDPA), and the table measures the machine's load, not the mixers."""
    try:
        fields = loadavg.read_text().split()
        others = int(fields[3].split("/")[0]) - own_runnable_threads(task_dir)  # runnable tasks now, minus ours
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
