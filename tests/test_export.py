"""What this suite pretrains is written in SSAST's / SSAMBA's own layout and loads back through the ``ssast:`` and
``ssamba:`` converters with the same outputs (random weights; the heads kept under their SSAST names)."""
from __future__ import annotations

import pytest
import torch

from audio_ticl.models import create_model, create_pet, init_backbone
from audio_ticl.models.convert.export import pretraining_state_dict
from audio_ticl.models.errors import ModelError
from audio_ticl.models.mspm import MSPM


def _perturbed(model):
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    return model


@pytest.mark.parametrize("kind", ["patch", "frame"])
def test_an_ast_checkpoint_round_trips_through_the_ssast_loader(tmp_path, kind):
    torch.manual_seed(0)
    geometry = {"patch": {"fstride": 16, "tstride": 16}, "frame": {"patch_size": (32, 2), "fstride": 32,
                                                                  "tstride": 2}}[kind]
    source = _perturbed(create_model("ast_custom", input_frames=64, num_mel_bins=32, embed_dim=32, depth=2,
                                     num_heads=2, pooling="mean", **geometry)).eval()
    mspm = MSPM(source, n_mask=4)
    state = pretraining_state_dict(source, mspm.heads)
    assert "module.v.blocks.1.attn.qkv.weight" in state and "module.cpredlayer.2.weight" in state
    assert int(state["module.p_input_tdim"]) == 64 and "module.mask_embed" in state
    path = tmp_path / "ssast.pth"
    torch.save(state, path)
    target = create_model("ast_custom", input_frames=64, num_mel_bins=32, embed_dim=32, depth=2, num_heads=2,
                          pooling="mean", **geometry).eval()
    init_backbone(target, f"ssast:{path}")
    x = torch.randn(2, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x))


def test_an_ssamba_checkpoint_round_trips_through_the_ssamba_loader(tmp_path):
    torch.manual_seed(0)
    kwargs = {"input_frames": 64, "num_mel_bins": 32, "embed_dim": 32, "depth": 2, "fstride": 16, "tstride": 16}
    source = _perturbed(create_model("ssamba_custom", **kwargs)).eval()
    state = pretraining_state_dict(source, MSPM(source, n_mask=4).heads)
    assert "module.v.layers.1.mixer.in_proj.weight" in state and "module.v.norm_f.weight" in state
    path = tmp_path / "amba.pth"
    torch.save(state, path)
    target = create_model("ssamba_custom", **kwargs).eval()
    init_backbone(target, f"ssamba:{path}")
    x = torch.randn(2, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(target(x), source(x))


def test_a_backbone_with_pet_modules_is_refused():
    model = create_model("ast_custom", input_frames=64, num_mel_bins=32, embed_dim=32, depth=1, num_heads=2)
    create_pet("lora").inject(model, 0)
    with pytest.raises(ModelError, match="carries PET modules"):
        pretraining_state_dict(model)
