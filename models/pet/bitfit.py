"""BitFit, per task: a task-owned offset on every bias of the backbone, the frozen biases shared and untouched.

Ben Zaken et al. 2022, "BitFit: Simple Parameter-efficient Fine-tuning for Transformer-based Masked
Language-models" (ACL), Section 3: fine-tune only the bias terms (and the classifier). Training the backbone's
own biases would change them for every task; in a task-incremental model each task gets its own biases instead,
written as ``b_frozen + delta_t``: the per-task module is a zero-initialised ``delta_t``, added in ``parallel``
to its target's output (``Linear(x) + delta`` is exactly a Linear with bias ``b + delta``; the same for LayerNorm
and, broadcast over the patch grid, for the patch-embedding Conv2d). A fresh task is therefore exactly the frozen
model, and a task's biases are ``b + delta_t`` with ``b`` stored once.

Targets: the patch-embedding conv, in every block LN1, qkv, proj, LN2, fc1, fc2, and the final LayerNorm; a
target built without a bias (``qkv_bias=False``) gets one, starting at zero. On SSAMBA (``family_targets``): the
patch conv, every layer's norm, both directions' depthwise conv1d and dt_proj (whose bias sits inside the step
size's softplus), and the final norm, which SSAMBA applies twice, so its offset is added at both calls.
"""
from __future__ import annotations

import torch
from torch import nn

from audio_ticl.models.context import ForwardContext
from audio_ticl.models.errors import ModelError
from audio_ticl.models.pet.base import PETMethod, register_pet

__all__ = ["BiasDelta", "BitFitMethod"]


class BiasDelta(nn.Module):
    """A per-task bias offset: returns ``delta`` shaped to broadcast over its target's output channels."""

    def __init__(self, channels: int, spatial_dims: int = 0) -> None:
        super().__init__()
        self.spatial_dims = spatial_dims
        self.delta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        return self.delta.reshape(-1, *(1,) * self.spatial_dims)

    def extra_repr(self) -> str:
        return f"channels={self.delta.numel()}"


@register_pet
class BitFitMethod(PETMethod):
    """Per-task bias offsets on every bias of the backbone (Ben Zaken et al. 2022, Section 3); no options.

    Parameters per task (D width, M MLP width, L blocks): ``2 D + L (7 D + M)`` (patch conv D, final LN D; per
    block LN1 D, qkv 3D, proj D, LN2 D, fc1 M, fc2 D); ViT-B (D = 768, M = 3072, L = 12): 102 912.
    """

    name = "bitfit"
    targets = (
        "patch_embed.proj",
        "blocks.*.norm1",
        "blocks.*.mixer.qkv",
        "blocks.*.mixer.proj",
        "blocks.*.norm2",
        "blocks.*.mlp.fc1",
        "blocks.*.mlp.fc2",
        "norm",
    )
    #: SSAMBA's biases: patch conv, each layer's LayerNorm, both directions' depthwise conv and dt_proj (the bias
    #: inside the softplus of the step size), the final norm; in_proj, x_proj and out_proj have none
    family_targets = {
        "mamba": (
            "patch_embed.proj",
            "blocks.*.norm",
            "blocks.*.mixer.conv1d",
            "blocks.*.mixer.conv1d_b",
            "blocks.*.mixer.dt_proj",
            "blocks.*.mixer.dt_proj_b",
            "norm",
        ),
    }
    placement = "parallel"

    def create_module(self, backbone: nn.Module, target_name: str, target: nn.Module, task_id: int) -> nn.Module:
        if isinstance(target, nn.Linear):
            return BiasDelta(target.out_features)
        if isinstance(target, (nn.LayerNorm, nn.RMSNorm)):
            return BiasDelta(int(target.normalized_shape[-1]))
        if isinstance(target, nn.Conv2d):
            return BiasDelta(target.out_channels, spatial_dims=2)
        if isinstance(target, nn.Conv1d):
            return BiasDelta(target.out_channels, spatial_dims=1)
        raise ModelError(f"bitfit: cannot add a bias offset to {target_name} ({type(target).__name__})")
