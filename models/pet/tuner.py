"""Attaching per-task PET modules to a backbone's modules by name (Hugging Face PEFT's pattern).

A PET method names its *targets* with dotted patterns over ``backbone.named_modules()`` (``blocks.*.mixer``: every
block's token mixer). Each component of a pattern is an ``fnmatch`` pattern for exactly one name component, and a
pattern matches whole names only, so ``blocks.*.mlp`` matches ``blocks.3.mlp`` and nothing below it.

On a matched target the tuner adds a :class:`TaskModules` child (``<target>.pet_<method>``: one module per task
in an ``nn.ModuleDict`` keyed by ``str(task_id)``) and one forward hook. The model's code is never edited: the
hook reads the running task from the per-forward context (``models.context``) that the backbone's forward opens
and joins that task's module to the target's output, by its *placement*:

* ``parallel``: ``target(x) + module(x, ctx)``: the module reads the target's input and its result is added to
  the target's output, in that order (AI-CL's Convpass beside the mixer and the MLP);
* ``sequential``: ``module(target(x), ctx)``: the module transforms the target's output (Houlsby / Pfeiffer
  adapters, which add their own residual);
* ``prompt``: the module rewrites the target's *call*: a forward pre-hook gives it the target's arguments and it
  returns new ones (``module.enter(args, kwargs, ctx)``), and a forward hook gives it the target's output
  (``module.exit(output, ctx)``, None to keep it). VPT inserts its prompt tokens this way (``models.pet.prompt``).

A PET module's forward takes ``(x, ctx: ForwardContext)``. With no module for the running task, or outside a
backbone forward, the hook returns nothing and the target's output is its own, bit for bit. Removing a target's
last task removes its ``TaskModules`` child and its hook, so the backbone is exactly what it was before.

Placing the ``TaskModules`` under its target keeps ``model.parameters()`` and ``state_dict`` in the model's own
order (a target's PET parameters right after the target's), and plain backbone keys unchanged.
"""
from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterator
from typing import Any, Literal

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle

from audio_ticl.models.context import ForwardContext, current_context
from audio_ticl.models.errors import ModelError

__all__ = [
    "Placement",
    "PLACEMENTS",
    "TaskModules",
    "match_targets",
    "attach",
    "detach",
    "iter_task_modules",
]

Placement = Literal["parallel", "sequential", "prompt"]

#: placement -> how a task's module joins its target: (module, target input, target output, context) -> output
PLACEMENTS: dict[str, Callable[[nn.Module, torch.Tensor, Any, ForwardContext], Any]] = {
    "parallel": lambda module, x, out, ctx: out + module(x, ctx),
    "sequential": lambda module, x, out, ctx: module(out, ctx),
    "prompt": lambda module, x, out, ctx: module.exit(out, ctx),
}

#: containers whose forward iterates their children: a TaskModules child would run as one of them
_CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict)


class TaskModules(nn.Module):
    """A target's PET modules, one per task (``adapters``, keyed ``str(task_id)``), and how they join it."""

    def __init__(self, placement: Placement) -> None:
        super().__init__()
        if placement not in PLACEMENTS:
            raise ModelError(f"unknown PET placement {placement!r}; choose one of {sorted(PLACEMENTS)}")
        self.placement = placement
        self.adapters = nn.ModuleDict()
        # the target's hooks (a forward hook; ``prompt`` adds a pre-hook); they deep-copy with the model (the copy's
        # handles point at the copy's hooks)
        self.hooks: list[RemovableHandle] = []

    def add(self, task_id: int, module: nn.Module) -> None:
        key = str(int(task_id))
        if key in self.adapters:
            raise ModelError(f"this PET target already holds a module for task {task_id}")
        self.adapters[key] = module

    def remove(self, task_id: int) -> None:
        key = str(int(task_id))
        if key in self.adapters:
            del self.adapters[key]

    def get(self, task_id: int) -> nn.Module | None:
        key = str(int(task_id))
        return self.adapters[key] if key in self.adapters else None

    def extra_repr(self) -> str:
        return f"placement={self.placement!r}"


def _running_module(target: nn.Module, slot_name: str) -> tuple[nn.Module, str, ForwardContext] | None:
    """(the running task's module in ``target``'s slot, the slot's placement, the context), or None: outside a
    backbone forward, with no task, or when the task has no module on this target."""
    ctx = current_context()
    if ctx is None or ctx.task_id is None:
        return None
    slot = getattr(target, slot_name, None)
    module = slot.get(ctx.task_id) if isinstance(slot, TaskModules) else None
    return None if module is None else (module, slot.placement, ctx)


class _JoinHook:
    """Forward hook of a target: runs the current task's module of the target's ``slot`` child, if any.

    A plain object holding only the slot's attribute name (never a module), so that ``copy.deepcopy`` of a model
    gives a hook that finds the *copy's* modules through the ``target`` argument.
    """

    def __init__(self, slot: str) -> None:
        self.slot = slot

    def __call__(self, target: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        found = _running_module(target, self.slot)
        if found is None:
            return None
        module, placement, ctx = found
        x = args[0] if args else next(iter(kwargs.values()))
        return PLACEMENTS[placement](module, x, output, ctx)


class _PromptEnterHook:
    """Forward pre-hook of a ``prompt`` target: the current task's module rewrites the call's arguments."""

    def __init__(self, slot: str) -> None:
        self.slot = slot

    def __call__(self, target: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict] | None:
        found = _running_module(target, self.slot)
        return None if found is None else found[0].enter(args, kwargs, found[2])


def _named_modules(root: nn.Module, prefix: str = "") -> Iterator[tuple[str, nn.Module]]:
    """``root.named_modules()`` without descending into PET modules (they are never targets)."""
    yield prefix, root
    for name, child in root.named_children():
        if isinstance(child, TaskModules):
            continue
        yield from _named_modules(child, f"{prefix}.{name}" if prefix else name)


def _matches(pattern: list[str], name: str) -> bool:
    parts = name.split(".")
    return len(parts) == len(pattern) and all(fnmatch.fnmatchcase(p, q) for p, q in zip(parts, pattern))


def match_targets(backbone: nn.Module, patterns: tuple[str, ...] | list[str]) -> list[tuple[str, nn.Module]]:
    """(name, module) of every module matching a pattern: pattern by pattern, each in the model's module order."""
    if isinstance(patterns, str):
        raise ModelError(f"PET targets must be a tuple of module-name patterns, got the string {patterns!r}")
    modules = [(n, m) for n, m in _named_modules(backbone) if n]
    found: list[tuple[str, nn.Module]] = []
    seen: set[str] = set()
    for pattern in patterns:
        split = pattern.split(".")
        for name, module in modules:
            if name not in seen and _matches(split, name):
                if isinstance(module, _CONTAINERS):
                    raise ModelError(
                        f"PET target {name!r} (pattern {pattern!r}) is a {type(module).__name__}, whose forward would "
                        f"run an added module; target the modules inside it instead"
                    )
                found.append((name, module))
                seen.add(name)
    return found


def attach(target: nn.Module, slot: str, placement: Placement, task_id: int, module: nn.Module) -> None:
    """Add ``module`` as task ``task_id``'s module on ``target`` (creating the slot and its hook on first use)."""
    modules = getattr(target, slot, None)
    if modules is None:
        if hasattr(target, slot):
            raise ModelError(
                f"cannot attach PET modules to {type(target).__name__}: it already has an attribute {slot!r}"
            )
        modules = TaskModules(placement)
        target.add_module(slot, modules)
        if placement == "prompt":
            modules.hooks.append(target.register_forward_pre_hook(_PromptEnterHook(slot), with_kwargs=True))
        modules.hooks.append(target.register_forward_hook(_JoinHook(slot), with_kwargs=True))
    elif not isinstance(modules, TaskModules) or modules.placement != placement:
        raise ModelError(f"{type(target).__name__}.{slot} is not a {placement!r} PET slot")
    modules.add(task_id, module)


def detach(target: nn.Module, slot: str, task_id: int) -> None:
    """Remove task ``task_id``'s module from ``target``; the last one removed takes the slot and its hook along."""
    modules = getattr(target, slot, None)
    if not isinstance(modules, TaskModules):
        return
    modules.remove(task_id)
    if len(modules.adapters) == 0:
        for hook in modules.hooks:
            hook.remove()
        delattr(target, slot)


def iter_task_modules(backbone: nn.Module, slot: str | None = None) -> Iterator[tuple[str, nn.Module, TaskModules]]:
    """(target name, target, its TaskModules) for every PET slot in ``backbone`` (one slot name, or all)."""
    for name, module in _named_modules(backbone):
        for child_name, child in module.named_children():
            if isinstance(child, TaskModules) and (slot is None or child_name == slot):
                yield name, module, child
