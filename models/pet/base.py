"""Parameter-efficient tuning (PET) methods, PEFT's pattern: a method object injects per-task modules into named
sites of a backbone (without editing its code) and returns exactly the parameters that train.

A site (``PETSite``) sits in every transformer block. It holds one module per task (``nn.ModuleDict`` keyed by
``str(task_id)``) and runs only the module of the backbone's active task; with no module for that task it adds
nothing, so the frozen backbone is untouched for tasks without PET. Sites a block exposes (see
``models.ast.Block``):

* ``attn_parallel``: reads the LN1 output, its result is added beside the token mixer's;
* ``mlp_parallel``: reads the LN2 output, its result is added beside the MLP's.

Every PET module's forward takes ``(h: (B, P+N, D), grid: (F', T'), num_prefix: P)`` and returns (B, P+N, D).
Methods that need other hooks (LoRA inside qkv, VPT prompt tokens, BitFit biases, sequential adapters) add their
own site names or selection rules in their own ``inject``.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable, ClassVar, Iterator

import torch
from torch import nn

from audio_ticl.models.errors import ModelError, UnknownNameError, UnknownOptionError

__all__ = ["PETSite", "PETMethod", "PET_METHODS", "register_pet", "create_pet", "iter_sites"]


class PETSite(nn.Module):
    """A named attachment point: task key -> PET module; runs the active task's module or returns None."""

    def __init__(self) -> None:
        super().__init__()
        self.adapters = nn.ModuleDict()
        self.active_task: int | None = None

    def add(self, task_id: int, module: nn.Module) -> None:
        key = str(task_id)
        if key in self.adapters:
            raise ModelError(f"this PET site already holds a module for task {task_id}")
        self.adapters[key] = module

    def remove(self, task_id: int) -> None:
        self.adapters.pop(str(task_id), None)

    def module_for(self, task_id: int) -> nn.Module | None:
        key = str(task_id)
        return self.adapters[key] if key in self.adapters else None

    def forward(self, h: torch.Tensor, grid: tuple[int, int], num_prefix: int) -> torch.Tensor | None:
        if self.active_task is None:
            return None
        module = self.module_for(self.active_task)
        return None if module is None else module(h, grid, num_prefix)

    def extra_repr(self) -> str:
        return f"active_task={self.active_task}"


def iter_sites(backbone: nn.Module, site: str | None = None) -> Iterator[tuple[int, str, PETSite]]:
    """Yield (block index, site name, site) for every PET site of a backbone's ``blocks``, optionally one name."""
    blocks = getattr(backbone, "blocks", None)
    if blocks is None:
        raise ModelError(f"{type(backbone).__name__} has no 'blocks' with PET sites")
    for i, block in enumerate(blocks):
        for name in block.site_names:
            if site is None or name == site:
                yield i, name, getattr(block, name)


class PETMethod(ABC):
    """Base of PET methods: ``inject`` adds one task's modules and returns exactly their (trainable) parameters."""

    name: ClassVar[str] = ""

    @abstractmethod
    def inject(self, backbone: nn.Module, task_id: int) -> list[nn.Parameter]:
        """Add task ``task_id``'s modules to ``backbone``; return the new parameters (requires_grad=True)."""

    def remove(self, backbone: nn.Module, task_id: int) -> None:
        """Delete task ``task_id``'s modules from every site."""
        for _, _, site in iter_sites(backbone):
            site.remove(task_id)

    def task_modules(self, backbone: nn.Module, task_id: int) -> list[nn.Module]:
        """The modules this task owns, across all sites."""
        found = [site.module_for(task_id) for _, _, site in iter_sites(backbone)]
        return [m for m in found if m is not None]

    def _attach(
        self, backbone: nn.Module, task_id: int, sites: tuple[str, ...], factory: Callable[[int], nn.Module]
    ) -> list[nn.Parameter]:
        """Add ``factory(embed_dim)`` to every named site of every block; return the new parameters."""
        dim = int(getattr(backbone, "num_features"))
        ref = next(backbone.parameters(), None)
        params: list[nn.Parameter] = []
        for name in sites:
            for _, _, site in iter_sites(backbone, name):
                module = factory(dim)
                if ref is not None:
                    module.to(device=ref.device, dtype=ref.dtype)
                site.add(task_id, module)
                for p in module.parameters():
                    p.requires_grad_(True)
                    params.append(p)
        if not params:
            raise ModelError(f"{self.name}: backbone {type(backbone).__name__} has none of the sites {sites}")
        return params

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


PET_METHODS: dict[str, type[PETMethod]] = {}


def register_pet(cls: type[PETMethod]) -> type[PETMethod]:
    """Class decorator: make a PET method buildable by name through ``create_pet``."""
    if not cls.name:
        raise ModelError(f"{cls.__name__} needs a non-empty class attribute 'name'")
    if cls.name in PET_METHODS:
        raise ModelError(f"PET method {cls.name!r} is registered twice")
    PET_METHODS[cls.name] = cls
    return cls


def create_pet(name: str, **cfg) -> PETMethod:
    """Build the PET method registered as ``name`` with its config keys; unknown names or keys are errors."""
    import inspect

    try:
        cls = PET_METHODS[name]
    except KeyError:
        raise UnknownNameError(f"unknown PET method {name!r}; choose one of {sorted(PET_METHODS)}") from None
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(cfg) - set(allowed))
    if unknown:
        raise UnknownOptionError(f"PET method {name!r} has no option(s) {unknown}; allowed: {allowed}")
    return cls(**cfg)
