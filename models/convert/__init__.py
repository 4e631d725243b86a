"""Pretrained-weight converters: foreign checkpoints (timm ViT/DeiT, AST, SSAST, Hugging Face AST) -> ASTBackbone.

A converter is registered under the prefix of its init spec; what follows the prefix depends on the source:

    timm:vit_base_patch16_384                       download through timm (needs network)
    timm:vit_base_patch16_384:/data/vit_b16_384.pth  the same weights from a local file (no network)
    timm:deit_base_distilled_patch16_384            DeiT with CLS + distillation token (AST's initialisation)
    ast:/data/audioset_10_10_0.4593.pth             the AST AudioSet checkpoint (Gong et al. 2021)
    ssast:/data/SSAST-Base-Patch-400.pth            an SSAST pretraining checkpoint (Gong et al. 2022)
    ssamba:/data/amba_tiny_300.pth                  an SSAMBA checkpoint (Shams et al. 2024): SSAMBABackbone
    hf:/data/ast-finetuned-audioset                 a Hugging Face ASTModel / ASTForAudioClassification folder
    hf:MIT/ast-finetuned-audioset-10-10-0.4593      the same downloaded from the Hub (needs network)

Each entry is a loader ``(model_name, file or None, target, **options) -> state dict`` that fetches or reads the
weights and calls the family's pure conversion function; the result loads into the target with
``load_state_dict`` unchanged. A family may also register a describer ``(model_name, file, keep_head) ->
SourceModel`` that reads the source geometry (and classifier) for ``models.from_pretrained``. Loaders import
their optional packages lazily, so the registry is always importable.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from torch import nn

from audio_ticl.models.convert.ast_audioset import convert_ast, describe_ast, load_ast
from audio_ticl.models.convert.base import (
    ASTGeometry,
    ConversionError,
    SourceModel,
    StateDict,
    WeightsUnavailableError,
    read_checkpoint,
)
from audio_ticl.models.convert.hf_ast import convert_hf_ast, describe_hf_ast, load_hf_ast
from audio_ticl.models.convert.ssamba import convert_ssamba, describe_ssamba, load_ssamba
from audio_ticl.models.convert.ssast import convert_ssast, describe_ssast, load_ssast
from audio_ticl.models.convert.timm_vit import convert_timm_vit, describe_timm_vit, load_timm_vit
from audio_ticl.models.errors import ModelError

__all__ = [
    "CONVERTERS",
    "DESCRIBERS",
    "ASTGeometry",
    "SourceModel",
    "ConversionError",
    "WeightsUnavailableError",
    "Loader",
    "register_converter",
    "is_converter_spec",
    "parse_init_spec",
    "load_pretrained",
    "convert_timm_vit",
    "convert_ast",
    "convert_ssast",
    "convert_hf_ast",
    "convert_ssamba",
    "describe_pretrained",
    "read_checkpoint",
]

#: (model name, local file or None, target ASTBackbone or its geometry, **options) -> ASTBackbone state dict
Loader = Callable[..., StateDict]
#: (model name, local file or None, keep_head) -> the source's geometry and (optionally) its classifier
Describer = Callable[[str, "Path | None", bool], SourceModel]
#: what follows ``<source>:``: a model name with an optional file, a file, or a folder / hub name
SpecForm = Literal["name[:file]", "file", "dir-or-name"]

CONVERTERS: dict[str, Loader] = {}
DESCRIBERS: dict[str, Describer] = {}
_SPEC_FORMS: dict[str, SpecForm] = {}


def register_converter(
    name: str, *, spec_form: SpecForm = "name[:file]", describe: Describer | None = None
) -> Callable[[Loader], Loader]:
    """Decorator: register ``loader`` as the converter for init specs ``<name>:<rest>`` (``rest``: ``spec_form``)."""

    def add(loader: Loader) -> Loader:
        if name in CONVERTERS:
            raise ModelError(f"weight converter {name!r} is registered twice")
        if ":" in name or not name:
            raise ModelError(f"weight converter name {name!r} must be non-empty and contain no ':'")
        CONVERTERS[name] = loader
        _SPEC_FORMS[name] = spec_form
        if describe is not None:
            DESCRIBERS[name] = describe
        return loader

    return add


register_converter("timm", describe=describe_timm_vit)(load_timm_vit)
register_converter("ast", spec_form="file", describe=describe_ast)(load_ast)
register_converter("ssast", spec_form="file", describe=describe_ssast)(load_ssast)
register_converter("hf", spec_form="dir-or-name", describe=describe_hf_ast)(load_hf_ast)
register_converter("ssamba", spec_form="file", describe=describe_ssamba)(load_ssamba)


def is_converter_spec(spec: str) -> bool:
    """True when ``spec`` starts with a registered converter prefix (``timm:...``), not a file path."""
    source, sep, _ = spec.partition(":")
    return bool(sep) and source in CONVERTERS


def parse_init_spec(spec: str) -> tuple[str, str, Path | None]:
    """``<source>:<rest>`` -> (source, model, file or None). A file may itself contain ':'.

    ``timm:<model>[:<file>]`` splits at the second ':'; ``ast:<file>`` / ``ssast:<file>`` give (source, file, file);
    ``hf:<dir or hub name>`` gives (source, rest, None), the loader telling a folder from a name.
    """
    source, _, rest = spec.partition(":")
    if source not in CONVERTERS:
        raise ConversionError(f"unknown weight source {source!r} in {spec!r}; registered: {sorted(CONVERTERS)}")
    form = _SPEC_FORMS.get(source, "name[:file]")
    if form != "name[:file]":
        if not rest:
            what = "<file>" if form == "file" else "<folder or hub name>"
            raise ConversionError(f"malformed weight spec {spec!r}: expected '{source}:{what}'")
        return source, rest, (Path(rest).expanduser() if form == "file" else None)
    model_name, sep, file = rest.partition(":")
    if not model_name or (sep and not file):
        raise ConversionError(
            f"malformed weight spec {spec!r}: expected '{source}:<model name>' or '{source}:<model name>:<file>'"
        )
    return source, model_name, (Path(file).expanduser() if file else None)


def load_pretrained(spec: str, target: nn.Module | ASTGeometry, **options: Any) -> StateDict:
    """Fetch / read and convert the weights named by ``spec`` for ``target``; raises ``ConversionError``.

    ``options`` go to the source's loader (e.g. ``source_grid=(12, 101)`` for ``ast``).
    """
    source, model_name, file = parse_init_spec(spec)
    return CONVERTERS[source](model_name, file, target, **options)


def describe_pretrained(spec: str, keep_head: bool = False) -> SourceModel:
    """The geometry (``ASTBackbone`` kwargs) and, with ``keep_head``, the classifier of the source ``spec`` names."""
    source, model_name, file = parse_init_spec(spec)
    if source not in DESCRIBERS:
        raise ConversionError(f"weight source {source!r} cannot describe its geometry; build the backbone yourself")
    return DESCRIBERS[source](model_name, file, keep_head)
