"""SSAMBA's backbone (Shams et al. 2024): AST's patch embedding and prefix, then bidirectional Mamba layers instead
of transformer blocks; attention-free.

It is the model SSAMBA's fine-tuning code runs (``AMBAModel``, task ``ft_avgtok``, over Vision Mamba's layers;
Zhu et al. 2024), reproduced so that its checkpoints give the same outputs here:

* 16 x 16 patches at strides (fstride, tstride) over a (B, T, 128) fbank, frequency-major; one CLS token at
  position 0; a learned position embedding (all as ``ASTBackbone``, which this class extends);
* 24 layers, each Add -> Norm -> Mixer with LayerNorm (eps 1e-5; RMSNorm optional) and a bidirectional Mamba
  mixer (``models.mamba.BiMambaMixer``, "bimamba v2", the two directions averaged);
* ``paired=True`` (SSAMBA's ``if_bidirectional``): the layers run in pairs, the second of a pair on the flipped
  sequence, and the pair's outputs and residuals are SUMMED, so the residual stream doubles at every pair: with
  s = residual + hidden, a pair maps s to 2 s + m_a(norm_a(s)) + flip(m_b(norm_b(flip(s)))). The second term is
  computed as ``m_b(norm_b(s), reverse=True)`` (norms act per token, and a reversed bidirectional mixer is the
  flipped one), so the tokens never leave their order and PET modules on the mixers see the patch grid as it is.
  ``paired=False`` is the plain pre-norm stack s + m(norm(s)).
* the final ``norm`` (Vim's ``norm_f``) is applied twice, as SSAMBA's forward does (``double_final_norm``);
* pooling: the mean of the patch tokens, CLS excluded.

Drop path: SSAMBA applies layer i's rate to layer i-1's output as it enters the residual; here each layer's rate
applies to its own output. Evaluation is unaffected. Module names follow this suite's protocol (``blocks.{i}.norm``,
``blocks.{i}.mixer``, ``norm``); ``models.convert.ssamba`` maps SSAMBA's ``module.v.layers.{i}`` / ``norm_f`` keys.
"""
from __future__ import annotations

from typing import Any, Literal

import torch
from torch import nn

from audio_ticl.models.ast import ASTBackbone
from audio_ticl.models.errors import ModelError
from audio_ticl.models.layers import DropPath
from audio_ticl.models.mamba import BiMambaMixer
from audio_ticl.models.registry import register_model

__all__ = ["MambaBlock", "SSAMBABackbone", "ssamba_tiny", "ssamba_small", "ssamba_base", "ssamba_custom"]

NormKind = Literal["layer", "rms"]
NORM_EPS = 1e-5  # Vim's norm_epsilon


def _norm(kind: NormKind, dim: int) -> nn.Module:
    return nn.RMSNorm(dim, eps=NORM_EPS) if kind == "rms" else nn.LayerNorm(dim, eps=NORM_EPS)


class MambaBlock(nn.Module):
    """One Vim layer: ``mixer(norm(s))`` is its branch; ``forward`` adds it to the stream (pre-norm residual)."""

    def __init__(self, dim: int, norm: NormKind = "layer", drop_path: float = 0.0,
                 mixer_kwargs: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.norm = _norm(norm, dim)
        self.mixer = BiMambaMixer(dim, **(mixer_kwargs or {}))
        self.drop_path = DropPath(drop_path)

    def branch(self, x: torch.Tensor, grid: tuple[int, int], num_prefix: int, reverse: bool = False) -> torch.Tensor:
        """``drop_path(mixer(norm(x)))``; ``reverse``: as if on the flipped sequence, flipped back (the second
        layer of a pair), computed in the tokens' own order."""
        return self.drop_path(self.mixer(self.norm(x), grid, num_prefix, reverse=reverse))

    def forward(self, x: torch.Tensor, grid: tuple[int, int], num_prefix: int) -> torch.Tensor:
        return x + self.branch(x, grid, num_prefix)


class SSAMBABackbone(ASTBackbone):
    """SSAMBA's encoder without a head (``models.protocol.Backbone``); see the module docstring."""

    #: the PET methods' targets on Mamba layers (``PETMethod.family_targets``)
    pet_family = "mamba"

    def __init__(
        self,
        input_frames: int,
        num_mel_bins: int = 128,
        patch_size: int | tuple[int, int] = 16,
        fstride: int = 10,
        tstride: int = 10,
        embed_dim: int = 192,
        depth: int = 24,
        norm: NormKind = "layer",
        paired: bool = True,
        double_final_norm: bool = True,
        pooling: Literal["cls", "mean"] = "mean",
        drop_path: float = 0.0,
        mixer_kwargs: dict[str, Any] | None = None,
        num_heads: int | None = None,
        mixer: str = "mamba",
        distill_token: bool = False,
    ) -> None:
        if paired and depth % 2:
            raise ModelError(f"paired layers need an even depth, got {depth}")
        del num_heads  # accepted for the size registry's shared options; Mamba layers have no heads
        if distill_token:
            raise ModelError("SSAMBA has one prefix token, CLS: distill_token must be False")
        if mixer != "mamba":
            raise ModelError(f"SSAMBA's layers are Mamba layers: mixer must be 'mamba', got {mixer!r}")
        super().__init__(input_frames, num_mel_bins, patch_size, fstride, tstride, embed_dim, depth=0, num_heads=1,
                         pooling=pooling)
        self.mixer_name = "mamba"
        self.paired, self.double_final_norm = paired, double_final_norm
        rates = [drop_path * i / (depth - 1) for i in range(depth)] if depth > 1 else [drop_path] * depth
        self.blocks = nn.ModuleList(MambaBlock(embed_dim, norm, rate, mixer_kwargs) for rate in rates)
        self.norm = _norm(norm, embed_dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Position embedding and CLS truncated normal (std .02); Linear and conv weights PyTorch's defaults with
        zero biases (Vim's ``_init_weights``); out_proj rescaled by 1/sqrt(depth) (Mamba's prenorm-residual rule);
        the SSM parameters Mamba's (``BiMambaMixer.reset_ssm_parameters``)."""
        for p in (self.pos_embed, self.cls_token):
            nn.init.trunc_normal_(p, std=0.02)
        depth = max(len(self.blocks), 1)
        for block in self.blocks:
            mixer = block.mixer
            for module in mixer.modules():
                if isinstance(module, (nn.Linear, nn.Conv1d)):
                    module.reset_parameters()
                    if module.bias is not None:
                        nn.init.zeros_(module.bias)
            with torch.no_grad():
                mixer.out_proj.weight.div_(depth**0.5)
            mixer.reset_ssm_parameters()
            block.norm.reset_parameters()
        self.norm.reset_parameters()

    def forward_blocks(self, x: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
        prefix = self.num_prefix_tokens
        if not self.paired:
            for block in self.blocks:
                x = block(x, grid, prefix)
        else:
            for first, second in zip(self.blocks[0::2], self.blocks[1::2]):
                x = 2 * x + first.branch(x, grid, prefix) + second.branch(x, grid, prefix, reverse=True)
        x = self.norm(x)
        return self.norm(x) if self.double_final_norm else x


def _ssamba(defaults: dict[str, Any], input_frames: int, overrides: dict[str, Any]) -> SSAMBABackbone:
    return SSAMBABackbone(input_frames=input_frames, **{**defaults, **overrides})


@register_model
def ssamba_tiny(*, input_frames: int, **kwargs: Any) -> SSAMBABackbone:
    """SSAMBA-Tiny: 192-d, 24 Mamba layers (~7 M parameters with SSAMBA's heads)."""
    return _ssamba({"embed_dim": 192}, input_frames, kwargs)


@register_model
def ssamba_small(*, input_frames: int, **kwargs: Any) -> SSAMBABackbone:
    """SSAMBA-Small: 384-d, 24 Mamba layers (~26 M)."""
    return _ssamba({"embed_dim": 384}, input_frames, kwargs)


@register_model
def ssamba_base(*, input_frames: int, **kwargs: Any) -> SSAMBABackbone:
    """SSAMBA-Base: 768-d, 24 Mamba layers (~97 M)."""
    return _ssamba({"embed_dim": 768}, input_frames, kwargs)


@register_model
def ssamba_custom(*, input_frames: int, embed_dim: int, depth: int, **kwargs: Any) -> SSAMBABackbone:
    """SSAMBA with explicit width and depth (tiny test models, ablations)."""
    return SSAMBABackbone(input_frames=input_frames, embed_dim=embed_dim, depth=depth, **kwargs)


for _entrypoint in (ssamba_tiny, ssamba_small, ssamba_base, ssamba_custom):
    _entrypoint.mixers = ("mamba",)  # read by models.registry.model_mixers: the config checks a method's mixer
    _entrypoint.pet_family = SSAMBABackbone.pet_family  # read by models.registry.model_family: and its PET method
