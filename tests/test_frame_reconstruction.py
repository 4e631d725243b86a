"""The MFCC-gram / TERA masked reconstruction: the alterations cover what they say, the L1 loss is zero on a
perfect reconstruction of the targets only, and a step trains the encoder and the head."""
from __future__ import annotations

import pytest
import torch

from audio_ticl.models import create_model
from audio_ticl.models.errors import ModelError
from audio_ticl.models.frame_reconstruction import FrameReconstruction, alter_frames


def test_the_alterations_cover_the_declared_shares():
    x = torch.randn(4, 100, 40) + 3.0  # no value is 0 by chance
    altered, target = alter_frames(x, torch.Generator().manual_seed(0), noise_prob=0.0)
    for b in range(4):
        frames = target[b].all(dim=1)  # frames chosen in time are targets on every coefficient
        assert 15 <= int(frames.sum()) <= 15 + 6  # 15 % of 100 frames, blocks of 7 may overshoot by < 7
        band = target[b].all(dim=0)
        assert int(band.sum()) <= 8  # at most 20 % of 40 coefficients
        untouched = ~target[b]
        torch.testing.assert_close(altered[b][untouched], x[b][untouched])  # no noise: the rest is the input
        assert (altered[b][:, band] == 0).all()


def _frame_model(**kw):
    torch.manual_seed(0)
    return create_model("mfcc_gram", input_frames=50, num_mel_bins=20, patch_size=(20, 1), fstride=20, tstride=1,
                        depth=1, embed_dim=32, num_heads=4, **kw)


def test_a_step_trains_the_encoder_and_the_head():
    model = FrameReconstruction(_frame_model())
    out = model(torch.randn(2, 50, 20), torch.Generator().manual_seed(1))
    out["loss"].backward()
    assert model.head[3].weight.grad.abs().sum() > 0
    assert model.backbone.blocks[0].mixer.qkv.weight.grad.abs().sum() > 0


def test_the_l1_loss_reads_the_targets_only():
    from audio_ticl.models.frame_reconstruction import masked_l1

    target = torch.randn(2, 5, 3)
    weight = torch.zeros(2, 5, 3)
    weight[:, 1:3] = 1.0
    assert masked_l1(target, target, weight) == 0
    off_target = target + (1 - weight) * 7.0  # wrong everywhere except on the targets
    assert masked_l1(off_target, target, weight) == 0
    assert masked_l1(target + weight * 0.5, target, weight) == pytest.approx(0.5)


def test_only_frame_models_reconstruct_frames():
    patches = create_model("ast_custom", input_frames=64, num_mel_bins=32, embed_dim=32, depth=1, num_heads=2,
                           fstride=16, tstride=16)
    with pytest.raises(ModelError, match="frame reconstruction needs a frame model"):
        FrameReconstruction(patches)
