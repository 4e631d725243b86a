"""Registry-driven tests: every registered model, token mixer and PET method has a parametrized test here, and the
registries must equal the covered sets, so a new entry without a test fails."""
from __future__ import annotations

import pytest
import torch
from einops import rearrange

from audio_ticl.models import MIXERS, PET_METHODS, Backbone, create_mixer, create_model, create_pet, list_models
from audio_ticl.models.attention import fta_dense_reference, global_attention

#: model -> the overrides that make a test-size instance
MODELS = {
    "ast_tiny": {"depth": 1},
    "ast_small": {"depth": 1},
    "ast_base": {"depth": 1},
    "ast_custom": {"embed_dim": 32, "depth": 2, "num_heads": 4},
    "ssamba_tiny": {"depth": 2},
    "ssamba_small": {"depth": 2},
    "ssamba_base": {"depth": 2},
    "ssamba_custom": {"embed_dim": 32, "depth": 2},
    "mfcc_gram": {"depth": 1},
}
#: mixer -> its ground truth on (B, H, L, hd) q, k, v
MIXER_REFERENCES = {
    "gsa": lambda q, k, v, grid, prefix: global_attention(q, k, v),
    "fta": fta_dense_reference,
    "gsa_materialized": lambda q, k, v, grid, prefix: global_attention(q, k, v),
}
#: PET method -> options for a test-size instance
PET_OPTIONS = {
    "aat": {},
    "adaptformer": {"bottleneck": 4},
    "bitfit": {},
    "conformer": {"reduction": None, "bottleneck": 4, "kernel_size": 3},
    "convpass": {"dim_first_task": 4, "dim": 4},
    "houlsby": {"bottleneck": 4},
    "lora": {"rank": 2},
    "pfeiffer": {"bottleneck": 4, "reduction": None},
    "vpt_deep": {"length": 2},
    "vpt_shallow": {"length": 2},
}


def test_every_registered_model_mixer_and_pet_method_is_covered():
    assert set(list_models()) == set(MODELS)
    assert set(MIXERS) == set(MIXER_REFERENCES)
    assert set(PET_METHODS) == set(PET_OPTIONS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_follows_the_backbone_protocol(name):
    torch.manual_seed(0)
    model = create_model(name, input_frames=32, num_mel_bins=32, fstride=16, tstride=16, **MODELS[name]).eval()
    assert isinstance(model, Backbone)
    x = torch.randn(2, 32, 32)
    with torch.no_grad():
        tokens = model.forward_features(x)
        pooled = model(x)
    grid = model.patch_grid
    assert tokens.shape == (2, model.num_prefix_tokens + grid[0] * grid[1], model.num_features)
    assert pooled.shape == (2, model.num_features) and torch.equal(pooled, model.forward_head(tokens))


@pytest.mark.parametrize("name", sorted(MIXER_REFERENCES))
def test_mixer_matches_its_reference(name):
    torch.manual_seed(0)
    mixer = create_mixer(name, 24, 3).double()
    grid, prefix = (3, 4), 1
    x = torch.randn(2, prefix + 12, 24, dtype=torch.float64, requires_grad=True)
    q, k, v = rearrange(mixer.qkv(x), "b l (s h d) -> s b h l d", s=3, h=3).unbind(0)
    ref = mixer.proj(rearrange(MIXER_REFERENCES[name](q, k, v, grid, prefix), "b h l d -> b l (h d)"))
    out = mixer(x, grid, prefix)
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=0)
    grad = torch.randn_like(out)
    torch.testing.assert_close(torch.autograd.grad(out, x, grad)[0], torch.autograd.grad(ref, x, grad)[0])


@pytest.mark.parametrize("name", sorted(MIXER_REFERENCES))
def test_mixer_forward_is_qkv_attend_proj(name):
    """``attend`` is the op the mixer's forward runs (what ``ticl efficiency --scope op`` times), to the bit."""
    torch.manual_seed(0)
    mixer = create_mixer(name, 24, 3)
    grid, prefix = (3, 4), 1
    x = torch.randn(2, prefix + 12, 24, requires_grad=True)
    out = mixer(x, grid, prefix)
    q, k, v = rearrange(mixer.qkv(x), "b l (s h d) -> s b h l d", s=3, h=3).unbind(0)
    ref = mixer.proj(rearrange(mixer.attend(q, k, v, grid, prefix), "b h l d -> b l (h d)"))
    assert torch.equal(out, ref)
    grad = torch.randn_like(out)
    assert torch.equal(torch.autograd.grad(out, x, grad)[0], torch.autograd.grad(ref, x, grad)[0])


@pytest.mark.parametrize("name", sorted(PET_OPTIONS))
def test_pet_method_contract(name):
    torch.manual_seed(0)
    backbone = create_model("ast_custom", input_frames=64, num_mel_bins=32, embed_dim=32, depth=2, num_heads=4).eval()
    x = torch.randn(2, 64, 32)
    plain = backbone(x)
    keys = list(backbone.state_dict())
    method = create_pet(name, **PET_OPTIONS[name])
    for task in (0, 1):
        new = method.inject(backbone, task)
        owned = [p for m in method.task_modules(backbone, task) for p in m.parameters()]
        assert new and {id(p) for p in new} == {id(p) for p in owned} and len(new) == len(owned)
        assert all(p.requires_grad for p in new)
        with torch.no_grad():
            for p in new:
                p.normal_(0.0, 0.1)  # whatever its init, a trained module changes the features
    assert not torch.allclose(backbone(x, task_id=0), backbone(x, task_id=1))
    assert torch.equal(backbone(x), plain)  # no task: the plain backbone
    for task in (0, 1):
        method.remove(backbone, task)
    assert torch.equal(backbone(x, task_id=0), plain) and list(backbone.state_dict()) == keys
