"""models/: patch geometry, AST backbone, registry, ConvPass adapters, position-embedding resampling, TI-CL model."""
from __future__ import annotations

import pytest
import torch

from audio_ticl.models import (
    MIXERS,
    PAD_LOGIT,
    PET_METHODS,
    ASTBackbone,
    TaskIncrementalModel,
    create_model,
    create_pet,
    list_models,
)
from audio_ticl.models.context import ForwardContext
from audio_ticl.models.errors import ModelError
from audio_ticl.models.layers import PatchEmbed, QuickGELU
from audio_ticl.models.pet import ConvPass, ConvPassMethod
from audio_ticl.models.pos_embed import resample_pos_embed

D_BASE = 768


def tiny_backbone(frames: int = 64, mixer: str = "gsa", **kwargs) -> ASTBackbone:
    """A 2-block, 32-d AST: the real architecture at test size."""
    torch.manual_seed(0)
    kwargs = {"embed_dim": 32, "depth": 2, "num_heads": 4, "num_mel_bins": 32, **kwargs}
    return create_model("ast_custom", input_frames=frames, mixer=mixer, **kwargs)


def fbank(batch: int, frames: int = 64, mels: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, frames, mels, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------------ geometry
@pytest.mark.parametrize("frames,tokens,grid", [(128, 144, (12, 12)), (501, 588, (12, 49)), (512, 600, (12, 50)),
                                                (1024, 1212, (12, 101))])
def test_ast_grid_sizes(frames, tokens, grid):
    assert PatchEmbed(8).grid_size(frames, 128) == grid
    backbone = ASTBackbone(frames, embed_dim=8, depth=1, num_heads=2)
    assert backbone.patch_grid == grid and backbone.num_patches == tokens
    assert backbone.pos_embed.shape == (1, 1 + tokens, 8)


def test_patch_tokens_are_frequency_major():
    embed = PatchEmbed(1, fstride=16, tstride=16)  # non-overlapping patches: one input pixel -> one token
    torch.nn.init.ones_(embed.proj.weight)
    torch.nn.init.zeros_(embed.proj.bias)
    x = torch.zeros(1, 64, 48)  # 64 frames x 48 mel bins -> grid (F'=3, T'=4)
    x[0, 16 * 3 + 5, 16 * 2 + 7] = 1.0  # frame in time patch 3, mel bin in frequency patch 2
    tokens = embed(x)
    assert embed.grid_size(64, 48) == (3, 4) and tokens.shape == (1, 12, 1)
    assert torch.nonzero(tokens[0, :, 0]).flatten().tolist() == [2 * 4 + 3]


def test_quick_gelu():
    x = torch.linspace(-3, 3, 7)
    torch.testing.assert_close(QuickGELU()(x), x * torch.sigmoid(1.702 * x))


# ------------------------------------------------------------------------------------------------ backbone
def test_registry_sizes_and_parameter_counts():
    assert {"ast_tiny", "ast_small", "ast_base", "ast_custom"} <= set(list_models())
    expected = {"ast_tiny": (192, 6e6), "ast_small": (384, 23e6), "ast_base": (768, 87e6)}
    for name, (dim, params) in expected.items():
        with torch.device("meta"):  # shapes only: no memory, no init cost
            model = create_model(name, input_frames=128)
        assert model.num_features == dim and len(model.blocks) == 12
        n = sum(p.numel() for p in model.parameters())
        assert abs(n - params) / params < 0.1, (name, n)
        del model


def test_create_model_errors_and_overrides():
    with pytest.raises(KeyError, match="unknown model 'ast_huge'"):
        create_model("ast_huge", input_frames=128)
    model = create_model("ast_tiny", input_frames=128, depth=2, embed_dim=64, num_heads=2, mixer="fta")
    assert len(model.blocks) == 2 and model.num_features == 64 and model.mixer_name == "fta"


def test_wrong_input_shape_is_a_clear_error():
    backbone = tiny_backbone(frames=64)
    with pytest.raises(ValueError, match=r"expects input \(batch, 64 frames, 32 mel bins\), got shape \(2, 60, 32\)"):
        backbone.forward_features(torch.zeros(2, 60, 32))
    with pytest.raises(ModelError, match=r"got shape \(64, 32\)"):
        backbone(torch.zeros(64, 32))


@pytest.mark.parametrize("mixer", sorted(MIXERS))
def test_forward_backward_and_pooling(mixer):
    backbone = tiny_backbone(mixer=mixer, distill_token=True, pooling="cls_dist")
    assert backbone.num_prefix_tokens == 2
    x = fbank(3)
    tokens = backbone.forward_features(x)
    assert tokens.shape == (3, 2 + backbone.num_patches, 32)
    pooled = backbone(x)
    torch.testing.assert_close(pooled, (tokens[:, 0] + tokens[:, 1]) / 2)
    assert torch.equal(backbone.forward_head(tokens, pre_logits=False), pooled)  # no classifier in a backbone
    pooled.sum().backward()
    assert all(p.grad is not None for p in backbone.parameters())
    backbone.pooling = "mean"
    torch.testing.assert_close(backbone(x), tokens[:, 2:].mean(1))
    with pytest.raises(ModelError, match="cls_dist"):
        tiny_backbone(pooling="cls_dist")


def test_fta_backbone_differs_from_gsa_only_in_mixing():
    gsa, fta = tiny_backbone(mixer="gsa"), tiny_backbone(mixer="fta")
    fta.load_state_dict(gsa.state_dict())  # identical parameter names: weights are interchangeable
    x = fbank(2)
    assert not torch.allclose(gsa(x), fta(x))


# ------------------------------------------------------------------------------------------------ pos embed
def test_resample_pos_embed_keeps_prefix_and_builds_new_grid():
    pos = torch.randn(1, 2 + 12 * 50, 16)
    shorter = resample_pos_embed(pos, (12, 50), (12, 12), num_prefix=2)
    assert shorter.shape == (1, 2 + 144, 16)
    torch.testing.assert_close(shorter[:, :2], pos[:, :2])
    grid = pos[:, 2:].reshape(1, 12, 50, 16)
    torch.testing.assert_close(shorter[:, 2:].reshape(1, 12, 12, 16), grid[:, :, 19:31])  # centre crop in time
    # AST's offset old//2 - new//2 (not (old - new)//2): 24 -> 9 columns starts at column 8, as AST loads them
    square = torch.randn(1, 1 + 24 * 24, 8)
    nine = resample_pos_embed(square, (24, 24), (12, 9), num_prefix=1)
    torch.testing.assert_close(nine[:, 1:].reshape(1, 12, 9, 8), square[:, 1:].reshape(1, 24, 24, 8)[:, 6:18, 8:17])
    longer = resample_pos_embed(pos, (12, 50), (14, 101), num_prefix=2)  # interpolate both axes
    assert longer.shape == (1, 2 + 14 * 101, 16)
    torch.testing.assert_close(longer[:, :2], pos[:, :2])
    interp = resample_pos_embed(pos, (12, 50), (12, 12), num_prefix=2, shrink="interpolate")
    assert interp.shape == shorter.shape and not torch.allclose(interp, shorter)
    torch.testing.assert_close(resample_pos_embed(pos, (12, 50), (12, 50), 2), pos)
    with pytest.raises(ModelError, match="does not match grid"):
        resample_pos_embed(pos, (12, 49), (12, 12), 2)


def test_backbone_resize_pos_embed_runs_at_new_length():
    backbone = tiny_backbone(frames=64)
    old = backbone.pos_embed.detach().clone()
    backbone.resize_pos_embed(128)
    assert backbone.input_frames == 128 and backbone.patch_grid == (2, 12)
    assert backbone.pos_embed.shape == (1, 1 + 24, 32)
    torch.testing.assert_close(backbone.pos_embed[:, :1], old[:, :1])
    assert backbone(fbank(2, frames=128)).shape == (2, 32)


# ------------------------------------------------------------------------------------------------ ConvPass
@pytest.mark.parametrize("d", [32, 64])
def test_convpass_parameter_count(d):
    n = sum(p.numel() for p in ConvPass(D_BASE, d).parameters())
    assert n == 1536 * d + 9 * d * d + 2 * d + 768


def test_convpass_prefix_tokens_are_1x1_maps():
    torch.manual_seed(0)
    adapter = ConvPass(16, 4).eval()
    torch.nn.init.normal_(adapter.up.weight)
    h = torch.randn(1, 2 + 12, 16)
    ctx = ForwardContext(grid=(3, 4), num_prefix=2)
    out = adapter(h, ctx)
    h2 = h.clone()
    h2[:, 2:] += 1.0  # change every patch token
    out2 = adapter(h2, ctx)
    torch.testing.assert_close(out2[:, :2], out[:, :2])  # prefix tokens do not see the grid
    assert not torch.allclose(out2[:, 2:], out[:, 2:])


def test_convpass_injection_is_identity_and_lists_exact_parameters():
    backbone = tiny_backbone().eval()
    x = fbank(2)
    before = backbone(x)
    method = create_pet("convpass", dim_first_task=8, dim=4)
    assert isinstance(method, ConvPassMethod) and "convpass" in PET_METHODS
    params = method.inject(backbone, 0)
    per_module = 2 * 32 * 8 + 9 * 8 * 8 + 2 * 8 + 32
    assert sum(p.numel() for p in params) == 2 * len(backbone.blocks) * per_module
    assert {id(p) for p in params} == {id(p) for m in method.task_modules(backbone, 0) for p in m.parameters()}
    assert torch.equal(backbone(x, task_id=0), before)  # zero-init up-projection
    later = method.inject(backbone, 1)
    assert sum(p.numel() for p in later) == 2 * len(backbone.blocks) * (2 * 32 * 4 + 9 * 16 + 8 + 32)
    with pytest.raises(TypeError, match="no option"):
        create_pet("convpass", bottleneck=8)
    with pytest.raises(KeyError, match="unknown PET method"):
        create_pet("lora2")


# ------------------------------------------------------------------------------------------------ TI-CL model
def ticl_model(mixer: str = "gsa") -> TaskIncrementalModel:
    model = TaskIncrementalModel(tiny_backbone(mixer=mixer), create_pet("convpass", dim_first_task=8, dim=4))
    model.add_task(0, 5)
    model.add_task(1, 3)
    for p in model.parameters():  # make the adapters non-trivial so that tasks really differ
        if p.ndim == 2 and not p.any():
            torch.nn.init.normal_(p, std=0.1)
    return model.eval()


def test_add_task_returns_exactly_the_task_parameters():
    model = TaskIncrementalModel(tiny_backbone(), create_pet("convpass", dim_first_task=8, dim=4))
    new = model.add_task(0, 5)
    assert {id(p) for p in new} == {id(p) for p in model.task_parameters(0)}
    assert model.has_task(0) and not model.has_task(1) and model.task_ids == [0]
    model.add_task(1, 3)
    shared = {id(p) for p in model.backbone_parameters()}
    t0, t1 = ({id(p) for p in model.task_parameters(t)} for t in (0, 1))
    assert not (shared & t0) and not (shared & t1) and not (t0 & t1)
    assert shared | t0 | t1 == {id(p) for p in model.parameters()}
    counts = model.count_parameters()
    assert counts["total"] == counts["backbone"] + sum(counts["tasks"].values())
    with pytest.raises(ModelError, match="task 0 already exists"):
        model.add_task(0, 5)


def test_task_one_parameters_get_no_gradient_from_a_task_zero_batch():
    model = ticl_model().train()
    logits = model(fbank(4), torch.zeros(4, dtype=torch.long))
    assert logits.shape == (4, 5)
    logits.sum().backward()
    assert all(p.grad is None for p in model.task_parameters(1))
    assert all(p.grad is not None for p in model.task_parameters(0))


@pytest.mark.parametrize("mixer", sorted(MIXERS))
def test_mixed_task_batch_matches_per_task_forwards(mixer):
    model = ticl_model(mixer)
    x = fbank(5)
    labels = torch.tensor([1, 0, 1, 1, 0])
    with torch.no_grad():
        mixed = model(x, labels)
        only0 = model(x[labels == 0], torch.zeros(2, dtype=torch.long))
        only1 = model(x[labels == 1], torch.ones(3, dtype=torch.long))
    assert mixed.shape == (5, 5)
    torch.testing.assert_close(mixed[labels == 0], only0, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mixed[labels == 1, :3], only1, atol=1e-5, rtol=1e-5)
    assert (mixed[labels == 1, 3:] == PAD_LOGIT).all()
    assert not torch.allclose(model(x, 0)[:, :3], model(x, 1))  # per-task adapters and heads differ


def test_unknown_task_is_a_clear_error():
    model = ticl_model()
    with pytest.raises(KeyError, match=r"unknown task id 7; known tasks: \[0, 1\]"):
        model(fbank(2), torch.tensor([0, 7]))
    with pytest.raises(ModelError, match="3 task labels for a batch of 2"):
        model(fbank(2), torch.tensor([0, 0, 0]))
