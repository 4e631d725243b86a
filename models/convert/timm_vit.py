"""timm ViT / DeiT (ImageNet) -> ``ASTBackbone``: the initialisation of AST and of the AI-CL paper's backbone.

AST's recipe (Gong et al. 2021, Sec. 2.2; README, "Facts the code relies on"), applied to a timm
``VisionTransformer`` / ``VisionTransformerDistilled`` state dict:

* ``patch_embed.proj.weight`` (D, 3, k, k) is summed over the RGB channels into (D, 1, k, k): a grey image
  repeated on three channels then gives the same tokens as the 1-channel spectrogram;
* CLS (and the DeiT distillation token when the target has one) and every block weight are copied, with
  ``attn.*`` renamed ``mixer.*`` (the GSA and FTA mixers share the qkv / proj layout of timm's Attention);
* the square position grid (24x24 for 384 models, 14x14 for 224) is viewed as (frequency rows, time columns),
  centre-cropped in frequency and cropped or bilinearly interpolated in time (``models.pos_embed``).

Classifier heads (``head``, ``head_dist``) are dropped: the TI-CL model has its own per-task heads. Any other
layer the target has no place for (LayerScale, qk-norm, register tokens, fc_norm, ...) is an error, never
silently skipped, because dropping it would change what the network computes.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import torch
from einops import reduce
from torch import nn

from audio_ticl.models.convert.base import (
    ASTGeometry,
    ConversionError,
    StateDict,
    WeightsUnavailableError,
    check_against,
    read_checkpoint,
)
from audio_ticl.models.pos_embed import resample_pos_embed

__all__ = ["convert_timm_vit", "load_timm_vit"]

# timm block key -> ASTBackbone block key (the "blocks.{i}." prefix is kept)
_BLOCK_RENAMES = {
    "norm1.weight": "norm1.weight",
    "norm1.bias": "norm1.bias",
    "attn.qkv.weight": "mixer.qkv.weight",
    "attn.qkv.bias": "mixer.qkv.bias",
    "attn.proj.weight": "mixer.proj.weight",
    "attn.proj.bias": "mixer.proj.bias",
    "norm2.weight": "norm2.weight",
    "norm2.bias": "norm2.bias",
    "mlp.fc1.weight": "mlp.fc1.weight",
    "mlp.fc1.bias": "mlp.fc1.bias",
    "mlp.fc2.weight": "mlp.fc2.weight",
    "mlp.fc2.bias": "mlp.fc2.bias",
}
# biases some timm variants leave out (qkv_bias=False, patch bias off): zeros compute the same thing
_OPTIONAL_BLOCK_KEYS = {"attn.qkv.bias"}
_HEAD_PREFIXES = ("head.", "head_dist.")
_BLOCK_KEY = re.compile(r"^blocks\.(\d+)\.(.+)$")


def _take(
    state: Mapping[str, torch.Tensor], key: str, used: set[str], shape: tuple[int, ...] | None = None
) -> torch.Tensor:
    """``state[key]`` (marked used), checked against ``shape``; a clear error naming the key otherwise."""
    if key not in state:
        raise ConversionError(f"timm checkpoint has no key '{key}' (is it a timm VisionTransformer / DeiT?)")
    value = state[key]
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise ConversionError(
            f"timm key '{key}' has shape {tuple(value.shape)}, the target ASTBackbone expects {tuple(shape)}"
        )
    used.add(key)
    return value.detach().clone()


def _source_grid(pos_len: int, num_prefix: int, grid: tuple[int, int] | None) -> tuple[tuple[int, int], int]:
    """(source patch grid, number of prefix rows in pos_embed: ``num_prefix``, or 0 for no_embed_class models)."""
    if grid is not None:
        patches = grid[0] * grid[1]
        if pos_len - patches in (num_prefix, 0):
            return (int(grid[0]), int(grid[1])), pos_len - patches
        raise ConversionError(
            f"timm key 'pos_embed' has {pos_len} rows, which fits neither {num_prefix} prefix + {grid[0]}x{grid[1]} "
            f"patches nor {grid[0]}x{grid[1]} patches alone"
        )
    # only "prefix rows + a square grid" is inferred: a no_embed_class or non-square layout could be mistaken for it
    side = math.isqrt(max(pos_len - num_prefix, 0))
    if side > 0 and side * side == pos_len - num_prefix:
        return (side, side), num_prefix
    raise ConversionError(
        f"cannot infer the patch grid of timm key 'pos_embed' ({pos_len} rows, {num_prefix} prefix tokens): it is "
        "not a square grid after the prefix rows; pass source_grid=(rows, cols) or the timm model itself"
    )


def _check_module(model: nn.Module, target: ASTGeometry) -> tuple[int, int]:
    """Checks only a built timm model allows (heads are not in the state dict); returns its patch grid."""
    if getattr(model, "num_reg_tokens", 0):
        raise ConversionError(f"timm model has {model.num_reg_tokens} register tokens; ASTBackbone has none")
    if getattr(model, "global_pool", "token") not in ("token", ""):
        raise ConversionError(
            f"timm model pools with global_pool={model.global_pool!r}; the converter expects a CLS-token ViT "
            "('token'); ASTBackbone's pooling is chosen on the target instead"
        )
    dim = getattr(model, "embed_dim", target.embed_dim)
    if dim != target.embed_dim:
        raise ConversionError(
            f"timm model has embed_dim {dim}, the target ASTBackbone embed_dim {target.embed_dim} "
            "(pick model.name / embed_dim to match)"
        )
    heads = getattr(getattr(model.blocks[0], "attn", None), "num_heads", None)
    if heads is not None and heads != target.num_heads:
        raise ConversionError(f"timm model has {heads} attention heads, the target ASTBackbone {target.num_heads}")
    return tuple(int(s) for s in model.patch_embed.grid_size)  # type: ignore[return-value]


def convert_timm_vit(
    source: Mapping[str, torch.Tensor] | nn.Module,
    target: ASTGeometry | nn.Module,
    *,
    source_grid: tuple[int, int] | None = None,
    shrink: Literal["crop", "interpolate"] = "crop",
) -> StateDict:
    """timm ViT / DeiT state dict (or model) -> state dict for ``target`` (an ``ASTBackbone`` or its geometry).

    ``source_grid`` is the (rows, cols) patch grid of the source position embedding; it is read from a model
    and inferred from a square ``pos_embed`` otherwise. ``shrink="crop"`` (AST) centre-crops an axis that
    shrinks; every axis that grows is interpolated. The head count is not stored in a state dict: pass the
    timm model to have it checked.
    """
    geometry = target if isinstance(target, ASTGeometry) else ASTGeometry.of(target)
    if isinstance(source, nn.Module):
        module_grid = _check_module(source, geometry)
        source_grid = module_grid if source_grid is None else source_grid
        state: Mapping[str, torch.Tensor] = source.state_dict()
    else:
        state = source
    used: set[str] = set()
    out: StateDict = {}
    dim = geometry.embed_dim

    # patch embedding: sum the RGB kernels (AST), so x repeated on 3 channels == x on 1 channel
    kernel = state.get("patch_embed.proj.weight")
    if kernel is None:
        raise ConversionError("timm checkpoint has no key 'patch_embed.proj.weight' (is it a timm VisionTransformer?)")
    if kernel.ndim != 4 or kernel.shape[0] != dim:
        raise ConversionError(
            f"timm key 'patch_embed.proj.weight' has shape {tuple(kernel.shape)}: embed_dim {kernel.shape[0]} "
            f"does not match the target ASTBackbone's embed_dim {dim} (pick model.name / embed_dim to match)"
        )
    if tuple(kernel.shape[2:]) != geometry.patch_shape:
        raise ConversionError(
            f"timm key 'patch_embed.proj.weight' has {kernel.shape[2]}x{kernel.shape[3]} patches, the target "
            f"ASTBackbone {geometry.patch_shape[0]}x{geometry.patch_shape[1]}"
        )
    if kernel.shape[1] not in (1, 3):
        raise ConversionError(
            f"timm key 'patch_embed.proj.weight' has {kernel.shape[1]} input channels; expected 3 (RGB, summed "
            "into the one spectrogram channel) or 1"
        )
    out["patch_embed.proj.weight"] = reduce(_take(state, "patch_embed.proj.weight", used), "d c h w -> d 1 h w", "sum")
    out["patch_embed.proj.bias"] = (
        _take(state, "patch_embed.proj.bias", used, (dim,)) if "patch_embed.proj.bias" in state else torch.zeros(dim)
    )

    # prefix tokens: CLS, and the distillation token when both sides have one
    out["cls_token"] = _take(state, "cls_token", used, (1, 1, dim))
    source_prefix = 1 + ("dist_token" in state)
    if geometry.num_prefix_tokens == 2:
        if "dist_token" not in state:
            raise ConversionError(
                "the target ASTBackbone has a distillation token but the timm checkpoint has no 'dist_token': "
                "set model.distill_token false or use a deit_*_distilled_* model"
            )
        out["dist_token"] = _take(state, "dist_token", used, (1, 1, dim))
    elif "dist_token" in state:
        used.add("dist_token")  # a DeiT-distilled source loaded into a CLS-only target: the token is unused

    # position embedding: keep the target's prefix rows, adapt the (F', T') grid
    pos = state.get("pos_embed")
    if pos is None:
        raise ConversionError("timm checkpoint has no key 'pos_embed' (learned absolute position embedding)")
    if pos.ndim != 3 or pos.shape[0] != 1 or pos.shape[2] != dim:
        raise ConversionError(f"timm key 'pos_embed' has shape {tuple(pos.shape)}, expected (1, tokens, {dim})")
    grid, pos_prefix = _source_grid(pos.shape[1], source_prefix, source_grid)
    pos = _take(state, "pos_embed", used)
    if pos_prefix:
        prefix_rows = pos[:, : geometry.num_prefix_tokens]
    else:  # no_embed_class: timm adds no position to the prefix tokens, i.e. a zero one
        prefix_rows = pos.new_zeros(1, geometry.num_prefix_tokens, dim)
    pos = torch.cat([prefix_rows, pos[:, pos_prefix:]], dim=1)
    out["pos_embed"] = resample_pos_embed(pos, grid, geometry.grid, geometry.num_prefix_tokens, shrink)

    # transformer blocks
    depth = 1 + max((int(m.group(1)) for m in map(_BLOCK_KEY.match, state) if m), default=-1)
    if depth != geometry.depth:
        raise ConversionError(
            f"timm checkpoint has {depth} blocks (blocks.0..), the target ASTBackbone depth {geometry.depth}"
        )
    shapes = {
        "norm1.weight": (dim,), "norm1.bias": (dim,), "norm2.weight": (dim,), "norm2.bias": (dim,),
        "attn.qkv.weight": (3 * dim, dim), "attn.qkv.bias": (3 * dim,),
        "attn.proj.weight": (dim, dim), "attn.proj.bias": (dim,),
        "mlp.fc1.weight": (geometry.mlp_hidden, dim), "mlp.fc1.bias": (geometry.mlp_hidden,),
        "mlp.fc2.weight": (dim, geometry.mlp_hidden), "mlp.fc2.bias": (dim,),
    }
    for i in range(depth):
        for src, dst in _BLOCK_RENAMES.items():
            key = f"blocks.{i}.{src}"
            if src in _OPTIONAL_BLOCK_KEYS and key not in state:
                out[f"blocks.{i}.{dst}"] = torch.zeros(shapes[src])
                continue
            out[f"blocks.{i}.{dst}"] = _take(state, key, used, shapes[src])
    out["norm.weight"] = _take(state, "norm.weight", used, (dim,))
    out["norm.bias"] = _take(state, "norm.bias", used, (dim,))

    unexpected = sorted(k for k in state if k not in used and not k.startswith(_HEAD_PREFIXES))
    if unexpected:
        raise ConversionError(
            f"timm checkpoint has layers ASTBackbone has no place for: {unexpected[:8]}"
            f"{' ...' if len(unexpected) > 8 else ''} (the converter handles plain pre-norm ViT / DeiT blocks: "
            "no LayerScale, qk-norm, register tokens, fc_norm or pre-norm)"
        )
    if isinstance(target, nn.Module):
        check_against(out, target, "timm")
    return out


def _import_timm() -> Any:
    try:
        import timm
    except ImportError:
        return None
    return timm


def _check_file_matches(state: Mapping[str, torch.Tensor], reference: nn.Module, model_name: str, file: Path) -> None:
    """Strict check of a local file against the named timm architecture.

    timm's own ``pretrained_cfg_overlay={'file': ...}`` loading is not used for this: timm 1.0 loads such
    files non-strictly and only logs missing keys, so a wrong file would silently leave random weights.
    """
    expected = {k: v.shape for k, v in reference.state_dict().items()}
    missing = sorted(k for k in expected if k not in state)
    wrong = [f"{k}: {tuple(state[k].shape)} vs {tuple(expected[k])}"
             for k in expected if k in state and state[k].shape != expected[k]]
    if missing or wrong:
        details = []
        if missing:
            details.append(f"missing keys {missing[:8]}{' ...' if len(missing) > 8 else ''}")
        if wrong:
            details.append(f"shape mismatches [{'; '.join(wrong[:8])}]")
        raise ConversionError(
            f"the file '{file}' does not hold weights of timm model {model_name!r}: " + ", ".join(details)
        )


def load_timm_vit(model_name: str, file: Path | None, target: ASTGeometry | nn.Module) -> StateDict:
    """``timm:<model_name>[:<file>]``: pretrained timm weights, converted for ``target``.

    Without ``file`` timm downloads the weights (Hugging Face Hub; needs network). With ``file`` nothing is
    downloaded: the file is read as a timm state dict and checked, key by key, against the named architecture
    (built on the meta device, so without memory or time); without timm installed only the converter's own
    checks apply and the source grid must be square.
    """
    timm = _import_timm()
    local = f"timm:{model_name}:/path/to/weights.pth"
    if timm is None:
        if file is None:
            raise WeightsUnavailableError(
                f"'timm:{model_name}' needs the optional package timm: pip install timm "
                f"(or pip install 'audio-ticl[timm]'); or pass a local timm state dict as '{local}'"
            )
        return convert_timm_vit(read_checkpoint(file), target)
    if not timm.is_model(model_name):
        similar = timm.list_models(f"*{model_name.split('.')[0]}*")[:10]
        raise WeightsUnavailableError(
            f"timm has no model {model_name!r}" + (f"; similar names: {similar}" if similar else "")
        )
    if file is not None:
        state = read_checkpoint(file)
        with torch.device("meta"):
            reference = timm.create_model(model_name, pretrained=False, num_classes=0)
        geometry = target if isinstance(target, ASTGeometry) else ASTGeometry.of(target)
        grid = _check_module(reference, geometry)
        _check_file_matches(state, reference, model_name, file)
        return convert_timm_vit(state, target, source_grid=grid)
    try:
        model = timm.create_model(model_name, pretrained=True, num_classes=0)
    except Exception as exc:  # noqa: BLE001 - network failures surface as many exception types
        raise WeightsUnavailableError(
            f"could not fetch the pretrained weights of timm model {model_name!r} "
            f"({type(exc).__name__}: {exc}). Downloading them needs network access (Hugging Face Hub). "
            f"On a machine without it, download the weights elsewhere (e.g. timm.create_model({model_name!r}, "
            f"pretrained=True) and torch.save(model.state_dict(), 'weights.pth')) and pass the file as "
            f"'{local}' (model.init; a .pth / .bin / .safetensors state dict)"
        ) from exc
    return convert_timm_vit(model, target)


def describe_timm_vit(model_name: str, file: Path | None, keep_head: bool) -> Any:
    """The geometry of timm model ``model_name`` (built on the meta device: no weights, no download).

    A distilled DeiT (Touvron et al., "Training data-efficient image transformers & distillation through
    attention", ICML 2021) gives CLS + distillation token and AST's ``cls_dist`` pooling; a ViT gives CLS pooling.
    Audio geometry is AST's (128 mel bins, 1024 frames, stride 10) unless ``from_pretrained`` is told otherwise.
    """
    from audio_ticl.models.convert.base import SourceModel

    if keep_head:
        raise ConversionError("keep_head: timm ImageNet classifiers are not kept (they classify images)")
    timm = _import_timm()
    if timm is None:
        raise WeightsUnavailableError(
            f"'timm:{model_name}' needs the optional package timm to read its geometry: pip install timm"
        )
    if not timm.is_model(model_name):
        raise WeightsUnavailableError(f"timm has no model {model_name!r}")
    with torch.device("meta"):
        model = timm.create_model(model_name, pretrained=False, num_classes=0)
    dim = int(model.embed_dim)
    distilled = "dist_token" in dict(model.named_parameters())
    kwargs = {
        "embed_dim": dim,
        "depth": len(model.blocks),
        "num_heads": int(model.blocks[0].attn.num_heads),
        "mlp_ratio": model.blocks[0].mlp.fc1.out_features / dim,
        "patch_size": int(model.patch_embed.patch_size[0]),
        "distill_token": distilled,
        "pooling": "cls_dist" if distilled else "cls",
        "input_frames": 1024,
        "num_mel_bins": 128,
    }
    return SourceModel(kwargs)
