"""Every private Avalanche API the suite relies on, each behind one small named function or hook class.

``setup.cfg`` pins ``avalanche-lib>=0.6,<0.7``. Avalanche does not promise to keep names that start with ``_``, so
they are used here and nowhere else, and ``tests/test_avalanche_compat.py`` checks each assumption below by name:
an upgrade that breaks one fails there, with the assumption in the test's name, not deep inside a run.

Assumptions (Avalanche 0.6):

1. ``criterion``: a ``SupervisedTemplate`` keeps its loss function in ``_criterion``.
2. ``taskaware_subset``: ``avalanche.benchmarks.utils._taskaware_classification_subset(dataset, indices=...)``
   is a subset that keeps targets, task labels and the current transform group (the replay memory's groups).
3. ``make_taskaware_dataset``: ``avalanche.benchmarks.utils._make_taskaware_classification_dataset`` builds a
   task-aware classification dataset with transform groups (``benchmark.scenarios`` builds each split with it).
4. ``common_dataloader_args``: ``BaseSGDTemplate._obtain_common_dataloader_parameters(**kwargs)`` returns the
   DataLoader keyword arguments of the strategy's own loaders (cumulative and joint build a plain DataLoader).
5. ``LwFRegularizer.distillation_loss``: ``LearningWithoutForgetting._distillation_loss(out, prev_out, units)``
   is the temperature-softened KL of LwF.
6. ``LwFRegularizer.unweighted_penalty``: ``LearningWithoutForgetting._lwf_penalty(out, x, curr_model)`` is what
   its ``__call__`` weighs by alpha.
7. ``ExperienceHooks``: ``BaseTemplate._after_training_exp`` triggers every plugin's ``after_training_exp``, and
   ``_train_exp`` is one experience's training loop (epochs), which a strategy may skip.
8. ``CLOCK_COUNTERS``: the state of ``avalanche.training.plugins.clock.Clock`` is exactly these integer counters
   (checkpoints save them by name rather than ``vars(clock)``).

What else the strategies assume of Avalanche's algorithms (the replay reservoir and A-GEM's memory sampling, which
``strategies.replay`` and ``strategies.agem`` reproduce draw for draw so that they can name each stored sample) is
checked in the same test file, against the stock classes.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from avalanche.benchmarks.utils import _make_taskaware_classification_dataset, _taskaware_classification_subset
from avalanche.training.regularization import LearningWithoutForgetting

__all__ = [
    "CLOCK_COUNTERS",
    "ExperienceHooks",
    "LwFRegularizer",
    "clock_state",
    "common_dataloader_args",
    "criterion",
    "load_clock_state",
    "make_taskaware_dataset",
    "taskaware_subset",
]


# 1 ----------------------------------------------------------------------------------------------- the loss
def criterion(strategy) -> Any:
    """The strategy's loss function (``SupervisedTemplate._criterion``)."""
    return strategy._criterion


# 2, 3 ------------------------------------------------------------------------------------------ datasets
def taskaware_subset(dataset, indices) -> Any:
    """``dataset`` restricted to ``indices`` (in that order), keeping targets, task labels and transform group."""
    return _taskaware_classification_subset(dataset, indices=list(indices))


def make_taskaware_dataset(dataset, *, task_labels: int, transform_groups: Mapping, initial_transform_group: str):
    """A task-aware classification dataset over ``dataset`` (items ``(x, y)``) with named transform groups."""
    return _make_taskaware_classification_dataset(
        dataset, task_labels=task_labels, transform_groups=dict(transform_groups),
        initial_transform_group=initial_transform_group,
    )


# 4 ----------------------------------------------------------------------------------------- data loaders
def common_dataloader_args(strategy, **kwargs) -> dict:
    """The DataLoader arguments Avalanche's own training loader would get (batch size, workers, shuffle ...)."""
    return strategy._obtain_common_dataloader_parameters(**kwargs)


# 5, 6 --------------------------------------------------------------------------------------------- LwF
class LwFRegularizer(LearningWithoutForgetting):
    """Avalanche's LwF regulariser with its private hooks reached through public names."""

    def distillation_loss(self, out, prev_out, active_units):
        """KL divergence of the softened outputs over ``active_units`` (Avalanche's ``_distillation_loss``)."""
        return self._distillation_loss(out, prev_out, active_units)

    def unweighted_penalty(self, out, x, curr_model):
        """The distillation term ``__call__`` multiplies by alpha; override this, not ``_lwf_penalty``."""
        return super()._lwf_penalty(out, x, curr_model)

    def _lwf_penalty(self, out, x, curr_model):
        return self.unweighted_penalty(out, x, curr_model)


# 7 ------------------------------------------------------------------------------------- template hooks
class ExperienceHooks:
    """Mixin (before ``SupervisedTemplate`` in the bases) turning two private template hooks into public ones.

    :meth:`experience_trained` runs after every plugin's ``after_training_exp`` (so after the runner's epoch
    selection), and :meth:`trains_experience` may skip an experience's training loop altogether.
    """

    def experience_trained(self) -> None:
        """Called once per training experience, after every plugin's ``after_training_exp``."""

    def trains_experience(self, experience) -> bool:
        """False to skip the epochs of ``experience`` (its dataset and model adaptation still happen)."""
        return True

    def _after_training_exp(self, **kwargs) -> None:
        super()._after_training_exp(**kwargs)  # type: ignore[misc]
        self.experience_trained()

    def _train_exp(self, experience, eval_streams=None, **kwargs) -> None:
        if self.trains_experience(experience):
            super()._train_exp(experience, eval_streams, **kwargs)  # type: ignore[misc]


# 8 ------------------------------------------------------------------------------------------------ clock
#: every counter of Avalanche 0.6's ``Clock``, by name
CLOCK_COUNTERS = (
    "train_iterations",
    "train_exp_counter",
    "train_exp_epochs",
    "train_exp_iterations",
    "train_epoch_iterations",
    "total_iterations",
)


def clock_state(clock) -> dict[str, int]:
    """The clock's counters by name (plugins such as EWC index their per-task state by ``train_exp_counter``)."""
    return {name: int(getattr(clock, name)) for name in CLOCK_COUNTERS}


def load_clock_state(clock, state: Mapping[str, int]) -> None:
    """Set the clock's counters from :func:`clock_state`; an unknown counter name is refused."""
    unknown = sorted(set(state) - set(CLOCK_COUNTERS))
    if unknown:
        raise KeyError(f"Avalanche's Clock has no counter(s) {unknown}; known: {', '.join(CLOCK_COUNTERS)}")
    for name, value in state.items():
        setattr(clock, name, int(value))
