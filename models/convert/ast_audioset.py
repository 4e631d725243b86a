"""AST checkpoints (Gong, Chung, Glass, "AST: Audio Spectrogram Transformer", Interspeech 2021) -> ``ASTBackbone``.

The released AudioSet model (``audioset_10_10_0.4593.pth``) is the state dict of ``ASTModel`` wrapped in
``DataParallel``: ``module.v.*`` is a timm DeiT-distilled ViT whose patch projection is already a 1-channel
``Conv2d(1, D, 16, stride=(10, 10))`` and whose position embedding covers CLS, the distillation token and a
12 x 101 grid (128 mel bins x 1024 frames); ``module.v.head*`` are DeiT's unused ImageNet heads;
``module.mlp_head.{0,1}`` is the 527-class AudioSet classifier ``Sequential(LayerNorm(768), Linear(768, 527))``
applied to the mean of the CLS and distillation tokens.

The ``v`` part is converted by the timm converter (the layouts are the same), with the source grid given, so the
grid is centre-cropped / interpolated to the target grid as AST itself does when fine-tuning at another length or
stride. The grid is read as 12 frequency rows (128 mel bins at frequency stride 10, every released AST model) unless
``source_grid`` says otherwise. The classifier is dropped by ``load_ast`` (the TI-CL model has per-task heads);
``models.from_pretrained("ast", file, keep_head=True)`` attaches it, frozen, as ``backbone.pretrained_head``.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from audio_ticl.models.convert.base import (
    ASTGeometry,
    ConversionError,
    SourceModel,
    StateDict,
    frozen_head,
    read_checkpoint,
    split_prefix,
)
from audio_ticl.models.convert.timm_vit import convert_timm_vit

__all__ = ["convert_ast", "load_ast", "describe_ast", "ast_head", "vit_kwargs"]

_HEAD_KEYS = ("mlp_head.0.weight", "mlp_head.0.bias", "mlp_head.1.weight", "mlp_head.1.bias")
#: AST's frequency rows: 128 mel bins, 16-bin patches, frequency stride 10
AST_FREQ_ROWS = 12


def _split(state: Mapping[str, torch.Tensor], extra: tuple[str, ...], name: str) -> StateDict:
    """``v.*`` of an AST-layout state dict; any top-level key not in ``extra`` is an error that names it."""
    unknown = sorted(k for k in state if not k.startswith("v.") and k not in extra)
    if unknown:
        raise ConversionError(
            f"{name} checkpoint has keys outside 'module.v.*' that no converter step uses: {unknown[:8]}"
            f"{' ...' if len(unknown) > 8 else ''}"
        )
    vit = split_prefix(state, "v.")
    if not vit:
        raise ConversionError(f"{name} checkpoint has no 'module.v.*' keys (is it an {name} ASTModel state dict?)")
    return vit


def _grid(vit: Mapping[str, torch.Tensor], source_grid: tuple[int, int] | None) -> tuple[int, int]:
    """The (F', T') grid of the AST position embedding: ``source_grid`` or 12 rows by (patches / 12) columns."""
    if "pos_embed" not in vit:
        raise ConversionError("AST checkpoint has no key 'module.v.pos_embed'")
    patches = vit["pos_embed"].shape[1] - 1 - ("dist_token" in vit)
    if source_grid is not None:
        if source_grid[0] * source_grid[1] != patches:
            raise ConversionError(
                f"AST key 'module.v.pos_embed' holds {patches} patches, not the {source_grid[0]}x{source_grid[1]} "
                "source_grid given"
            )
        return (int(source_grid[0]), int(source_grid[1]))
    if patches % AST_FREQ_ROWS:
        raise ConversionError(
            f"AST key 'module.v.pos_embed' holds {patches} patches, not a multiple of {AST_FREQ_ROWS} frequency "
            "rows (128 mel bins at frequency stride 10): pass source_grid=(rows, cols) (init option "
            "{'ast': {'source_grid': [rows, cols]}} or models.from_pretrained(..., source_grid=...))"
        )
    return AST_FREQ_ROWS, patches // AST_FREQ_ROWS


def _convert(vit: StateDict, target: ASTGeometry | nn.Module, grid: tuple[int, int], name: str) -> StateDict:
    try:
        return convert_timm_vit(vit, target, source_grid=grid)
    except ConversionError as exc:
        raise ConversionError(f"{name} checkpoint ('module.v.*' keys): {exc}") from None


def convert_ast(
    state: Mapping[str, torch.Tensor], target: ASTGeometry | nn.Module, *, source_grid: tuple[int, int] | None = None
) -> StateDict:
    """AST state dict (``module.`` already stripped, as ``read_checkpoint`` does) -> state dict for ``target``."""
    vit = _split(state, _HEAD_KEYS, "AST")
    return _convert(vit, target, _grid(vit, source_grid), "AST")


def ast_head(state: Mapping[str, torch.Tensor]) -> nn.Sequential | None:
    """AST's frozen ``mlp_head`` (LayerNorm, Linear; 527 AudioSet classes), or None when the file has none."""
    if not all(k in state for k in _HEAD_KEYS):
        return None
    return frozen_head(*(state[k] for k in _HEAD_KEYS))


def load_ast(
    model_name: str, file: Path | None, target: ASTGeometry | nn.Module, *, source_grid: tuple[int, int] | None = None
) -> StateDict:
    """``ast:<file>``: a local AST checkpoint (nothing is downloaded), converted for ``target``; head dropped."""
    return convert_ast(read_checkpoint(file or Path(model_name)), target, source_grid=source_grid)


def vit_kwargs(vit: Mapping[str, torch.Tensor], name: str) -> dict[str, Any]:
    """``ASTBackbone`` width / depth / heads / MLP ratio / patch / prefix of a timm-layout state dict.

    The head count is not stored in weights: DeiT's 64-d heads are assumed (tiny 3, small 6, base 12); pass
    ``num_heads`` to ``from_pretrained`` for anything else.
    """
    if "cls_token" not in vit or "blocks.0.mlp.fc1.weight" not in vit or "patch_embed.proj.weight" not in vit:
        raise ConversionError(f"{name} checkpoint lacks cls_token / patch_embed / blocks.0: not a ViT state dict")
    dim = int(vit["cls_token"].shape[-1])
    depth = 1 + max(int(k.split(".")[1]) for k in vit if k.startswith("blocks."))
    kernel = tuple(int(s) for s in vit["patch_embed.proj.weight"].shape[2:])
    return {
        "embed_dim": dim,
        "depth": depth,
        "num_heads": max(dim // 64, 1),
        "mlp_ratio": vit["blocks.0.mlp.fc1.weight"].shape[0] / dim,
        "patch_size": kernel[0] if kernel[0] == kernel[1] else kernel,
        "distill_token": "dist_token" in vit,
    }


def describe_ast(model_name: str, file: Path | None, keep_head: bool) -> SourceModel:
    """AST geometry: strides 10, the source's prefix tokens, pooling ``cls_dist`` (AST's), AST's 1024 x 128 input."""
    state = read_checkpoint(file or Path(model_name))
    vit = _split(state, _HEAD_KEYS, "AST")
    kwargs = vit_kwargs(vit, "AST")
    kwargs.update(fstride=10, tstride=10, input_frames=1024, num_mel_bins=128,
                  pooling="cls_dist" if kwargs["distill_token"] else "cls")
    head = ast_head(state) if keep_head else None
    if keep_head and head is None:
        raise ConversionError(f"keep_head: the AST checkpoint '{file}' has no mlp_head.0 / mlp_head.1 keys")
    return SourceModel(kwargs, head)
