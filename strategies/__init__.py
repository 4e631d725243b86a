"""Continual-learning strategies: Avalanche templates with per-task heads, selected by name in a config.

Add one by subclassing :class:`TICLStrategy` and decorating it with :func:`register_strategy`, or name it by
import path (``my_pkg.module:MyStrategy``) in the config. Bad user input (an option, a model the strategy cannot
train) raises :class:`StrategyError`. This package imports ``models`` and Avalanche, never ``benchmark``.
"""
from .base import TICLStrategy, make_optimizer_factory
from .errors import StrategyError
from .registry import STRATEGIES, get_strategy, register_strategy

# Importing the built-in strategies registers them.
from . import adapter_incremental, finetune  # noqa: E402,F401  isort:skip
from . import agem, cumulative, ewc, linear_probe, lwf, replay, si  # noqa: E402,F401  isort:skip

__all__ = [
    "TICLStrategy", "STRATEGIES", "StrategyError", "get_strategy", "register_strategy", "make_optimizer_factory",
]
