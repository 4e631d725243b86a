"""Registry of named weight-initialisation sources for backbones (``init: random``, ``init: upstream``, ...).

A source is a function ``(backbone, **options) -> InitWeights | None`` registered under a bare name; None means
"keep the backbone's own random init". ``models`` registers ``random``; packages above it register what they own
(the benchmark registers ``upstream``, its synthetic pretraining, from ``benchmark/upstream.py``): ``models``
never imports them. Specs that are not a registered name are converter specs (``<source>:<model>[:<file>]``,
``models.convert``) or state-dict files; ``models.factory.init_backbone`` resolves all of them.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from audio_ticl.models.errors import ModelError

__all__ = ["InitWeights", "InitSource", "register_init", "get_init", "list_inits"]


@dataclass(frozen=True)
class InitWeights:
    """A backbone state dict, and the patch grid its position embedding was trained at (None: the target's)."""

    state_dict: Mapping[str, torch.Tensor]
    grid: tuple[int, int] | None = None


InitSource = Callable[..., "InitWeights | None"]

_SOURCES: dict[str, InitSource] = {}


def register_init(name: str) -> Callable[[InitSource], InitSource]:
    """Decorator: register ``source`` as the init spec ``name`` (a bare word: no ':' or path separator)."""

    def add(source: InitSource) -> InitSource:
        if not name or ":" in name or "/" in name:
            raise ModelError(f"init source name {name!r} must be a non-empty bare word (no ':' or '/')")
        old = _SOURCES.get(name)
        if old is not None and (old.__module__, old.__qualname__) != (source.__module__, source.__qualname__):
            raise ModelError(f"init source {name!r} is registered twice ({old.__module__} and {source.__module__})")
        _SOURCES[name] = source
        return source

    return add


def get_init(name: str) -> InitSource | None:
    """The source registered as ``name``, or None."""
    return _SOURCES.get(name)


def list_inits() -> list[str]:
    """Names of the registered init sources, sorted."""
    return sorted(_SOURCES)


@register_init("random")
def random_init(backbone: nn.Module) -> None:
    """The backbone's own random init (timm's ViT init), unchanged."""
    return None
