"""Helpers shared by the baseline strategies (EWC, SI, LwF, replay, A-GEM, cumulative, joint, linear probe).

Why plugin order matters: Avalanche calls plugins in list order, and the runner's plugins (notably
:class:`strategies.plugins.BestValidationPlugin`, which restores the selected epoch in ``after_training_exp``)
must run *before* a baseline's own plugin. Otherwise EWC would anchor its penalty, and SI its importances, to
the last epoch's weights rather than to the weights the runner actually keeps, and A-GEM's reference-gradient
pass would be booked as data-loading time by :class:`strategies.plugins.DataTimePlugin`. Hence
:func:`after_runner_plugins` appends, rather than prepends, a strategy's own plugins.

Why :class:`WarnsOnResume`: the runner's checkpoints hold the model only. A strategy whose state from earlier
tasks lives elsewhere (EWC/SI importances, replay and A-GEM memories) restarts empty after ``--resume``; its
results then differ from an uninterrupted run, which must not pass unnoticed.
"""
from __future__ import annotations

import logging
from typing import Optional

log = logging.getLogger("ticl")


def after_runner_plugins(plugins: Optional[list], *own) -> list:
    """The runner's plugins first, then the strategy's own (see the module docstring)."""
    return list(plugins or []) + list(own)


def stream_datasets(experience, upto: Optional[int] = None) -> list:
    """Training datasets of ``experience``'s stream, positions ``0..upto`` (default: the whole stream).

    Reading them from the experience's ``origin_stream`` (the stream the runner indexes) rather than from what
    this strategy object happened to see keeps cumulative/joint training correct after ``ticl run --resume``,
    which builds a fresh strategy part-way through the stream.
    """
    stream = experience.origin_stream
    last = len(stream) - 1 if upto is None else upto
    return [stream[k].dataset for k in range(last + 1)]


class WarnsOnResume:
    """Mixin for a TICLStrategy with cross-task state outside the model: warn when it meets earlier tasks it did
    not train itself (a resumed run), since that state is then missing."""

    def on_task_start(self, task_id: int) -> None:
        super().on_task_start(task_id)
        trained = self.__dict__.setdefault("_tasks_trained_here", set())
        missing = [t for t in self.net.task_ids if t < task_id and t not in trained]
        if missing:
            log.warning(
                "strategy '%s' starts task %d without its state from task(s) %s (a resumed run?): the runner's "
                "checkpoints hold only the model, so this run will differ from an uninterrupted one",
                self.strategy_name, task_id, missing,
            )

    def on_task_end(self, task_id: int) -> None:
        super().on_task_end(task_id)
        self.__dict__.setdefault("_tasks_trained_here", set()).add(task_id)
