"""A-GEM (Chaudhry et al. 2019) through Avalanche's ``AGEMPlugin``.

Trains what fine-tuning trains. Before each step a reference gradient is computed on a sample of an episodic
memory (``patterns_per_exp`` random training samples kept per earlier task; ``sample_size`` drawn per step,
balanced over tasks); if the current gradient conflicts with it (negative dot product) it is projected onto
the half-space where the memory loss does not increase.

Avalanche's plugin works with our multi-head model unchanged: memory samples keep their task label and go
through their own task's head (our model routes each sample of a mixed batch to its head), and parameters
without a gradient (earlier heads, frozen as in fine-tuning) count as zeros on both sides of the projection,
so it acts on the shared weights, the only ones both gradients touch. The plugin is appended after the
runner's so that its reference-gradient pass is not booked as data-loading time.

Options: ``patterns_per_exp`` (memory per task, in samples), ``sample_size`` (memory samples per reference
gradient, split evenly over the earlier tasks, so it must be at least the number of tasks minus one).
"""
from __future__ import annotations

from avalanche.training.plugins import AGEMPlugin

from avalanche.benchmarks.utils.data_loader import GroupBalancedInfiniteDataLoader

from .common import CrossTaskState, after_runner_plugins
from .finetune import Finetune
from .registry import register_strategy


@register_strategy("agem")
class AGEM(CrossTaskState, Finetune):
    """Fine-tuning with A-GEM gradient projection."""

    state_objects = ("agem",)
    transient_state = ("buffer_dataloader", "buffer_dliter")

    def __init__(self, *, patterns_per_exp: int = 100, sample_size: int = 64, plugins=None, **kwargs) -> None:
        if int(patterns_per_exp) < 1 or int(sample_size) < 1:
            raise ValueError("strategy 'agem': patterns_per_exp and sample_size must be at least 1")
        self.agem = AGEMPlugin(patterns_per_experience=int(patterns_per_exp), sample_size=int(sample_size))
        super().__init__(plugins=after_runner_plugins(plugins, self.agem), **kwargs)

    def on_task_start(self, task_id: int) -> None:
        super().on_task_start(task_id)
        # The memory sampler (an endless iterator over the per-task buffers, not picklable) is rebuilt at every
        # task start, as AGEMPlugin.update_memory builds it. Rebuilding here rather than at the end of the
        # previous task makes it draw the same random numbers in a resumed run as in an uninterrupted one.
        agem = self.agem
        if agem.buffers:
            agem.buffer_dataloader = GroupBalancedInfiniteDataLoader(
                agem.buffers, batch_size=agem.sample_size // len(agem.buffers), num_workers=0, pin_memory=False
            )
            agem.buffer_dliter = iter(agem.buffer_dataloader)
