"""Model registry (timm's pattern): entrypoint functions registered by name, built by ``create_model``."""
from __future__ import annotations

from collections.abc import Callable

from torch import nn

from audio_ticl.models.errors import ModelError, UnknownNameError

__all__ = ["register_model", "create_model", "list_models", "is_model", "model_entrypoint", "model_mixers",
           "model_family", "TRANSFORMER"]

_MODEL_ENTRYPOINTS: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: register a model entrypoint under its function name."""
    name = fn.__name__
    if name in _MODEL_ENTRYPOINTS:
        raise ModelError(f"model {name!r} is registered twice")
    _MODEL_ENTRYPOINTS[name] = fn
    return fn


def list_models() -> list[str]:
    """Names of all registered models, sorted."""
    return sorted(_MODEL_ENTRYPOINTS)


def is_model(name: str) -> bool:
    return name in _MODEL_ENTRYPOINTS


def model_entrypoint(name: str) -> Callable[..., nn.Module]:
    """The registered entrypoint function of ``name`` (timm's name), e.g. to read which options it requires."""
    try:
        return _MODEL_ENTRYPOINTS[name]
    except KeyError:
        raise UnknownNameError(f"unknown model {name!r}; available: {list_models()}") from None


def create_model(name: str, **overrides) -> nn.Module:
    """Build model ``name``; keyword overrides go to its constructor (e.g. ``input_frames``, ``mixer``)."""
    return model_entrypoint(name)(**overrides)


#: the PET family of attention backbones (AST and its kin); others declare theirs (``fn.pet_family``)
TRANSFORMER = "transformer"


def model_family(name: str) -> str:
    """The PET family of model ``name``: what its entrypoint declares (``fn.pet_family``: SSAMBA's ``"mamba"``),
    else the transformer's. PET methods name their targets per family (``models.pet.base``)."""
    return str(getattr(model_entrypoint(name), "pet_family", TRANSFORMER))


def model_mixers(name: str) -> tuple[str, ...] | None:
    """The token mixers model ``name`` can be built with, when its entrypoint declares them (``fn.mixers``:
    SSAMBA's Mamba layers take only ``mamba``); None: the attention mixers of ``models.MIXERS``."""
    return getattr(model_entrypoint(name), "mixers", None)
