"""Masked reconstruction of acoustic frames, the pretraining of the MFCC-gram transformers (Gauy & Finger 2021),
which follow Mockingjay and TERA (Liu et al. 2020, 2021): alter the input, and train the encoder and a small head
to give back the original frames, with an L1 loss on what was altered.

Three alterations, each drawn per clip (TERA's time, frequency and magnitude alterations):

* time: blocks of ``time_block`` consecutive frames, starting at random, until ``time_ratio`` of the frames are
  covered; of the chosen blocks 80 % are zeroed, 10 % replaced by frames from elsewhere in the clip and 10 % left
  as they are (Mockingjay's 80 / 10 / 10);
* frequency: one band of 0 to ``freq_max`` of the coefficients (mel bins), zeroed on every frame;
* magnitude: with probability ``noise_prob``, Gaussian noise of std ``noise_std`` added to the whole clip.

The loss is the L1 error on the frames of the chosen time blocks and the cells of the frequency band (noise alone
does not make a position a target). The head is Mockingjay's prediction head: ``Linear(D, D), GELU, LayerNorm,
Linear(D, values per token)``. Frame models only: a token covers every coefficient of one or a few frames.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from audio_ticl.models.errors import ModelError
from audio_ticl.models.mspm import patch_values

__all__ = ["alter_frames", "masked_l1", "FrameReconstruction"]


def masked_l1(prediction: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the positions where ``weight`` is 1 (none: 0)."""
    return (F.l1_loss(prediction, target, reduction="none") * weight).sum() / weight.sum().clamp(min=1.0)


def alter_frames(x: torch.Tensor, generator: torch.Generator, time_ratio: float = 0.15, time_block: int = 7,
                 freq_max: float = 0.2, noise_prob: float = 0.1, noise_std: float = 0.2
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T, F) -> the altered input and the (B, T, F) bool map of the reconstruction targets."""
    batch, frames, bins = x.shape
    altered = x.clone()
    target = torch.zeros_like(x, dtype=torch.bool)
    for b in range(batch):
        chosen = torch.zeros(frames, dtype=torch.bool)
        goal = max(1, round(time_ratio * frames))
        while int(chosen.sum()) < goal:
            start = int(torch.randint(max(1, frames - time_block + 1), (1,), generator=generator))
            block = slice(start, min(frames, start + time_block))
            chosen[block] = True
            fate = float(torch.rand((), generator=generator))
            if fate < 0.8:
                altered[b, block] = 0.0
            elif fate < 0.9:
                source = int(torch.randint(max(1, frames - time_block + 1), (1,), generator=generator))
                length = block.stop - block.start
                altered[b, block] = x[b, source:source + length]
        target[b, chosen] = True
        width = int(torch.randint(int(freq_max * bins) + 1, (1,), generator=generator))
        if width:
            low = int(torch.randint(bins - width + 1, (1,), generator=generator))
            altered[b, :, low:low + width] = 0.0
            target[b, :, low:low + width] = True
        if float(torch.rand((), generator=generator)) < noise_prob:
            altered[b] += torch.randn(frames, bins, generator=generator) * noise_std
    return altered, target


class FrameReconstruction(nn.Module):
    """A frame backbone and its reconstruction head; ``forward(x, generator)`` returns ``{"loss", "l1"}``."""

    def __init__(self, backbone: nn.Module, time_ratio: float = 0.15, time_block: int = 7, freq_max: float = 0.2,
                 noise_prob: float = 0.1, noise_std: float = 0.2) -> None:
        super().__init__()
        embed = backbone.patch_embed
        pf, pt = embed.patch_shape
        if pf != backbone.num_mel_bins or backbone.patch_grid[0] != 1 or embed.tstride != pt:
            raise ModelError(f"frame reconstruction needs a frame model: patches as tall as the input "
                             f"({backbone.num_mel_bins} bins) and not overlapping in time; got patch {(pf, pt)} "
                             f"at time stride {embed.tstride}")
        self.backbone, self.patch_shape = backbone, (pf, pt)
        self.alteration = {"time_ratio": time_ratio, "time_block": time_block, "freq_max": freq_max,
                           "noise_prob": noise_prob, "noise_std": noise_std}
        dim = backbone.embed_dim
        self.head = nn.Sequential(nn.Linear(dim, dim), nn.GELU(), nn.LayerNorm(dim), nn.Linear(dim, pf * pt))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        altered, where = alter_frames(x, generator, **self.alteration)
        tokens = self.backbone.forward_features(altered)[:, self.backbone.num_prefix_tokens:]
        prediction = self.head(tokens)
        target = patch_values(x, self.patch_shape)
        weight = patch_values(where.float(), self.patch_shape)
        l1 = masked_l1(prediction, target, weight)
        return {"loss": l1, "l1": l1.detach()}
