"""Errors a strategy raises for bad user input: an unknown strategy name, an invalid option, a strategy that cannot
train the configured model (e.g. ``adapter_incremental`` without a PET method).

They derive from the suite's :class:`~audio_ticl.models.errors.TICLError` (the CLI prints them on one line) and from
``ValueError``, which strategies raised before, so callers that catch the builtin keep working. ``strategies/``
never imports ``benchmark/``: this module is what ``benchmark.errors.ConfigError`` is to the config.
"""
from __future__ import annotations

from audio_ticl.models.errors import TICLError

__all__ = ["TICLError", "StrategyError", "TrainingError"]


class StrategyError(TICLError, ValueError):
    """A strategy name, option or model composition that the strategy cannot run."""


class TrainingError(TICLError):
    """Training cannot go on: the loss became non-finite (NaN or Inf), so every later weight would be too."""
