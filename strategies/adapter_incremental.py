"""AI-CL (Selvaraj et al., Interspeech 2023): a frozen shared backbone, per-task adapters and heads."""
from __future__ import annotations

from torch import nn

from .base import TICLStrategy
from .errors import StrategyError
from .registry import register_strategy


@register_strategy("adapter_incremental")
class AdapterIncremental(TICLStrategy):
    """Only the current task's PET modules and head train; they are frozen once the task is done.

    The backbone never changes and earlier tasks' modules are never updated, so with a known task id nothing
    can be forgotten: the runner's accuracy matrix measures that rather than assuming it.
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        if self.net.pet is None:
            raise StrategyError(
                "strategy 'adapter_incremental' needs a PET method (set the method's 'pet', e.g. convpass)"
            )

    def trainable_parameters(self) -> list[nn.Parameter]:
        return list(self.net.task_parameters(self.current_task))

    def on_task_end(self, task_id: int) -> None:
        for p in self.net.task_parameters(task_id):
            p.requires_grad_(False)
