"""Shared pieces of the weight converters: errors, the target geometry, checkpoint-file reading.

Kept free of timm / transformers imports so that every converter (and the runner) can use them without the
optional dependencies installed.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from audio_ticl.models.errors import ModelError

__all__ = [
    "ConversionError",
    "WeightsUnavailableError",
    "ASTGeometry",
    "SourceModel",
    "read_checkpoint",
    "check_against",
    "frozen_head",
    "split_prefix",
]

StateDict = dict[str, torch.Tensor]


class ConversionError(ModelError):
    """Foreign weights do not fit the target backbone (missing / unexpected key, wrong shape, unknown layout)."""


class WeightsUnavailableError(ConversionError):
    """Pretrained weights could not be obtained (no network, optional package missing, file not found)."""


@dataclass(frozen=True)
class ASTGeometry:
    """What a converter needs to know about the target ``ASTBackbone``, so it can run without building one."""

    embed_dim: int
    depth: int
    num_heads: int
    mlp_hidden: int
    #: the side of a square patch, or (frequency, time) (SSAST frame patches: (128, 2))
    patch_size: int | tuple[int, int]
    #: (F', T') patch grid of the target input
    grid: tuple[int, int]
    #: 1 (CLS) or 2 (CLS + distillation token)
    num_prefix_tokens: int

    @property
    def patch_shape(self) -> tuple[int, int]:
        """(frequency, time) extent of a patch."""
        size = self.patch_size
        return (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))

    @classmethod
    def of(cls, backbone: nn.Module) -> ASTGeometry:
        """Read the geometry of a built ``ASTBackbone``."""
        block = backbone.blocks[0]
        return cls(
            embed_dim=int(backbone.embed_dim),
            depth=len(backbone.blocks),
            num_heads=int(block.mixer.num_heads),
            mlp_hidden=int(block.mlp.fc1.out_features),
            patch_size=tuple(backbone.patch_embed.patch_shape),
            grid=tuple(backbone.patch_grid),
            num_prefix_tokens=int(backbone.num_prefix_tokens),
        )


@dataclass
class SourceModel:
    """What a checkpoint says about the network it was trained as (``models.from_pretrained`` builds that).

    ``model_kwargs``: ``ASTBackbone`` arguments (width, depth, heads, patch shape, strides, prefix tokens,
    pooling, input size where the source records it); ``head``: its frozen classifier, when asked and present.
    """

    model_kwargs: dict[str, Any]
    head: nn.Module | None = None


def frozen_head(
    norm_weight: torch.Tensor, norm_bias: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5
) -> nn.Sequential:
    """AST's classifier, ``Sequential(LayerNorm(D), Linear(D, C))``, with the given weights, frozen, in eval mode."""
    dim, classes = weight.shape[1], weight.shape[0]
    head = nn.Sequential(nn.LayerNorm(dim, eps=eps), nn.Linear(dim, classes))
    with torch.no_grad():
        for param, value in zip(head.parameters(), (norm_weight, norm_bias, weight, bias)):
            if tuple(param.shape) != tuple(value.shape):
                raise ConversionError(
                    f"classifier tensor of shape {tuple(value.shape)} does not fit {tuple(param.shape)}"
                )
            param.copy_(value)
    return head.requires_grad_(False).eval()


def split_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> StateDict:
    """The entries of ``state`` under ``prefix``, with the prefix removed."""
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


_WRAPPER_KEYS = ("state_dict", "model")  # {'model': ...} is DeiT's release format, {'state_dict': ...} Lightning's
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DistributedDataParallel, torch.compile


def read_checkpoint(path: str | Path) -> StateDict:
    """Load a state dict from ``.pth`` / ``.pt`` / ``.bin`` (torch) or ``.safetensors``; unwrap common containers.

    ``weights_only`` loading: a checkpoint file never gets to run code on this machine.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise WeightsUnavailableError(f"checkpoint file '{path}' not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            obj: Any = load_file(str(path), device="cpu")
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except ImportError:
        raise WeightsUnavailableError(f"reading '{path}' needs safetensors: pip install safetensors") from None
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the same user error
        raise ConversionError(f"cannot read checkpoint file '{path}': {type(exc).__name__}: {exc}") from exc
    for key in _WRAPPER_KEYS:
        if isinstance(obj, Mapping) and isinstance(obj.get(key), Mapping):
            obj = obj[key]
            break
    if not isinstance(obj, Mapping) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConversionError(f"checkpoint file '{path}' does not hold a state dict (name -> tensor)")
    state: StateDict = {}
    for name, value in obj.items():
        for prefix in _WRAPPER_PREFIXES:
            name = name.removeprefix(prefix)
        state[name] = value
    return state


def check_against(state: Mapping[str, torch.Tensor], target: nn.Module, source: str) -> None:
    """Raise ``ConversionError`` naming every key that ``target.load_state_dict(state)`` would reject.

    PET modules (``.adapters.``) already injected into the target are not expected in a backbone checkpoint.
    """
    expected = {k: v.shape for k, v in target.state_dict().items() if ".adapters." not in k}
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [f"{k}: {tuple(state[k].shape)} vs target {tuple(expected[k])}"
             for k in state if k in expected and state[k].shape != expected[k]]
    problems = []
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    if wrong:
        problems.append(f"shape mismatches [{'; '.join(wrong)}]")
    if problems:
        raise ConversionError(f"converted {source} weights do not fit {type(target).__name__}: " + ", ".join(problems))
