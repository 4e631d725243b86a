"""What can be measured, read from the registries (``MIXERS``, ``PET_METHODS``, the model registry) each time, so
that a newly registered mixer, PET method or model size appears in ``ticl efficiency`` without touching it."""
from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any

from audio_ticl.benchmark.errors import OptionError
from audio_ticl.models import MIXERS, PET_METHODS, list_mixers, list_models
from audio_ticl.models.registry import model_entrypoint, model_mixers

#: the ``--pet`` value for no PET method: the plain backbone (full fine-tuning when training)
NO_PET = "none"
#: options every measured backbone is given by the geometry (``cases``), not by the user
GEOMETRY_OPTIONS = {"input_frames"}


def mixers() -> list[str]:
    """Every token mixer a backbone takes, in registration order (the first, gsa, is the ratio columns'
    reference): the attention mixers, then ``mamba`` (SSAMBA's layers)."""
    return list_mixers()


def attention_mixers() -> list[str]:
    """The mixers with an attention op (``TokenMixer.attend``), which ``--scope op`` times."""
    return list(MIXERS)


def model_for(model: str, mixer: str) -> str:
    """The registered model of ``model``'s size that takes ``mixer``: ``model`` itself, or the family member that
    declares it (``ast_tiny`` + ``mamba`` -> ``ssamba_tiny``: same size name, Mamba layers)."""
    if mixer in (model_mixers(model) or MIXERS):
        return model
    size = model.split("_", 1)[-1]
    for name in list_models():
        if name.split("_", 1)[-1] == size and mixer in (model_mixers(name) or ()):
            return name
    raise OptionError(f"--mixers {mixer}: no registered model of size '{size}' takes it")


def pets() -> list[str]:
    return [NO_PET, *PET_METHODS]


def _required(model: str) -> set[str]:
    params = inspect.signature(model_entrypoint(model)).parameters.values()
    return {p.name for p in params if p.default is inspect.Parameter.empty and p.kind is p.KEYWORD_ONLY}


def sizes(model_kwargs: Mapping[str, Any] | None = None) -> dict[str, str]:
    """size name -> registered model (``base`` -> ``ast_base``), for the models buildable from the geometry and
    ``model_kwargs`` alone (``ast_custom`` needs its width, depth and heads)."""
    given = GEOMETRY_OPTIONS | set(model_kwargs or {})
    return {
        name.removeprefix("ast_"): name for name in list_models()
        if _required(name) <= given and model_mixers(name) is None  # family members come from model_for
    }


def _normalize(text: str) -> str:
    return text.strip().replace("-", "_")


def resolve(option: str, given: Sequence[str] | None, available: Sequence[str], default: Sequence[str],
            prefix: str = "") -> list[str]:
    """The values of a list option (``-`` read as ``_``, ``prefix`` dropped, repeats dropped), each checked against
    ``available``."""
    values = [_normalize(v) for v in (given if given is not None else default)]
    values = list(dict.fromkeys(v.removeprefix(prefix) if prefix else v for v in values))
    unknown = [v for v in values if v not in available]
    if unknown:
        raise OptionError(
            f"{option}: unknown {', '.join(map(repr, unknown))}; choose from the registered: {', '.join(available)}"
        )
    if not values:
        raise OptionError(f"{option}: expected at least one of {', '.join(available)}")
    return values
