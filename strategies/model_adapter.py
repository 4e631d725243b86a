"""The bridge between the pure-PyTorch :class:`models.TaskIncrementalModel` and Avalanche.

``models/`` never imports Avalanche; this thin :class:`MultiTaskModule` lets Avalanche's templates and plugins
(LwF, EWC, replay, ...) treat our model as any other multi-task model: ``forward(x, task_labels)`` and an
``adaptation`` hook that grows a head (and PET modules) when a training experience brings a new task.
"""
from __future__ import annotations

import torch
from avalanche.models import MultiTaskModule

from audio_ticl.models import TaskIncrementalModel


class AvalancheTaskModel(MultiTaskModule):
    """Wraps a TaskIncrementalModel; new tasks are added on *training* experiences only."""

    def __init__(self, net: TaskIncrementalModel) -> None:
        super().__init__()
        self.net = net

    def adaptation(self, experience) -> None:
        super().adaptation(experience)
        if not self.training:
            return
        for task in experience.task_labels:
            if not self.net.has_task(task):
                # class ids start at zero in each task, so the head needs max id + 1 outputs
                self.net.add_task(task, max(experience.classes_in_this_experience) + 1)

    def forward(self, x: torch.Tensor, task_labels) -> torch.Tensor:
        if isinstance(task_labels, int):
            task_labels = torch.full((x.shape[0],), task_labels, dtype=torch.long, device=x.device)
        return self.net(x, task_labels)

    def forward_single_task(self, x: torch.Tensor, task_label: int) -> torch.Tensor:
        return self.forward(x, task_label)
