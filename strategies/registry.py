"""Strategy registry: configs name a strategy by short name or by import path ``pkg.module:Class``.

A name that resolves to nothing is a :class:`~.errors.StrategyError` (a user-input error the CLI prints on one line).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import TypeVar

from .errors import StrategyError

T = TypeVar("T", bound=type)

#: short name -> strategy class (a :class:`strategies.base.TICLStrategy` subclass)
STRATEGIES: dict[str, type] = {}


def register_strategy(name: str) -> Callable[[T], T]:
    """Class decorator: make a strategy available to configs as ``name``."""

    def decorate(cls: T) -> T:
        existing = STRATEGIES.get(name)
        if existing is not None and existing is not cls:
            raise StrategyError(f"strategy '{name}' is already registered as {existing.__qualname__}")
        STRATEGIES[name] = cls
        cls.strategy_name = name
        return cls

    return decorate


def get_strategy(name: str) -> type:
    """Resolve a short name or ``pkg.module:Class`` to a TICLStrategy subclass."""
    from .base import TICLStrategy

    if ":" in name:
        module_name, _, attr = name.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise StrategyError(f"strategy '{name}': cannot import module '{module_name}': {exc}") from None
        cls = getattr(module, attr, None)
        if cls is None:
            raise StrategyError(f"strategy '{name}': module '{module_name}' has no attribute '{attr}'")
    else:
        if name not in STRATEGIES:
            raise StrategyError(f"unknown strategy '{name}'; registered: {', '.join(sorted(STRATEGIES))}")
        cls = STRATEGIES[name]
    if not (isinstance(cls, type) and issubclass(cls, TICLStrategy)):
        raise StrategyError(f"strategy '{name}' is not a subclass of strategies.TICLStrategy")
    return cls
