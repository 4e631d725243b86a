"""Experience replay with a (task, class)-balanced memory, through Avalanche's ``ReplayPlugin``.

Every mini-batch of the current task is joined by an equally large one drawn from the memory; the memory holds
at most ``mem_size`` training samples of earlier tasks, split evenly over every (task, class) pair seen so far
and refilled by reservoir sampling within each pair. Replayed samples keep their task label, so each one goes
through its own task's head; all heads and the shared weights train (the memory supervises the earlier heads).

Why not Avalanche's ``ClassBalancedBuffer`` as is: it groups samples by raw target id. In task-incremental
benchmarks class ids restart at 0 in every task, so "class 0" of task 0 and "class 0" of task 1 share one
group: the memory is split over ``max classes per task`` groups instead of over all (task, class) pairs, and
within a merged group the tasks compete at random, so an earlier task can lose most of its share.
:class:`TaskClassBalancedBuffer` keys the groups by ``(task label, class id)``.

Options: ``mem_size`` (samples), ``batch_size_mem`` (memory samples per mini-batch; default the training batch
size), ``task_balanced_dataloader`` (draw the memory part of each batch evenly over tasks).
"""
from __future__ import annotations

from collections import defaultdict
from typing import Optional

from avalanche.benchmarks.utils.classification_dataset import _taskaware_classification_subset
from avalanche.training.plugins import ReplayPlugin
from avalanche.training.storage_policy import ClassBalancedBuffer, ReservoirSamplingBuffer

from .base import TICLStrategy
from .common import CrossTaskState, after_runner_plugins
from .registry import register_strategy


class TaskClassBalancedBuffer(ClassBalancedBuffer):
    """Avalanche's ClassBalancedBuffer with groups keyed by ``(task, class)`` rather than by class id."""

    def __init__(self, max_size: int) -> None:
        super().__init__(max_size, adaptive_size=True)

    def update(self, strategy, **kwargs) -> None:
        # ReplayPlugin still calls this deprecated entry point; go straight to its replacement (no warning)
        self.post_adapt(strategy, strategy.experience)

    def update_from_dataset(self, new_data, strategy=None) -> None:
        if len(new_data) == 0:
            return
        indices: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, (task, target) in enumerate(zip(new_data.targets_task_labels, new_data.targets)):
            indices[(int(task), int(target))].append(i)
        self.seen_classes.update(indices)
        keys = sorted(self.seen_classes)  # deterministic: the remainder of max_size goes to the earliest pairs
        size = dict(zip(keys, self.get_group_lengths(len(keys))))
        for key, idx in indices.items():
            group = self.buffer_groups.get(key)
            if group is None:
                group = self.buffer_groups[key] = ReservoirSamplingBuffer(size[key])
            group.update_from_dataset(_taskaware_classification_subset(new_data, indices=idx))
        for key, group in self.buffer_groups.items():
            group.resize(strategy, size[key])

    def group_sizes(self) -> dict[tuple[int, int], int]:
        """Samples held per (task, class)."""
        return {key: len(group.buffer) for key, group in sorted(self.buffer_groups.items())}


@register_strategy("replay")
class Replay(CrossTaskState, TICLStrategy):
    """Fine-tuning on the current task plus replay of a (task, class)-balanced memory of earlier tasks.

    Experience replay as in Chaudhry et al., "On Tiny Episodic Memories in Continual Learning" (2019, Sec. 3): each
    step trains on a current batch joined by a memory batch of the same size (``batch_size_mem`` defaults to the
    training batch). ``mem_size`` is a storage budget, set per preset, not a tuned hyperparameter.
    """

    state_objects = ("buffer",)
    mixes_task_inputs = True

    def __init__(
        self,
        *,
        mem_size: int = 200,
        batch_size_mem: Optional[int] = None,
        task_balanced_dataloader: bool = False,
        plugins=None,
        **kwargs,
    ) -> None:
        if int(mem_size) < 1:
            raise ValueError(f"strategy 'replay': mem_size must be at least 1, got {mem_size}")
        self.buffer = TaskClassBalancedBuffer(int(mem_size))
        replay = ReplayPlugin(
            mem_size=int(mem_size),
            batch_size_mem=batch_size_mem,
            task_balanced_dataloader=bool(task_balanced_dataloader),
            storage_policy=self.buffer,
        )
        super().__init__(plugins=after_runner_plugins(plugins, replay), **kwargs)
