"""A backbone (and its MSPM heads) written in SSAST's or SSAMBA's own checkpoint layout, so that what this suite
pretrains loads through ``ssast:<file>`` / ``ssamba:<file>`` here (and, for the sizes those projects build,
through their own code).

The layouts are the inverse of ``models.convert.ssast`` (timm DeiT names under ``module.v.``: ``blocks.{i}.attn.*``
for this suite's ``blocks.{i}.mixer.*``) and ``models.convert.ssamba`` (Vision Mamba names: ``layers.{i}.*`` and
``norm_f.*``), plus the pretraining keys both projects save: ``module.mask_embed``, ``module.cpredlayer.*``,
``module.gpredlayer.*`` and the pretraining input ``module.p_input_fdim`` / ``module.p_input_tdim``.
"""
from __future__ import annotations

import re

import torch
from torch import nn

from audio_ticl.models.errors import ModelError

__all__ = ["pretraining_state_dict", "source_layout"]

_MAMBA_BLOCK = re.compile(r"^blocks\.(\d+)\.(.+)$")
_ATTENTION_MIXER = re.compile(r"^blocks\.(\d+)\.mixer\.(.+)$")


def source_layout(backbone: nn.Module) -> str:
    """``"ssamba"`` for Mamba backbones, ``"ssast"`` for the transformers."""
    return "ssamba" if getattr(backbone, "pet_family", "transformer") == "mamba" else "ssast"


def _backbone_key(key: str, layout: str) -> str:
    if layout == "ssamba":
        match = _MAMBA_BLOCK.match(key)
        if match:
            return f"layers.{match.group(1)}.{match.group(2)}"
        return "norm_f." + key.removeprefix("norm.") if key.startswith("norm.") else key
    match = _ATTENTION_MIXER.match(key)
    return f"blocks.{match.group(1)}.attn.{match.group(2)}" if match else key


def pretraining_state_dict(backbone: nn.Module, heads: nn.Module | None = None) -> dict[str, torch.Tensor]:
    """``backbone``'s weights (and the MSPM ``heads``: ``mask_embed``, ``cpredlayer``, ``gpredlayer``) as the
    ``DataParallel`` state dict SSAST's / SSAMBA's pretraining saves; PET modules are not part of a backbone
    checkpoint and are refused."""
    own = backbone.state_dict()
    pet = [k for k in own if ".pet_" in k]
    if pet:
        raise ModelError(f"the backbone carries PET modules ({pet[0]} ...): export the backbone without them")
    if getattr(backbone, "mixer_name", "gsa") not in ("gsa", "gsa_materialized", "fta", "mamba"):
        raise ModelError(f"no source layout for mixer {backbone.mixer_name!r}")
    layout = source_layout(backbone)
    out = {f"module.v.{_backbone_key(k, layout)}": v.detach().cpu().clone() for k, v in own.items()}
    if heads is not None:
        for key, value in heads.state_dict().items():
            out[f"module.{key}"] = value.detach().cpu().clone()
    out["module.p_input_fdim"] = torch.tensor(int(backbone.num_mel_bins))
    out["module.p_input_tdim"] = torch.tensor(int(backbone.input_frames))
    return out
