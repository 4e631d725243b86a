"""Pretrained-weight converters: foreign checkpoints (timm ViT/DeiT; later AST, SSAST, Hugging Face) -> ASTBackbone.

A converter is registered under the prefix of its init spec, ``<source>:<model name>[:<local file>]``:

    timm:vit_base_patch16_384                       download through timm (needs network)
    timm:vit_base_patch16_384:/data/vit_b16_384.pth  the same weights from a local file (no network)

Each entry is a loader ``(model_name, file or None, target) -> state dict`` that fetches or reads the weights
and calls the family's pure conversion function (``convert_timm_vit``); the result loads into the target with
``load_state_dict`` unchanged. A new family (e.g. ``ast`` for the AudioSet checkpoint with its ``module.v.``
keys, ``ssast``, ``hf`` for ``ASTForAudioClassification``) adds one module beside ``timm_vit.py`` and one
``register_converter`` call below. Loaders import their optional packages lazily, so the registry is always
importable.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from torch import nn

from audio_ticl.models.convert.base import (
    ASTGeometry,
    ConversionError,
    StateDict,
    WeightsUnavailableError,
    read_checkpoint,
)
from audio_ticl.models.convert.timm_vit import convert_timm_vit, load_timm_vit
from audio_ticl.models.errors import ModelError

__all__ = [
    "CONVERTERS",
    "ASTGeometry",
    "ConversionError",
    "WeightsUnavailableError",
    "Loader",
    "register_converter",
    "is_converter_spec",
    "parse_init_spec",
    "load_pretrained",
    "convert_timm_vit",
    "read_checkpoint",
]

#: (model name, local file or None, target ASTBackbone or its geometry) -> ASTBackbone state dict
Loader = Callable[[str, Path | None, ASTGeometry | nn.Module], StateDict]

CONVERTERS: dict[str, Loader] = {}


def register_converter(name: str) -> Callable[[Loader], Loader]:
    """Decorator: register ``loader`` as the converter for init specs ``<name>:<model>[:<file>]``."""

    def add(loader: Loader) -> Loader:
        if name in CONVERTERS:
            raise ModelError(f"weight converter {name!r} is registered twice")
        if ":" in name or not name:
            raise ModelError(f"weight converter name {name!r} must be non-empty and contain no ':'")
        CONVERTERS[name] = loader
        return loader

    return add


register_converter("timm")(load_timm_vit)


def is_converter_spec(spec: str) -> bool:
    """True when ``spec`` starts with a registered converter prefix (``timm:...``), not a file path."""
    source, sep, _ = spec.partition(":")
    return bool(sep) and source in CONVERTERS


def parse_init_spec(spec: str) -> tuple[str, str, Path | None]:
    """``<source>:<model>[:<file>]`` -> (source, model, file or None). The file may itself contain ':'."""
    source, _, rest = spec.partition(":")
    model_name, sep, file = rest.partition(":")
    if source not in CONVERTERS:
        raise ConversionError(f"unknown weight source {source!r} in {spec!r}; registered: {sorted(CONVERTERS)}")
    if not model_name or (sep and not file):
        raise ConversionError(
            f"malformed weight spec {spec!r}: expected '{source}:<model name>' or '{source}:<model name>:<file>'"
        )
    return source, model_name, (Path(file).expanduser() if file else None)


def load_pretrained(spec: str, target: nn.Module | ASTGeometry) -> StateDict:
    """Fetch / read and convert the weights named by ``spec`` for ``target``; raises ``ConversionError``."""
    source, model_name, file = parse_init_spec(spec)
    return CONVERTERS[source](model_name, file, target)
