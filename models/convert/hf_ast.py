"""Hugging Face ``ASTModel`` / ``ASTForAudioClassification`` (transformers; AST of Gong et al., Interspeech 2021).

A model folder holds ``config.json`` and ``model.safetensors`` (or ``pytorch_model.bin``). The config gives the
geometry (``hidden_size``, ``num_hidden_layers``, ``num_attention_heads``, ``intermediate_size``, ``patch_size``,
``frequency_stride``, ``time_stride``, ``max_length``, ``num_mel_bins``, ``layer_norm_eps``) and so the source grid
``((num_mel_bins - patch) // frequency_stride + 1, (max_length - patch) // time_stride + 1)``. Both key layouts
are read: the one of the published Hub files (transformers 4: ``encoder.layer.{i}.attention.attention.query``,
``attention.output.dense``, ``intermediate.dense``, ``output.dense``) and transformers 5's (``layers.{i}.attention
.q_proj`` .. ``o_proj``, ``mlp.fc1`` / ``fc2``). q, k and v are concatenated into ``mixer.qkv``; the input
(B, T, F) and the frequency-major token order are AST's, so nothing else moves. The position embedding is cropped
/ interpolated to the target grid as AST does. ``ASTForAudioClassification``'s ``classifier`` (LayerNorm + Linear
on the mean of CLS and distillation token) is dropped, or kept frozen by ``from_pretrained(..., keep_head=True)``.

Differences a converter cannot remove: ``ASTBackbone``'s LayerNorms use eps 1e-6, the HF config's 1e-12 by
default (outputs agree to ~1e-6); ``hidden_act`` must be ``gelu``.
"""
from __future__ import annotations

import json
import re
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
    WeightsUnavailableError,
    check_against,
    frozen_head,
    read_checkpoint,
)
from audio_ticl.models.pos_embed import resample_pos_embed

__all__ = ["convert_hf_ast", "load_hf_ast", "describe_hf_ast", "hf_folder"]

_BASE = "audio_spectrogram_transformer."
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# transformers 4 (the Hub files) -> transformers 5 names, inside "encoder.layer.{i}." -> "layers.{i}."
_V4_RENAMES = {
    "attention.attention.query.": "attention.q_proj.",
    "attention.attention.key.": "attention.k_proj.",
    "attention.attention.value.": "attention.v_proj.",
    "attention.output.dense.": "attention.o_proj.",
    "intermediate.dense.": "mlp.fc1.",
    "output.dense.": "mlp.fc2.",
}
_LAYER_RENAMES = {
    "layernorm_before.": "norm1.",
    "layernorm_after.": "norm2.",
    "attention.o_proj.": "mixer.proj.",
    "mlp.fc1.": "mlp.fc1.",
    "mlp.fc2.": "mlp.fc2.",
}
_V4_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.(.+)$")
_LAYER = re.compile(r"^layers\.(\d+)\.(.+)$")
_HEAD_KEYS = ("classifier.layernorm.weight", "classifier.layernorm.bias", "classifier.dense.weight",
              "classifier.dense.bias")


def _normalise(state: Mapping[str, torch.Tensor]) -> StateDict:
    """Strip the ``audio_spectrogram_transformer.`` prefix and rename transformers-4 layer keys to 5's."""
    out: StateDict = {}
    for key, value in state.items():
        key = key.removeprefix(_BASE)
        match = _V4_LAYER.match(key)
        if match:
            rest = match.group(2)
            for old, new in _V4_RENAMES.items():
                if rest.startswith(old):
                    rest = new + rest[len(old):]
                    break
            key = f"layers.{match.group(1)}.{rest}"
        out[key] = value
    return out


def _v4_name(key: str) -> str:
    """The transformers-4 (Hub file) name of a normalised key, for error messages."""
    match = _LAYER.match(key)
    if not match:
        return key
    rest = match.group(2)
    for old, new in _V4_RENAMES.items():
        if rest.startswith(new):
            rest = old + rest[len(new):]
            break
    return f"encoder.layer.{match.group(1)}.{rest}"


def _source_grid(config: Mapping[str, Any]) -> tuple[int, int]:
    patch = int(config.get("patch_size", 16))
    return (
        (int(config.get("num_mel_bins", 128)) - patch) // int(config.get("frequency_stride", 10)) + 1,
        (int(config.get("max_length", 1024)) - patch) // int(config.get("time_stride", 10)) + 1,
    )


def convert_hf_ast(
    state: Mapping[str, torch.Tensor], config: Mapping[str, Any], target: ASTGeometry | nn.Module
) -> StateDict:
    """HF AST state dict + its ``config.json`` dict -> state dict for ``target`` (classifier dropped)."""
    if config.get("hidden_act", "gelu") != "gelu":
        raise ConversionError(f"HF AST config has hidden_act {config['hidden_act']!r}; ASTBackbone's MLP uses gelu")
    geometry = target if isinstance(target, ASTGeometry) else ASTGeometry.of(target)
    src = _normalise(state)
    used: set[str] = set()

    def take(key: str) -> torch.Tensor:
        if key not in src:
            raise ConversionError(
                f"HF AST checkpoint has no key '{key}' (Hub / transformers-4 name '{_v4_name(key)}'; is it an "
                "ASTModel state dict?)"
            )
        used.add(key)
        return src[key].detach().clone()

    out: StateDict = {"cls_token": take("embeddings.cls_token")}
    dist = take("embeddings.distillation_token")
    if geometry.num_prefix_tokens == 2:
        out["dist_token"] = dist
    out["patch_embed.proj.weight"] = take("embeddings.patch_embeddings.projection.weight")
    out["patch_embed.proj.bias"] = take("embeddings.patch_embeddings.projection.bias")
    pos = take("embeddings.position_embeddings")
    grid = _source_grid(config)
    if pos.shape[1] != 2 + grid[0] * grid[1]:
        raise ConversionError(
            f"HF AST key 'embeddings.position_embeddings' has {pos.shape[1]} rows; config.json's geometry gives "
            f"2 + {grid[0]}x{grid[1]}"
        )
    pos = torch.cat([pos[:, : geometry.num_prefix_tokens], pos[:, 2:]], dim=1)
    out["pos_embed"] = resample_pos_embed(pos, grid, geometry.grid, geometry.num_prefix_tokens)
    depth = 1 + max((int(m.group(1)) for m in map(_LAYER.match, src) if m), default=-1)
    if depth != geometry.depth:
        raise ConversionError(f"HF AST checkpoint has {depth} layers, the target ASTBackbone depth {geometry.depth}")
    for i in range(depth):
        for part in ("weight", "bias"):
            qkv = [take(f"layers.{i}.attention.{n}_proj.{part}") for n in "qkv"]
            out[f"blocks.{i}.mixer.qkv.{part}"] = torch.cat(qkv, dim=0)
            for old, new in _LAYER_RENAMES.items():
                out[f"blocks.{i}.{new}{part}"] = take(f"layers.{i}.{old}{part}")
    out["norm.weight"] = take("layernorm.weight")
    out["norm.bias"] = take("layernorm.bias")
    unexpected = sorted(k for k in src if k not in used and k not in _HEAD_KEYS)
    if unexpected:
        raise ConversionError(f"HF AST checkpoint has keys ASTBackbone has no place for: {unexpected[:8]}")
    if isinstance(target, nn.Module):
        check_against(out, target, "HF AST")
    else:
        _check_shapes(out, geometry)
    return out


def _check_shapes(out: StateDict, geometry: ASTGeometry) -> None:
    dim = geometry.embed_dim
    if out["cls_token"].shape[-1] != dim or out["blocks.0.mlp.fc1.weight"].shape[0] != geometry.mlp_hidden:
        raise ConversionError(
            f"HF AST weights are {out['cls_token'].shape[-1]}-d with MLP {out['blocks.0.mlp.fc1.weight'].shape[0]}, "
            f"the target ASTBackbone {dim}-d with MLP {geometry.mlp_hidden}"
        )


def _download(name: str) -> Path:
    """Download a Hub repository's config and weights (huggingface_hub, as transformers does)."""
    from huggingface_hub import snapshot_download

    return Path(snapshot_download(name, allow_patterns=["config.json", *_WEIGHT_FILES]))


def hf_folder(name: str) -> Path:
    """``name`` as a local model folder, or the folder the Hub download put it in; a clear error offline."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if path.is_absolute() or name.startswith((".", "~")) or name.count("/") > 1:  # a path, not an owner/name
        raise WeightsUnavailableError(f"HF AST model folder '{path}' not found")
    try:
        return _download(name)
    except ImportError:
        raise WeightsUnavailableError(
            f"'hf:{name}' needs huggingface_hub to download: pip install 'audio-ticl[hf]', or download the model "
            f"elsewhere and pass its folder as 'hf:/path/to/folder'"
        ) from None
    except Exception as exc:  # noqa: BLE001 - network failures surface as many exception types
        raise WeightsUnavailableError(
            f"could not download Hugging Face model {name!r} ({type(exc).__name__}: {exc}). Downloading needs "
            f"network access (Hugging Face Hub). On a machine without it, download config.json and "
            f"model.safetensors (or pytorch_model.bin) elsewhere, e.g. `huggingface-cli download {name} "
            f"--local-dir ast_model`, copy the folder here and pass it as 'hf:/path/to/ast_model'"
        ) from exc


def _read(name: str) -> tuple[StateDict, dict[str, Any], Path]:
    folder = hf_folder(name)
    config_file = folder / "config.json"
    if not config_file.is_file():
        raise WeightsUnavailableError(f"HF AST model folder '{folder}' has no config.json")
    config = json.loads(config_file.read_text())
    for weights in _WEIGHT_FILES:
        if (folder / weights).is_file():
            return read_checkpoint(folder / weights), config, folder
    raise WeightsUnavailableError(f"HF AST model folder '{folder}' has none of {list(_WEIGHT_FILES)}")


def load_hf_ast(model_name: str, file: Path | None, target: ASTGeometry | nn.Module) -> StateDict:
    """``hf:<folder or Hub name>``: the model's weights, converted for ``target``."""
    state, config, _ = _read(model_name)
    return convert_hf_ast(state, config, target)


def describe_hf_ast(model_name: str, file: Path | None, keep_head: bool) -> SourceModel:
    """The geometry config.json declares; pooling ``cls_dist`` (HF's pooler); the classifier if asked."""
    state, config, folder = _read(model_name)
    dim = int(config.get("hidden_size", 768))
    kwargs = {
        "embed_dim": dim,
        "depth": int(config.get("num_hidden_layers", 12)),
        "num_heads": int(config.get("num_attention_heads", 12)),
        "mlp_ratio": int(config.get("intermediate_size", 3072)) / dim,
        "patch_size": int(config.get("patch_size", 16)),
        "fstride": int(config.get("frequency_stride", 10)),
        "tstride": int(config.get("time_stride", 10)),
        "input_frames": int(config.get("max_length", 1024)),
        "num_mel_bins": int(config.get("num_mel_bins", 128)),
        "distill_token": True,
        "pooling": "cls_dist",
    }
    head = None
    if keep_head:
        src = _normalise(state)
        if not all(k in src for k in _HEAD_KEYS):
            raise ConversionError(f"keep_head: '{folder}' is an ASTModel without a classifier")
        head = frozen_head(*(src[k] for k in _HEAD_KEYS), eps=float(config.get("layer_norm_eps", 1e-12)))
    return SourceModel(kwargs, head)
