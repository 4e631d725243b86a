"""Fine-tuning (Avalanche's Naive) with per-task heads: the baseline that forgets."""
from __future__ import annotations

from torch import nn

from .base import TICLStrategy
from .registry import register_strategy


@register_strategy("finetune")
class Finetune(TICLStrategy):
    """All shared weights and the current task's head (and PET modules, if any) train on each task in turn."""

    def trainable_parameters(self) -> list[nn.Parameter]:
        task = self.current_task
        # earlier tasks' heads receive no gradient from this task's data; leaving them out keeps the
        # trainable-parameter count honest
        other_tasks = {id(p) for t in self.net.task_ids if t != task for p in self.net.task_parameters(t)}
        return [p for p in self.net.parameters() if id(p) not in other_tasks]
