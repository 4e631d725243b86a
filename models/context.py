"""The per-forward context: what a backbone's forward knows (task id, patch grid, prefix count) and hooks need.

A PET module is attached to an arbitrary module of the backbone (PEFT's pattern, ``models.pet.tuner``): a token
mixer, an MLP, a LayerNorm, a plain ``nn.Linear``. Those modules' forward signatures are fixed and know nothing of
tasks, so the task id cannot travel to the attached module as an argument of the target's own call without
editing the model's code for PET. Instead the backbone's ``forward_features(x, task_id=...)``, which receives the
task id explicitly, opens a :class:`ForwardContext` around its own computation with :func:`forward_context`; the
hooks read it with :func:`current_context` and pass it on, explicitly, to the PET module they run.

Why a ``contextvars.ContextVar`` and not an attribute on the modules: it is set by exactly one call and reset in a
``finally`` when that call returns or raises, so nothing outlives the forward (no state to clear, nothing saved in
``state_dict`` or copied by ``copy.deepcopy``); nested forwards (a teacher model run inside a student's step)
restore the outer context; threads (``nn.DataParallel`` replicas) each see only their own. Outside a backbone
forward the context is ``None`` and every hook leaves its target's output untouched.

Backward passes run after the context is gone; hooks only act in the forward, so autograd is unaffected. (A
future activation-checkpointing backbone must re-open the context in its recomputation.)
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

__all__ = ["ForwardContext", "forward_context", "current_context"]


@dataclass(frozen=True)
class ForwardContext:
    """What one backbone forward passes to the PET modules it runs."""

    #: the task whose PET modules run (None: none run, the plain backbone)
    task_id: int | None = None
    #: (F', T') patch grid of this input; None for sequence backbones
    grid: tuple[int, int] | None = None
    #: number of prefix tokens (CLS, distillation) before the patch tokens
    num_prefix: int = 0


_CURRENT: ContextVar[ForwardContext | None] = ContextVar("audio_ticl_forward_context", default=None)


@contextmanager
def forward_context(context: ForwardContext) -> Iterator[ForwardContext]:
    """Make ``context`` the current one for the duration of the ``with`` block (restored on exit or error)."""
    token = _CURRENT.set(context)
    try:
        yield context
    finally:
        _CURRENT.reset(token)


def current_context() -> ForwardContext | None:
    """The context of the backbone forward running now, or None outside one."""
    return _CURRENT.get()
