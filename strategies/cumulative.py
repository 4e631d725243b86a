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

Epoch selection (``train.select_on_val``) is the runner's: on the current (last) task's validation split.
"""
from __future__ import annotations

from avalanche.benchmarks.utils.utils import concat_datasets

from .base import TICLStrategy
from .common import stream_datasets
from .registry import register_strategy


@register_strategy("cumulative")
class Cumulative(TICLStrategy):
    """At each task, train on the union of all training sets seen so far."""

    def train_dataset_adaptation(self, **kwargs) -> None:
        datasets = stream_datasets(self.experience, upto=self.experience.current_experience)
        self.adapted_dataset = concat_datasets(datasets).train()


@register_strategy("joint")
class Joint(TICLStrategy):
    """Deferred joint training: nothing until the last task, then all tasks at once (module docstring)."""

    #: an upper bound over all tasks picks its epoch on all tasks' validation splits, not only the last one's
    validates_on_seen_tasks = True

    def _is_last(self) -> bool:
        return self.experience.current_experience == len(self.experience.origin_stream) - 1

    def train_dataset_adaptation(self, **kwargs) -> None:
        if self._is_last():
            self.adapted_dataset = concat_datasets(stream_datasets(self.experience)).train()
        else:
            super().train_dataset_adaptation(**kwargs)

    def _train_exp(self, experience, eval_streams=None, **kwargs) -> None:
        if self._is_last():
            super()._train_exp(experience, eval_streams, **kwargs)
