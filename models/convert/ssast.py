"""SSAST checkpoints (Gong, Lai, Chung, Glass, "SSAST: Self-Supervised Audio Spectrogram Transformer", AAAI 2022).

A pretraining checkpoint is the ``DataParallel`` state dict of SSAST's ``ASTModel(pretrain_stage=True)``:

* ``module.v.*``: a timm DeiT (distilled for tiny / small / base, CLS only for ``base_nokd``) whose patch
  projection is ``Conv2d(1, D, (fshape, tshape), stride=(fshape, tshape))``: 16 x 16 for patch models, 128 x 2
  for frame models;
* ``module.p_input_fdim`` / ``module.p_input_tdim``: the pretraining input (128 mel bins x 1024 frames), from which
  the pretraining grid is ``p_f_dim = p_input_fdim // fshape``, ``p_t_dim = p_input_tdim // tshape`` (8 x 64 for
  patch models, 1 x 512 for frame models);
* ``module.cpredlayer.*``, ``module.gpredlayer.*``, ``module.mask_embed``: the masked-patch pretraining heads, which
  fine-tuning never uses; they are dropped. A fine-tuned file's ``module.mlp_head.*`` is dropped too (or kept by
  ``from_pretrained(..., keep_head=True)``).

The ``v`` part goes through the timm converter with that grid (AST's crop / interpolate to the target grid, the
rule SSAST's fine-tuning applies). SSAST fine-tunes patch models on the mean of the patch tokens: that is the
pooling ``describe_ssast`` chooses (``pooling="mean"``). Any other key is an error that names it.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from audio_ticl.models.convert.ast_audioset import _HEAD_KEYS, _convert, _split, ast_head, vit_kwargs
from audio_ticl.models.convert.base import ASTGeometry, ConversionError, SourceModel, StateDict, read_checkpoint

__all__ = ["convert_ssast", "load_ssast", "describe_ssast", "ssast_grid"]

_GRID_KEYS = ("p_input_fdim", "p_input_tdim")
_PRETRAIN_PREFIXES = ("cpredlayer.", "gpredlayer.")
_PRETRAIN_KEYS = ("mask_embed",)


def _parts(state: Mapping[str, torch.Tensor]) -> StateDict:
    """``v.*`` of an SSAST state dict, after checking every other key is a known SSAST extra."""
    extra = tuple(k for k in state if k.startswith(_PRETRAIN_PREFIXES)) + _PRETRAIN_KEYS + _GRID_KEYS + _HEAD_KEYS
    return _split(state, extra, "SSAST")


def ssast_grid(state: Mapping[str, torch.Tensor], vit: Mapping[str, torch.Tensor]) -> tuple[int, int]:
    """The pretraining grid (p_f_dim, p_t_dim) from ``p_input_fdim`` / ``p_input_tdim`` and the patch shape."""
    missing = [f"module.{k}" for k in _GRID_KEYS if k not in state]
    if missing:
        raise ConversionError(
            f"SSAST checkpoint has no {missing}: it is not an SSAST pretraining checkpoint (a fine-tuned SSAST "
            "model saved without them loads as 'ast:<file>' with its source_grid)"
        )
    fshape, tshape = (int(s) for s in vit["patch_embed.proj.weight"].shape[2:])
    fdim, tdim = (int(state[k].item()) for k in _GRID_KEYS)
    return (fdim - fshape) // fshape + 1, (tdim - tshape) // tshape + 1  # SSAST's get_shape: stride = patch shape


def convert_ssast(state: Mapping[str, torch.Tensor], target: ASTGeometry | nn.Module) -> StateDict:
    """SSAST state dict (``module.`` stripped) -> state dict for ``target``; pretraining heads dropped."""
    vit = _parts(state)
    if "patch_embed.proj.weight" not in vit:
        raise ConversionError("SSAST checkpoint has no key 'module.v.patch_embed.proj.weight'")
    return _convert(vit, target, ssast_grid(state, vit), "SSAST")


def load_ssast(model_name: str, file: Path | None, target: ASTGeometry | nn.Module) -> StateDict:
    """``ssast:<file>``: a local SSAST checkpoint (nothing is downloaded), converted for ``target``."""
    return convert_ssast(read_checkpoint(file or Path(model_name)), target)


def describe_ssast(model_name: str, file: Path | None, keep_head: bool) -> SourceModel:
    """SSAST geometry: its patch shape, strides = patch shape (no overlap, as pretrained), mean pooling."""
    state = read_checkpoint(file or Path(model_name))
    vit = _parts(state)
    kwargs = vit_kwargs(vit, "SSAST")
    fshape, tshape = (int(s) for s in vit["patch_embed.proj.weight"].shape[2:])
    kwargs.update(fstride=fshape, tstride=tshape, pooling="mean")
    if all(k in state for k in _GRID_KEYS):
        kwargs.update(num_mel_bins=int(state["p_input_fdim"].item()), input_frames=int(state["p_input_tdim"].item()))
    head = ast_head(state) if keep_head else None
    if keep_head and head is None:
        raise ConversionError(f"keep_head: the SSAST checkpoint '{file}' has no classifier (pretraining checkpoint)")
    return SourceModel(kwargs, head)
