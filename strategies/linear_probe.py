"""Linear probing: the backbone stays as initialised (e.g. the pretrained upstream weights) and each task
trains only its own linear head.

It measures how far frozen features go without any continual adaptation, and cannot forget (earlier heads and
the backbone never change). A PET method is refused: its per-task modules would stay at their initialisation,
so the run would silently be a linear probe anyway; train adapters with ``adapter_incremental`` instead.
"""
from __future__ import annotations

from torch import nn

from .base import TICLStrategy
from .errors import StrategyError
from .registry import register_strategy


@register_strategy("linear_probe")
class LinearProbe(TICLStrategy):
    """Only the current task's head trains."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        if self.net.pet is not None:
            raise StrategyError(
                "strategy 'linear_probe' trains only the heads, so a PET method would never train: "
                "drop the method's 'pet', or use strategy 'adapter_incremental'"
            )

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.net.heads[str(self.current_task)].parameters())
