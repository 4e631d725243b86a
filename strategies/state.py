"""Cross-task state as plain values: what a strategy saves with each task checkpoint, and how it comes back.

A checkpoint is read with ``torch.load(..., weights_only=True)``, which never runs code from the file, so a
strategy's state may hold only tensors, numbers, strings, booleans, ``None`` and lists / tuples / dicts of them.
Every stateful plugin therefore says exactly what it saves (:class:`Checkpointable`): EWC its importances and
anchors, SI its anchors, importances and running path integral, replay and A-GEM the *indices* of the training
samples their memories hold (the samples themselves are in the task datasets, which a resumed run rebuilds
identically). :class:`RestoreContext` brings what a restore needs besides the saved values.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch
from avalanche.training.utils import ParamData

__all__ = ["Checkpointable", "RestoreContext", "check_plain", "param_tensors", "param_data"]

_PLAIN = (str, int, float, bool, type(None), torch.Tensor)


@dataclass(frozen=True)
class RestoreContext:
    """What :meth:`Checkpointable.load_cl_state` gets besides the saved values."""

    #: where the strategy keeps its tensors (a checkpoint is read onto the CPU)
    device: torch.device
    #: the tasks the checkpoint had finished, in order
    trained_tasks: tuple[int, ...] = ()
    #: task id -> that task's training dataset as the runner's stream holds it (train mode): the memories' indices
    #: point into these
    train_datasets: Mapping[int, Any] = field(default_factory=dict)

    def dataset(self, task: int):
        """Task ``task``'s training dataset; a clear error when the run did not bring it."""
        try:
            return self.train_datasets[task]
        except KeyError:
            raise KeyError(f"the checkpoint's memory holds samples of task {task}, but the restore was given the "
                           f"training data of tasks {sorted(self.train_datasets)} only") from None


@runtime_checkable
class Checkpointable(Protocol):
    """A plugin (or storage policy) whose state outlives a task and is saved with each task checkpoint."""

    def cl_state(self) -> dict[str, Any]:
        """The state as plain values (module docstring): exactly what a resumed run needs to continue."""
        ...

    def load_cl_state(self, state: dict[str, Any], context: RestoreContext) -> None:
        """Restore :meth:`cl_state` into a freshly built object."""
        ...


def check_plain(value: Any, where: str = "state") -> None:
    """Refuse anything ``torch.load(weights_only=True)`` could not read back, naming where it sits."""
    if isinstance(value, _PLAIN):
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, (str, int)):
                raise TypeError(f"{where}: key {key!r} is a {type(key).__name__}; checkpoint keys are str or int")
            check_plain(item, f"{where}[{key!r}]")
        return
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            check_plain(item, f"{where}[{i}]")
        return
    raise TypeError(
        f"{where} is a {type(value).__module__}.{type(value).__qualname__}; a checkpoint holds only tensors, "
        "numbers, strings and lists / dicts of them (see audio_ticl.strategies.state)"
    )


def param_tensors(params: Mapping[str, ParamData]) -> dict[str, torch.Tensor]:
    """``{name: tensor}`` of Avalanche ``ParamData`` values."""
    return {name: p.data for name, p in params.items()}


def param_data(
    tensors: Mapping[str, torch.Tensor], device: torch.device | str, prefix: str = ""
) -> dict[str, ParamData]:
    """``ParamData`` values (named ``prefix + name``, as Avalanche names them) from :func:`param_tensors`."""
    out = {}
    for name, tensor in tensors.items():
        t = tensor.to(device)
        out[name] = ParamData(f"{prefix}{name}", t.shape, init_tensor=t, device=t.device)
    return out
