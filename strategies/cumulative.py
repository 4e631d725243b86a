"""Cumulative and joint training: the rehearsal-everything reference points.

``cumulative`` (Avalanche's ``Cumulative``): at task ``i`` the model keeps training on the union of the
training sets of tasks ``0..i``, each sample through its own task's head; everything trains. It bounds what
replay can reach with unlimited memory.

``joint`` (Avalanche's ``JointTraining``): one model trained once on all tasks together, the usual upper
bound. The runner trains experience by experience and evaluates after each, and its interface must not
change, so the design choice here is *deferred* joint training: the calls for tasks ``0..T-2`` only grow the
model (their heads and PET modules are created as usual) and train nothing; the call for the last task trains,
from the initial weights, on the union of all ``T`` training sets. Consequences:

- only the last accuracy-matrix row is meaningful: it is the joint upper bound, and so is ``avg_accuracy``;
  earlier rows measure the untrained model (chance level), so forgetting/BWT and the accuracy curve carry no
  meaning for ``joint``;
- no row ever depends on a task not yet presented (the alternative, training on all tasks at the first call,
  would put future tasks' data into every row and would need heads for tasks the runner has not announced,
  clashing with the runner's untrained-head probe for ``R[i][j], j > i``);
- the summary's ``per_task`` rows of the calls that train nothing show ``best_epoch`` -1, no validation
  accuracies and ~0 training seconds;
- it is resume-safe: nothing trains before the last call, and the training sets come from the experience's
  origin stream, not from state kept between calls.

**Sampling: every sample of the union once per epoch.** What "cumulative" and "joint" mean (plain training on
the union of the tasks' data, e.g. the upper bounds of Lopez-Paz & Ranzato 2017 and of Chaudhry et al. 2019)
is one ordinary shuffled pass over the union per epoch. Avalanche 0.6's default training loader for
task-labelled data is instead a ``TaskBalancedDataLoader`` with oversampling: each mini-batch takes
``batch // n_tasks`` samples of every task and an epoch lasts as long as the largest task, so smaller tasks are
repeated (at batch 8 over 5 equal tasks, tasks 0-2 get 2 samples a batch and are seen twice per epoch) and it
asserts ``batch >= n_tasks``. Here both strategies build a plain ``DataLoader(shuffle=True)`` over the adapted
dataset (so ``train.max_batches``' subset, which replaces ``adapted_dataset``, is respected), drawing its order
from torch's global RNG exactly as Avalanche's loaders do, so a run stays deterministic under the runner's seed.
Any number of tasks works with any batch size. Option ``task_balanced: true`` restores Avalanche's
task-balanced, oversampling loader.

Epoch selection (``train.select_on_val``) is the runner's, on the mean validation accuracy over every task seen
so far (``validates_on_seen_tasks``): both strategies train on all of them, so both are judged on all of them.

Options: ``task_balanced`` (default ``false``: one plain shuffled pass over the union per epoch).
"""
from __future__ import annotations

from avalanche.benchmarks.utils.data_loader import collate_from_data_or_kwargs
from avalanche.benchmarks.utils.utils import concat_datasets
from torch.utils.data import DataLoader

from .avalanche_compat import common_dataloader_args
from .base import TICLStrategy
from .common import stream_datasets
from .registry import register_strategy


class _UnionTraining(TICLStrategy):
    """Shared by cumulative and joint: training on a union of tasks with a plain (or task-balanced) loader."""

    #: trained on every task seen so far, so judged (epoch selection) on all of their validation splits
    validates_on_seen_tasks = True
    #: its batches mix tasks, so every task needs one input length (the runner checks)
    mixes_task_inputs = True

    def __init__(self, *, task_balanced: bool = False, **kwargs) -> None:
        self.task_balanced = bool(task_balanced)
        super().__init__(**kwargs)

    def make_train_dataloader(
        self, num_workers=0, shuffle=True, pin_memory=None, persistent_workers=False, drop_last=False, **kwargs
    ) -> None:
        """Every sample of ``adapted_dataset`` exactly once per epoch, in a fresh random order each epoch."""
        if self.task_balanced:
            super().make_train_dataloader(
                num_workers=num_workers, shuffle=shuffle, pin_memory=pin_memory,
                persistent_workers=persistent_workers, drop_last=drop_last, **kwargs,
            )
            return
        args = common_dataloader_args(
            self, batch_size=self.train_mb_size, num_workers=num_workers, shuffle=shuffle, pin_memory=pin_memory,
            persistent_workers=persistent_workers, drop_last=drop_last,
        )
        collate_from_data_or_kwargs(self.adapted_dataset, args)
        self.dataloader = DataLoader(self.adapted_dataset, **args)


@register_strategy("cumulative")
class Cumulative(_UnionTraining):
    """At each task, train on the union of all training sets seen so far, each sample once per epoch."""

    def train_dataset_adaptation(self, **kwargs) -> None:
        datasets = stream_datasets(self.experience, upto=self.experience.current_experience)
        self.adapted_dataset = concat_datasets(datasets).train()


@register_strategy("joint")
class Joint(_UnionTraining):
    """Deferred joint training: nothing until the last task, then all tasks at once (module docstring)."""

    #: trains once, at the last call: no plasticity, forgetting or BWT (its earlier rows are untrained)
    trained_task_by_task = False

    def is_last_call(self) -> bool:
        return self.experience.current_experience == len(self.experience.origin_stream) - 1

    def train_dataset_adaptation(self, **kwargs) -> None:
        if self.is_last_call():
            self.adapted_dataset = concat_datasets(stream_datasets(self.experience)).train()
        else:
            super().train_dataset_adaptation(**kwargs)

    def trains_experience(self, experience) -> bool:
        """Only the last call trains (the earlier ones grow the model)."""
        return self.is_last_call()
