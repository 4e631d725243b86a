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

import torch
from avalanche.training.plugins import ReplayPlugin
from avalanche.training.storage_policy import ClassBalancedBuffer, ExemplarsBuffer

from .avalanche_compat import taskaware_subset
from .base import TICLStrategy, state_nbytes
from .common import CrossTaskState, after_runner_plugins
from .errors import StrategyError
from .registry import register_strategy
from .state import RestoreContext


class IndexedReservoirBuffer(ExemplarsBuffer):
    """Avalanche 0.6's ``ReservoirSamplingBuffer``, reproduced draw for draw, that also records which sample of its
    task's training set each stored sample is (``source_indices``), so a checkpoint can name the memory.

    Reservoir sampling as Avalanche does it: every incoming sample gets a ``torch.rand`` weight and the buffer keeps
    the ``max_size`` highest weights, in descending order (``tests/test_avalanche_compat.py`` checks it against
    the stock class).
    """

    def __init__(self, max_size: int) -> None:
        super().__init__(max_size)
        #: the stored samples' reservoir weights, sorted descending (Avalanche's ``_buffer_weights``)
        self.weights = torch.zeros(0)
        #: index of each stored sample in its task's training dataset
        self.source_indices = torch.zeros(0, dtype=torch.long)

    def update_from_dataset(self, new_data, source_indices: torch.Tensor | None = None) -> None:
        """Offer ``new_data`` (whose samples are ``source_indices`` of their training set; default 0..n-1)."""
        if source_indices is None:
            source_indices = torch.arange(len(new_data))
        new_weights = torch.rand(len(new_data))
        cat_weights = torch.cat([new_weights, self.weights])
        cat_data = new_data.concat(self.buffer)
        cat_sources = torch.cat([torch.as_tensor(source_indices, dtype=torch.long), self.source_indices])
        sorted_weights, sorted_idxs = cat_weights.sort(descending=True)
        keep = sorted_idxs[: self.max_size]
        self.buffer = cat_data.subset(keep)
        self.weights = sorted_weights[: self.max_size]
        self.source_indices = cat_sources[keep]

    def resize(self, strategy, new_size: int) -> None:
        self.max_size = new_size
        if len(self.buffer) <= self.max_size:
            return
        self.buffer = self.buffer.subset(torch.arange(self.max_size))
        self.weights = self.weights[: self.max_size]
        self.source_indices = self.source_indices[: self.max_size]


class TaskClassBalancedBuffer(ClassBalancedBuffer):
    """Avalanche's ClassBalancedBuffer with groups keyed by ``(task, class)`` rather than by class id.

    Each group is an :class:`IndexedReservoirBuffer`; its checkpoint state (:meth:`cl_state`) is the seen pairs and,
    per group in order, the reservoir weights and the indices of the stored samples in the task's training set.
    """

    def __init__(self, max_size: int) -> None:
        super().__init__(max_size, adaptive_size=True)

    def update(self, strategy, **kwargs) -> None:
        # ReplayPlugin still calls this deprecated entry point; go straight to its replacement (no warning)
        self.post_adapt(strategy, strategy.experience)

    def update_from_dataset(self, new_data, strategy=None) -> None:
        """Offer a task's training dataset (the experience's, as ``post_adapt`` passes it)."""
        if len(new_data) == 0:
            return
        indices: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i, (task, target) in enumerate(zip(new_data.targets_task_labels, new_data.targets)):
            indices[(int(task), int(target))].append(i)
        self.seen_classes.update(indices)
        size = self._sizes()
        for key, idx in indices.items():
            group = self.buffer_groups.get(key)
            if group is None:
                group = self.buffer_groups[key] = IndexedReservoirBuffer(size[key])
            group.update_from_dataset(taskaware_subset(new_data, idx), torch.tensor(idx, dtype=torch.long))
        for key, group in self.buffer_groups.items():
            group.resize(strategy, size[key])

    def _sizes(self) -> dict[tuple[int, int], int]:
        keys = sorted(self.seen_classes)  # deterministic: the remainder of max_size goes to the earliest pairs
        return dict(zip(keys, self.get_group_lengths(len(keys))))

    def group_sizes(self) -> dict[tuple[int, int], int]:
        """Samples held per (task, class)."""
        return {key: len(group.buffer) for key, group in sorted(self.buffer_groups.items())}

    def stored_nbytes(self) -> int:
        """Bytes of the stored samples and their reservoir weights (what a deployed replay method keeps)."""
        return state_nbytes([[group.buffer, group.weights] for group in self.buffer_groups.values()])

    # ------------------------------------------------------------------------------------------ checkpoint
    def cl_state(self) -> dict:
        return {
            "seen": [list(key) for key in sorted(self.seen_classes)],
            "groups": [
                {"key": list(key), "max_size": int(group.max_size), "weights": group.weights,
                 "source_indices": group.source_indices}
                for key, group in self.buffer_groups.items()
            ],
        }

    def load_cl_state(self, state: dict, context: RestoreContext) -> None:
        self.seen_classes = {(int(t), int(c)) for t, c in state["seen"]}
        self.buffer_groups = {}
        for saved in state["groups"]:
            key = (int(saved["key"][0]), int(saved["key"][1]))
            group = IndexedReservoirBuffer(int(saved["max_size"]))
            group.source_indices = saved["source_indices"].to(torch.long)
            group.weights = saved["weights"].float()
            group.buffer = taskaware_subset(context.dataset(key[0]), group.source_indices.tolist())
            self.buffer_groups[key] = group


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
        batch_size_mem: int | None = None,
        task_balanced_dataloader: bool = False,
        plugins=None,
        **kwargs,
    ) -> None:
        if int(mem_size) < 1:
            raise StrategyError(f"strategy 'replay': mem_size must be at least 1, got {mem_size}")
        self.buffer = TaskClassBalancedBuffer(int(mem_size))
        replay = ReplayPlugin(
            mem_size=int(mem_size),
            batch_size_mem=batch_size_mem,
            task_balanced_dataloader=bool(task_balanced_dataloader),
            storage_policy=self.buffer,
        )
        super().__init__(plugins=after_runner_plugins(plugins, replay), **kwargs)

    def method_state_bytes(self) -> int:
        """The memory's samples and reservoir weights; the indices a checkpoint names them by are not storage."""
        return self.buffer.stored_nbytes()
