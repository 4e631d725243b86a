"""SSAST's masked spectrogram patch modelling: losses on hand-made cases, masking counts and cluster shapes, the
masked embeddings actually replaced, and one joint step that trains the encoder and both heads."""
from __future__ import annotations

import pytest
import torch

from audio_ticl.models import create_model
from audio_ticl.models.errors import ModelError
from audio_ticl.models.mspm import MSPM, cluster_mask_ids, frame_mask_ids, info_nce, patch_values


def test_info_nce_picks_the_right_patch_and_is_low_only_then():
    targets = torch.eye(4)[None] * 10  # four distinct patches
    right, right_acc = info_nce(targets.clone(), targets)
    wrong, wrong_acc = info_nce(targets.flip(1), targets)  # every prediction names another clip's patch
    assert right_acc == 1.0 and wrong_acc == 0.0
    assert right < 1e-3 and wrong > 9.0


def test_the_generative_loss_is_zero_on_a_perfect_reconstruction():
    x = torch.randn(2, 32, 32)
    values = patch_values(x, (16, 16))
    assert values.shape == (2, 4, 256)
    # patch 1 is frequency row 0, time column 1: frames 16-31 of bins 0-15, frequency-major inside the patch
    torch.testing.assert_close(values[0, 1], x[0, 16:32, 0:16].T.reshape(-1))
    assert torch.nn.functional.mse_loss(values, values.clone()) == 0


@pytest.mark.parametrize("seed", range(8))
def test_cluster_masks_have_the_count_and_are_unions_of_square_neighbourhoods(seed):
    gen = torch.Generator().manual_seed(seed)
    ids = cluster_mask_ids((8, 64), 400, gen)
    assert ids.numel() == 400 == ids.unique().numel() and 0 <= int(ids.min()) and int(ids.max()) < 512
    small = cluster_mask_ids((8, 64), 9, torch.Generator().manual_seed(seed), sizes=(3,))
    rows, cols = small // 64, small % 64
    square = small.numel() == 9 and int(rows.max() - rows.min()) == 2 and int(cols.max() - cols.min()) == 2
    # one 3 x 3 cluster, or a first cluster clipped at the grid's last row or column and then a second one
    assert square or int(rows.max()) == 7 or int(cols.max()) == 63


def test_a_neighbourhood_is_clipped_at_the_grid_and_never_wraps_into_the_next_row():
    from audio_ticl.models.mspm import neighbourhood

    assert neighbourhood(0, 3, (4, 10)) == [0, 1, 2, 10, 11, 12, 20, 21, 22]  # patch 0 can be masked
    assert neighbourhood(8, 3, (4, 10)) == [8, 9, 18, 19, 28, 29]  # SSAST's code would add 10-12, 20-22, 30-32
    assert neighbourhood(39, 5, (4, 10)) == [39]


def test_frame_masks_draw_distinct_frames():
    ids = frame_mask_ids(512, 400, torch.Generator().manual_seed(0))
    assert ids.numel() == 400 == ids.unique().numel()
    with pytest.raises(ModelError, match="cannot mask 600 of 512 frames"):
        frame_mask_ids(512, 600)


def _ast(**kw):
    torch.manual_seed(0)
    return create_model("ast_custom", input_frames=64, num_mel_bins=32, embed_dim=32, depth=2, num_heads=2,
                        fstride=16, tstride=16, pooling="mean", **kw)


def test_a_masked_patch_never_reaches_the_encoder():
    """With patch 0 masked, its values cannot change anything the encoder outputs; unmasked, they do."""
    mspm = MSPM(_ast(), n_mask=3).eval()
    x = torch.randn(1, 64, 32)
    changed = x.clone()
    changed[0, 0:16, 0:16] += 5.0  # patch 0: frames 0-15 of bins 0-15
    with torch.no_grad():
        masked = torch.tensor([[0, 5, 7]])
        torch.testing.assert_close(mspm.masked_outputs(changed, masked), mspm.masked_outputs(x, masked),
                                   rtol=0, atol=0)
        unmasked = torch.tensor([[1, 5, 7]])
        assert not torch.allclose(mspm.masked_outputs(changed, unmasked), mspm.masked_outputs(x, unmasked))


def test_a_joint_step_trains_the_encoder_and_both_heads():
    mspm = MSPM(_ast(), n_mask=4)
    out = mspm(torch.randn(3, 64, 32), torch.Generator().manual_seed(0))
    assert set(out) == {"loss", "nce", "mse", "accuracy"}
    torch.testing.assert_close(out["loss"].detach(), out["nce"] + 10 * out["mse"])
    out["loss"].backward()
    for name in ("heads.mask_embed", "heads.cpredlayer.0.weight", "heads.gpredlayer.2.weight",
                 "backbone.patch_embed.proj.weight", "backbone.blocks.1.mixer.qkv.weight"):
        grad = dict(mspm.named_parameters())[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_mspm_refuses_overlapping_patches_and_impossible_mask_counts():
    with pytest.raises(ModelError, match="non-overlapping patches"):
        MSPM(create_model("ast_custom", input_frames=64, num_mel_bins=32, embed_dim=32, depth=1, num_heads=2), 4)
    with pytest.raises(ModelError, match="n_mask must be between 1 and the 7 patches"):
        MSPM(_ast(), n_mask=8)


def test_frame_models_and_ssamba_pretrain_too():
    frames = create_model("ast_custom", input_frames=64, num_mel_bins=32, embed_dim=32, depth=1, num_heads=2,
                          patch_size=(32, 2), fstride=32, tstride=2)
    mspm = MSPM(frames, n_mask=10)
    assert mspm.frame_model and mspm.heads.gpredlayer[2].out_features == 64
    assert torch.isfinite(mspm(torch.randn(2, 64, 32))["loss"])
    ssamba = create_model("ssamba_custom", input_frames=64, num_mel_bins=32, embed_dim=32, depth=2, fstride=16,
                          tstride=16)
    assert torch.isfinite(MSPM(ssamba, n_mask=4)(torch.randn(2, 64, 32))["loss"])
