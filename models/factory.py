"""Backbone factory: build a registered model, then load its initial weights from an init spec.

Init specs, resolved in this order:

* a registered source name (``models.init``): ``random`` (the model's own init), ``upstream`` (registered by the
  benchmark), ...;
* a converter spec ``<source>:<model>[:<file>]`` (``models.convert``), e.g. ``timm:vit_base_patch16_384``;
* a path to a state-dict file (``.pt`` / ``.pth`` / ``.bin`` / ``.safetensors``), read with ``weights_only``.

The backbone is always created first, with its random init, and the weights are loaded into it afterwards, so a
spec never changes how many random numbers the build draws. Every position embedding that has to be adapted to
the target's patch grid goes through ``models.pos_embed.resample_pos_embed`` (here for sources that report their
grid, inside the converters for foreign checkpoints).
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from audio_ticl.models.convert import CONVERTERS, is_converter_spec, load_pretrained, read_checkpoint
from audio_ticl.models.errors import ModelError, UnknownNameError
from audio_ticl.models.init import InitWeights, get_init, list_inits
from audio_ticl.models.pos_embed import resample_pos_embed
from audio_ticl.models.registry import create_model

__all__ = ["create_backbone", "init_backbone", "resolve_init", "fit_pos_embed"]

#: per source name (or converter prefix), the keyword options it takes (``{"upstream": {"cache_dir": ...}}``,
#: ``{"ast": {"source_grid": (12, 101)}}``)
InitOptions = Mapping[str, Mapping[str, Any]]


def resolve_init(spec: str, backbone: nn.Module, options: InitOptions | None = None) -> InitWeights | None:
    """The weights ``spec`` names for ``backbone`` (None: keep its random init); a ModelError if none fit."""
    source = get_init(spec)
    if source is not None:
        return source(backbone, **dict((options or {}).get(spec, {})))
    if is_converter_spec(spec):  # converters fit the position embedding themselves; options keyed by the prefix
        prefix = spec.partition(":")[0]
        return InitWeights(load_pretrained(spec, backbone, **dict((options or {}).get(prefix, {}))))
    path = Path(spec).expanduser()
    if not path.is_file():
        raise UnknownNameError(
            f"init {spec!r}: expected one of {list_inits()}, <source>:<model>[:<file>] "
            f"(sources: {sorted(CONVERTERS)}) or a state-dict file; '{spec}' not found"
        )
    return InitWeights(read_checkpoint(path))


def fit_pos_embed(weights: InitWeights, backbone: nn.Module) -> dict[str, torch.Tensor]:
    """``weights``' state dict with its position embedding resampled to ``backbone``'s grid where they differ."""
    state = dict(weights.state_dict)
    target = getattr(backbone, "patch_grid", None)
    if weights.grid is None or target is None or tuple(weights.grid) == tuple(target) or "pos_embed" not in state:
        return state
    state["pos_embed"] = resample_pos_embed(
        state["pos_embed"], tuple(weights.grid), tuple(target), backbone.num_prefix_tokens
    )
    return state


def init_backbone(backbone: nn.Module, spec: str = "random", options: InitOptions | None = None) -> nn.Module:
    """Load the weights of init ``spec`` into ``backbone`` (strictly: every key, every shape); return it."""
    weights = resolve_init(spec, backbone, options)
    if weights is None:
        return backbone
    try:
        backbone.load_state_dict(fit_pos_embed(weights, backbone))
    except RuntimeError as exc:  # load_state_dict's missing / unexpected keys and shape mismatches
        detail = " ".join(str(exc).split())  # one line: load_state_dict lists its problems on tab-indented lines
        raise ModelError(f"init {spec!r} does not fit {type(backbone).__name__}: {detail}") from None
    return backbone


def create_backbone(
    name: str, *, init: str = "random", init_options: InitOptions | None = None, **kwargs: Any
) -> nn.Module:
    """Build registered model ``name`` (keyword overrides as ``create_model``), then load init ``init``."""
    return init_backbone(create_model(name, **kwargs), init, init_options)
