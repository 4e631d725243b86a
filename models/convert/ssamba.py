"""SSAMBA checkpoints (Shams et al. 2024, "SSAMBA: Self-Supervised Audio Representation Learning with Mamba State
Space Model") -> ``SSAMBABackbone``.

A checkpoint (``amba_{tiny,small,base}_{250,300,400}.pth``, or a fine-tuned ``best_audio_model.pth``) is the
``DataParallel`` state dict of SSAMBA's ``AMBAModel``; ``read_checkpoint`` strips ``module.``:

* ``v.*``: Vision Mamba's keys: ``layers.{i}.mixer.*`` (bimamba v2, Vim's names, which ``BiMambaMixer`` shares),
  ``layers.{i}.norm.*``, ``norm_f.*``, ``patch_embed.proj.*`` (``Conv2d(1, D, 16, 16)``), ``cls_token``,
  ``pos_embed`` and Vim's unused 1000-way ``head.*`` (dropped);
* pretraining files: ``p_input_fdim`` / ``p_input_tdim`` (the pretraining input, 128 x 1024: an 8 x 64 grid of
  non-overlapping patches), ``mask_embed``, ``cpredlayer.*`` and ``gpredlayer.*`` (the masked-patch heads): dropped;
* fine-tuned files: ``mlp_head.*`` (dropped, or kept by ``from_pretrained(..., keep_head=True)``).

``layers.{i}`` becomes ``blocks.{i}`` and ``norm_f`` becomes ``norm``; the position embedding is resampled to the
target's grid by AST's rule (``models.pos_embed``: centre crop in time, bilinear in frequency, as SSAMBA's
fine-tuning does for 128 x 512 and 128 x 128 inputs). Any other key, a missing key or a wrong shape is an error
that names it.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from audio_ticl.models.convert.ast_audioset import _HEAD_KEYS, _grid, _split, ast_head
from audio_ticl.models.convert.base import ConversionError, SourceModel, StateDict, read_checkpoint
from audio_ticl.models.pos_embed import resample_pos_embed

__all__ = ["convert_ssamba", "load_ssamba", "describe_ssamba"]

_GRID_KEYS = ("p_input_fdim", "p_input_tdim")
_PRETRAIN_PREFIXES = ("cpredlayer.", "gpredlayer.")
_PRETRAIN_KEYS = ("mask_embed",)
_LAYER = re.compile(r"^layers\.(\d+)\.(.+)$")


def _parts(state: Mapping[str, torch.Tensor]) -> StateDict:
    extra = tuple(k for k in state if k.startswith(_PRETRAIN_PREFIXES)) + _PRETRAIN_KEYS + _GRID_KEYS + _HEAD_KEYS
    vim = _split(state, extra, "SSAMBA")
    if "layers.0.mixer.in_proj.weight" not in vim or "patch_embed.proj.weight" not in vim:
        raise ConversionError("SSAMBA checkpoint lacks 'module.v.layers.0.mixer.in_proj.weight' or "
                              "'module.v.patch_embed.proj.weight': not an SSAMBA (Vision Mamba) state dict")
    return vim


def _source_grid(state: Mapping[str, torch.Tensor], vim: StateDict,
                 source_grid: tuple[int, int] | None) -> tuple[int, int]:
    """The pretraining grid from ``p_input_*`` (strides = patch), else ``source_grid`` or 12 rows."""
    if source_grid is None and all(k in state for k in _GRID_KEYS):
        fshape, tshape = (int(s) for s in vim["patch_embed.proj.weight"].shape[2:])
        fdim, tdim = (int(state[k].item()) for k in _GRID_KEYS)
        return (fdim - fshape) // fshape + 1, (tdim - tshape) // tshape + 1
    return _grid(vim, source_grid)


def _rename(key: str) -> str | None:
    """SSAMBA (Vim) key -> this suite's, or None for a key that is dropped."""
    match = _LAYER.match(key)
    if match:
        return f"blocks.{match.group(1)}.{match.group(2)}"
    if key.startswith("norm_f."):
        return "norm." + key.removeprefix("norm_f.")
    if key.startswith("head."):
        return None  # Vim's 1000-way ImageNet head: SSAMBA never calls it
    return key


def convert_ssamba(state: Mapping[str, torch.Tensor], target: nn.Module, *,
                   source_grid: tuple[int, int] | None = None) -> StateDict:
    """SSAMBA state dict (``module.`` stripped) -> a state dict that loads strictly into ``target``."""
    vim = _parts(state)
    grid = _source_grid(state, vim, source_grid)
    out: StateDict = {}
    for key, value in vim.items():
        new = _rename(key)
        if new is not None:
            out[new] = value
    out["pos_embed"] = resample_pos_embed(vim["pos_embed"], grid, tuple(target.patch_grid), 1)
    expected = target.state_dict()
    missing = sorted(set(expected) - set(out))
    unexpected = sorted(set(out) - set(expected))
    if missing or unexpected:
        raise ConversionError(
            f"SSAMBA checkpoint does not fit the target backbone: missing {missing[:6]}, unexpected "
            f"{['module.v.' + k.replace('blocks.', 'layers.', 1) for k in unexpected[:6]]} (depth, width and norm "
            "must match the file: build the backbone with from_pretrained('ssamba:<file>'))"
        )
    for key, value in out.items():
        if tuple(value.shape) != tuple(expected[key].shape):
            raise ConversionError(f"SSAMBA key for {key!r} has shape {tuple(value.shape)}, the target needs "
                                  f"{tuple(expected[key].shape)}")
    return out


def load_ssamba(model_name: str, file: Path | None, target: nn.Module, *,
                source_grid: tuple[int, int] | None = None) -> StateDict:
    """``ssamba:<file>``: a local SSAMBA checkpoint (nothing is downloaded), converted for ``target``."""
    return convert_ssamba(read_checkpoint(file or Path(model_name)), target, source_grid=source_grid)


def describe_ssamba(model_name: str, file: Path | None, keep_head: bool) -> SourceModel:
    """SSAMBA geometry: width, depth, norm (LayerNorm when the norms have a bias, else RMSNorm), patch strides
    (= the patch, as pretrained; fine-tuning uses 10), mean pooling; with ``keep_head``, the fine-tuned head."""
    state = read_checkpoint(file or Path(model_name))
    vim = _parts(state)
    depth = 1 + max(int(m.group(1)) for k in vim if (m := _LAYER.match(k)))
    fshape, tshape = (int(s) for s in vim["patch_embed.proj.weight"].shape[2:])
    kwargs = {
        "model": "ssamba_custom",
        "embed_dim": int(vim["cls_token"].shape[-1]),
        "depth": depth,
        "norm": "layer" if "layers.0.norm.bias" in vim else "rms",
        "patch_size": (fshape, tshape),
        "fstride": fshape,
        "tstride": tshape,
        "pooling": "mean",
    }
    if all(k in state for k in _GRID_KEYS):
        kwargs.update(num_mel_bins=int(state["p_input_fdim"].item()), input_frames=int(state["p_input_tdim"].item()))
    head = ast_head(state) if keep_head else None
    if keep_head and head is None:
        raise ConversionError(f"keep_head: the SSAMBA checkpoint '{file}' has no classifier (pretraining checkpoint)")
    return SourceModel(kwargs, head)
