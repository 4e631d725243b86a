"""Helpers shared by the baseline strategies (EWC, SI, LwF, replay, A-GEM, cumulative, joint, linear probe).

Why plugin order matters: Avalanche calls plugins in list order, and the runner's plugins (notably
:class:`strategies.plugins.BestValidationPlugin`, which restores the selected epoch in ``after_training_exp``)
must run *before* a baseline's own plugin. Otherwise EWC would anchor its penalty, and SI its importances, to
the last epoch's weights rather than to the weights the runner actually keeps, and A-GEM's reference-gradient
pass would be booked as data-loading time by :class:`strategies.plugins.DataTimePlugin`. SI also reads, at each
epoch end, whether that plugin has just recorded a new best epoch (to keep the path integral of the kept weights),
which needs it to have run first; SI checks the order and refuses the opposite one. Hence
:func:`after_runner_plugins` appends, rather than prepends, a strategy's own plugins.

Why :class:`CrossTaskState`: EWC/SI importances and the replay and A-GEM memories live in plugins, not in the
model. Each such plugin declares exactly what it saves (:class:`strategies.state.Checkpointable`: named tensors,
sample indices, plain numbers; never its pickled attributes). The runner saves :meth:`CrossTaskState.cl_state`
with every task checkpoint and ``--resume`` restores it, so a resumed run continues exactly where the interrupted
one stopped. A strategy that meets earlier tasks without that state warns, since its results would then differ.
"""
from __future__ import annotations

import logging

from .state import Checkpointable, RestoreContext

log = logging.getLogger("ticl")


def after_runner_plugins(plugins: list | None, *own) -> list:
    """The runner's plugins first, then the strategy's own (see the module docstring)."""
    return list(plugins or []) + list(own)


def stream_datasets(experience, upto: int | None = None) -> list:
    """Training datasets of ``experience``'s stream, positions ``0..upto`` (default: the whole stream).

    Reading them from the experience's ``origin_stream`` (the stream the runner indexes) rather than from what
    this strategy object happened to see keeps cumulative/joint training correct after ``ticl run --resume``,
    which builds a fresh strategy part-way through the stream.
    """
    stream = experience.origin_stream
    last = len(stream) - 1 if upto is None else upto
    return [stream[k].dataset for k in range(last + 1)]


class CrossTaskState:
    """Mixin for a TICLStrategy whose cross-task state lives in plugin objects.

    ``state_objects`` names the attributes (plugins, storage policies) that hold that state; each one is a
    :class:`~strategies.state.Checkpointable`, saved under its attribute name.
    """

    state_objects: tuple[str, ...] = ()

    def _state_object(self, name: str) -> Checkpointable:
        obj = getattr(self, name)
        if not isinstance(obj, Checkpointable):
            raise TypeError(f"strategy '{self.strategy_name}': state object '{name}' ({type(obj).__qualname__}) "
                            "has no cl_state / load_cl_state (strategies.state.Checkpointable)")
        return obj

    def cl_state(self) -> dict:
        return super().cl_state() | {name: self._state_object(name).cl_state() for name in self.state_objects}

    def load_cl_state(self, state: dict, context: RestoreContext) -> None:
        super().load_cl_state(state, context)
        missing = [name for name in self.state_objects if name not in state]
        if missing:
            log.warning("strategy '%s': checkpoint has no state for %s", self.strategy_name, missing)
            return
        for name in self.state_objects:
            self._state_object(name).load_cl_state(state[name], context)
        self.__dict__.setdefault("_tasks_trained_here", set()).update(context.trained_tasks)

    def on_task_start(self, task_id: int) -> None:
        super().on_task_start(task_id)
        trained = self.__dict__.setdefault("_tasks_trained_here", set())
        missing = [t for t in self.net.task_ids if t < task_id and t not in trained]
        if missing:
            log.warning(
                "strategy '%s' starts task %d without its state from task(s) %s: its importances or memory are "
                "missing, so this run will differ from an uninterrupted one",
                self.strategy_name, task_id, missing,
            )

    def on_task_end(self, task_id: int) -> None:
        super().on_task_end(task_id)
        self.__dict__.setdefault("_tasks_trained_here", set()).add(task_id)
