"""Parameter-efficient tuning (PET) methods, Hugging Face PEFT's pattern: a method names the modules it targets by
pattern, attaches one new module per task to each (``models.pet.tuner``) without editing the model's code, and
returns exactly the parameters that train.

A method declares

* ``targets``: dotted module-name patterns, e.g. ``("blocks.*.mixer", "blocks.*.mlp")`` (matched pattern by
  pattern, each in the model's module order, which is also the order new modules are created and draw their
  random init);
* ``placement``: how its modules join their targets, ``"parallel"`` (beside the target: same input, outputs
  added) or ``"sequential"`` (on the target's output);
* :meth:`PETMethod.create_module`: the module for one target and task;
* ``family_targets``: for backbones of another family than the transformer (a backbone class's ``pet_family``;
  SSAMBA's is ``"mamba"``), the patterns there, or the sentence that says why the method does not apply. A family
  a method does not name is an error, never a silent partial match (AAT's mixer half without its MLP half).

A target that would need a different hook (LoRA inside ``qkv``, VPT prompt tokens before the blocks, BitFit on
biases) is a new placement in ``tuner.PLACEMENTS`` or a method that overrides :meth:`PETMethod.inject`; the
backbone does not change either way.
"""
from __future__ import annotations

import inspect
from abc import ABC, abstractmethod
from typing import ClassVar

from torch import nn

from audio_ticl.models.errors import ModelError, UnknownNameError, UnknownOptionError
from audio_ticl.models.pet.tuner import Placement, attach, detach, iter_task_modules, match_targets
from audio_ticl.models.registry import TRANSFORMER

__all__ = ["PETMethod", "PET_METHODS", "register_pet", "create_pet", "backbone_family"]


def backbone_family(backbone: nn.Module) -> str:
    """The PET family of ``backbone``: its class's ``pet_family`` (``"transformer"`` when it declares none)."""
    return str(getattr(backbone, "pet_family", TRANSFORMER))


class PETMethod(ABC):
    """Base of PET methods: ``inject`` adds one task's modules and returns exactly their (trainable) parameters."""

    name: ClassVar[str] = ""
    #: module-name patterns of the targets (see ``models.pet.tuner``)
    targets: tuple[str, ...] = ()
    #: how the modules join their targets: "parallel" or "sequential"
    placement: Placement = "parallel"
    #: backbone family (not the transformer) -> its target patterns, or why this method does not apply to it
    family_targets: ClassVar[dict[str, tuple[str, ...] | str]] = {}

    @classmethod
    def not_applicable(cls, family: str) -> str:
        """'' when this method applies to backbones of ``family``, else why not (one sentence)."""
        if family == TRANSFORMER:
            return ""
        spec = cls.family_targets.get(family)
        if spec is None:
            return f"it declares no targets for {family} backbones"
        return spec if isinstance(spec, str) else ""

    def targets_for(self, backbone: nn.Module) -> tuple[str, ...]:
        """The target patterns on ``backbone``, by its family; an error that says why where the method does not
        apply."""
        family = backbone_family(backbone)
        reason = self.not_applicable(family)
        if reason:
            raise ModelError(f"PET method {self.name!r} does not apply to {type(backbone).__name__} "
                             f"({family} backbone): {reason}")
        spec = self.targets if family == TRANSFORMER else self.family_targets[family]
        return tuple(spec)  # type: ignore[arg-type]

    @property
    def slot(self) -> str:
        """The attribute under which this method's modules hang below each target (a ``state_dict`` key part)."""
        return f"pet_{self.name}"

    def placement_for(self, target_name: str) -> Placement:
        """How the module on ``target_name`` joins it: ``placement`` unless a method mixes placements (AAT)."""
        return self.placement

    @abstractmethod
    def create_module(self, backbone: nn.Module, target_name: str, target: nn.Module, task_id: int) -> nn.Module:
        """A new module for ``target`` (named ``target_name`` in ``backbone``) and task ``task_id``."""

    def inject(self, backbone: nn.Module, task_id: int) -> list[nn.Parameter]:
        """Add task ``task_id``'s modules to every target of ``backbone``; return the new parameters (trainable).

        Checks everything before it creates a module, so a failure leaves the backbone (and the random stream)
        as it was.
        """
        targets = self.targets_for(backbone)
        found = match_targets(backbone, targets)
        if not found:
            raise ModelError(
                f"{self.name}: backbone {type(backbone).__name__} has no module matching the targets {targets}"
            )
        taken = [name for name, target in found if self._holds(target, task_id)]
        if taken:
            raise ModelError(f"{self.name}: task {task_id} already has PET modules on {taken}")
        ref = next(backbone.parameters(), None)
        params: list[nn.Parameter] = []
        for name, target in found:
            module = self.create_module(backbone, name, target, int(task_id))
            if ref is not None:
                module.to(device=ref.device, dtype=ref.dtype)
            attach(target, self.slot, self.placement_for(name), int(task_id), module)
            for p in module.parameters():
                p.requires_grad_(True)
                params.append(p)
        return params

    def _holds(self, target: nn.Module, task_id: int) -> bool:
        slot = getattr(target, self.slot, None)
        return slot is not None and slot.get(task_id) is not None

    def remove(self, backbone: nn.Module, task_id: int) -> None:
        """Delete task ``task_id``'s modules from every target (a target's last task takes its hook along)."""
        for _, target, _ in list(iter_task_modules(backbone, self.slot)):
            detach(target, self.slot, task_id)

    def task_modules(self, backbone: nn.Module, task_id: int) -> list[nn.Module]:
        """The modules task ``task_id`` owns, in the model's module order."""
        found = [modules.get(task_id) for _, _, modules in iter_task_modules(backbone, self.slot)]
        return [m for m in found if m is not None]

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
    try:
        cls = PET_METHODS[name]
    except KeyError:
        raise UnknownNameError(f"unknown PET method {name!r}; choose one of {sorted(PET_METHODS)}") from None
    allowed = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(cfg) - set(allowed))
    if unknown:
        raise UnknownOptionError(f"PET method {name!r} has no option(s) {unknown}; allowed: {allowed}")
    return cls(**cfg)
