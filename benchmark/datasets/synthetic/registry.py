"""The generator registry: each sound class registers itself with :func:`sound_class`, so no table repeats its name.

A class's name is its function's name, and the order of the registry is the order of definition (task sounds first,
then upstream sounds; :mod:`.catalogue` imports them in that order and turns the registry into class lists).
"""
from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Literal

import numpy as np

__all__ = ["GENERATORS", "ROLES", "Generator", "Role", "sound_class"]

#: ``(rng, sample_rate, n_samples) -> float32 waveform of n_samples``
Generator = Callable[[np.random.Generator, int, int], np.ndarray]
#: what a class is for: one of the default continual-learning tasks, or the disjoint upstream pretraining
Role = Literal["task", "upstream"]

#: every registered class, name -> generator, in registration order
GENERATORS: dict[str, Generator] = {}
#: name -> role of every registered class
ROLES: dict[str, Role] = {}


def sound_class(role: Role) -> Callable[[Callable[..., np.ndarray]], Generator]:
    """Register a class family under its function's name; its (float64) synthesis is returned as float32."""
    if role not in ("task", "upstream"):
        raise ValueError(f"sound_class role must be 'task' or 'upstream', got {role!r}")

    def register(fn: Callable[..., np.ndarray]) -> Generator:
        name = fn.__name__
        if name in GENERATORS:
            raise ValueError(f"synthetic sound class {name!r} is registered twice")

        @functools.wraps(fn)
        def generator(rng: np.random.Generator, sr: int, n: int) -> np.ndarray:
            return np.asarray(fn(rng, sr, n), dtype=np.float32)

        GENERATORS[name] = generator
        ROLES[name] = role
        return generator

    return register
