"""A-GEM (Chaudhry et al. 2019, "Efficient Lifelong Learning with A-GEM", ICLR; sec. 4) through Avalanche's
``AGEMPlugin``.

Trains what fine-tuning trains. Each step, a reference gradient g_ref is computed on a sample of an episodic
memory (``patterns_per_exp`` random training samples kept per earlier task; ``sample_size`` drawn per step,
balanced over tasks); if the current gradient g conflicts with it (g . g_ref < 0) it is replaced by
g - (g . g_ref / g_ref . g_ref) g_ref (sec. 4), the gradient closest to g for which the average
memory loss does not increase to first order.

Avalanche 0.6's callback order (``avalanche/training/plugins/agem.py``): ``before_training_iteration`` draws the
memory batch, runs forward/backward on it with the model in train mode, stores the flattened gradient of every
parameter (zeros where ``p.grad`` is None) as ``reference_gradients`` and zeroes the gradients; the current batch's
forward/backward follow; ``after_backward`` projects ``p.grad`` in place; the optimizer steps after
``before_update``. A plugin earlier in the list sees, at ``after_backward``, the unprojected gradient and, at
``before_update``, the projected one (the tests use this).

Avalanche's plugin works with our multi-head model unchanged: memory samples keep their task label and go
through their own task's head (our model routes each sample of a mixed batch to its head), and parameters
without a gradient (earlier heads, frozen as in fine-tuning) count as zeros on both sides of the projection,
so it acts on the shared weights, the only ones both gradients touch. The plugin is appended after the
runner's so that its reference-gradient pass is not booked as data-loading time. The memory holds the
training datasets in their train mode, so memory samples get the same SpecAugment as current ones.

Options and defaults:

- ``patterns_per_exp`` = 100: memory per task, in samples. The paper's benchmarks keep a few to 25 samples per
  class (the official code, facebookresearch/agem, ``SAMPLES_PER_CLASS``: 25 for MNIST, i.e. 250 per 10-class
  task; 13 for split CIFAR, i.e. 65 per 5-class task); 100 is about 10 per class on our 10-class tasks, within
  that range. It is a storage budget, set per preset (as replay's ``mem_size``), not a tuned hyperparameter.
- ``sample_size`` = 64: memory samples per reference gradient, split evenly over the earlier tasks (so at least
  the number of tasks minus one). The official code uses 256 (MNIST, CIFAR) and 128 (CUB, AWA)
  (``EPS_MEM_BATCH_SIZE``) for a training batch of 10; 64 keeps the extra pass at a few training batches for a
  transformer backbone. A deviation for compute: raise it where the budget allows.
"""
from __future__ import annotations

import random
import warnings

import torch
from avalanche.benchmarks.utils.data_loader import GroupBalancedInfiniteDataLoader
from avalanche.training.plugins import AGEMPlugin

from .base import state_nbytes
from .common import CrossTaskState, after_runner_plugins
from .errors import StrategyError
from .finetune import Finetune
from .registry import register_strategy
from .state import RestoreContext


class IndexedAGEMPlugin(AGEMPlugin):
    """Avalanche's AGEMPlugin whose memory update, reproduced draw for draw, records which training samples of
    which task each episodic memory holds, so a checkpoint names the memory instead of pickling it.

    ``update_memory`` is Avalanche 0.6's: a task with more than ``patterns_per_experience`` samples keeps the first
    ``patterns_per_experience`` of a ``random.shuffle`` of its indices, a smaller one is kept whole
    (``tests/test_avalanche_compat.py`` checks it against the stock plugin).
    """

    def __init__(self, patterns_per_experience: int, sample_size: int) -> None:
        super().__init__(patterns_per_experience=patterns_per_experience, sample_size=sample_size)
        #: per memory, in order: (task id, indices into that task's training dataset, or None for all of it)
        self.memory_index: list[tuple[int, torch.Tensor | None]] = []

    def after_training_exp(self, strategy, **kwargs) -> None:
        self.update_memory(strategy.experience.dataset, task=int(strategy.experience.task_labels[0]), **kwargs)

    @torch.no_grad()
    def update_memory(self, dataset, num_workers: int = 0, task: int | None = None, **kwargs) -> None:
        if num_workers > 0:
            warnings.warn("Num workers > 0 is known to cause heavy slowdowns in AGEM.", stacklevel=2)
        if task is None:
            task = int(dataset.targets_task_labels[0])
        kept: torch.Tensor | None = None
        if len(dataset) - self.patterns_per_experience > 0:
            indices = list(range(len(dataset)))
            random.shuffle(indices)
            kept = torch.tensor(indices[: self.patterns_per_experience], dtype=torch.long)
            dataset = dataset.subset(indices[: self.patterns_per_experience])
        self.buffers.append(dataset)
        self.memory_index.append((int(task), kept))
        self.buffer_dataloader = GroupBalancedInfiniteDataLoader(
            self.buffers, batch_size=self.sample_size // len(self.buffers), num_workers=num_workers,
            pin_memory=False, persistent_workers=num_workers > 0,
        )
        self.buffer_dliter = iter(self.buffer_dataloader)

    # ------------------------------------------------------------------------------------------ checkpoint
    def cl_state(self) -> dict:
        """The episodic memories by name: per memory its task and the indices of its samples (the reference
        gradient is recomputed every step, the sampler rebuilt at every task start)."""
        return {"memories": [{"task": task, "indices": kept} for task, kept in self.memory_index]}

    def load_cl_state(self, state: dict, context: RestoreContext) -> None:
        self.buffers, self.memory_index = [], []
        for memory in state["memories"]:
            task, kept = int(memory["task"]), memory["indices"]
            dataset = context.dataset(task)
            self.buffers.append(dataset if kept is None else dataset.subset(kept.tolist()))
            self.memory_index.append((task, kept))


@register_strategy("agem")
class AGEM(CrossTaskState, Finetune):
    """Fine-tuning with A-GEM gradient projection."""

    state_objects = ("agem",)
    #: memory batches mix tasks, so every task needs one input length (the runner checks)
    mixes_task_inputs = True

    def __init__(self, *, patterns_per_exp: int = 100, sample_size: int = 64, plugins=None, **kwargs) -> None:
        if int(patterns_per_exp) < 1 or int(sample_size) < 1:
            raise StrategyError("strategy 'agem': patterns_per_exp and sample_size must be at least 1")
        self.agem = IndexedAGEMPlugin(patterns_per_experience=int(patterns_per_exp), sample_size=int(sample_size))
        super().__init__(plugins=after_runner_plugins(plugins, self.agem), **kwargs)

    def method_state_bytes(self) -> int:
        """What A-GEM keeps between tasks: its episodic memories (the reference gradient is recomputed each step)."""
        return state_nbytes(self.agem.buffers)

    def on_task_start(self, task_id: int) -> None:
        super().on_task_start(task_id)
        # The memory sampler (an endless iterator over the per-task buffers) is rebuilt at every task start, as
        # update_memory builds it. Rebuilding here rather than at the end of the previous task makes it draw the
        # same random numbers in a resumed run as in an uninterrupted one.
        agem = self.agem
        if agem.buffers:
            agem.buffer_dataloader = GroupBalancedInfiniteDataLoader(
                agem.buffers, batch_size=agem.sample_size // len(agem.buffers), num_workers=0, pin_memory=False
            )
            agem.buffer_dliter = iter(agem.buffer_dataloader)
