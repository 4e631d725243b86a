"""models/convert: timm ViT / DeiT -> ASTBackbone conversion, the init-spec loader and its error paths (no network)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from audio_ticl.models import ASTBackbone
from audio_ticl.models.convert import (
    CONVERTERS,
    ASTGeometry,
    ConversionError,
    WeightsUnavailableError,
    convert_timm_vit,
    is_converter_spec,
    load_pretrained,
    parse_init_spec,
)
from audio_ticl.models.convert import timm_vit as timm_vit_module

timm = pytest.importorskip("timm")
from timm.models.deit import VisionTransformerDistilled  # noqa: E402
from timm.models.vision_transformer import VisionTransformer  # noqa: E402

MELS, FRAMES = 32, 64  # a 32 x 64 "image": grid (F'=2, T'=4), not square, so frequency and time cannot swap
DIM, DEPTH, HEADS = 64, 2, 4
TOL = 1e-4


def tiny_timm(distilled: bool = False, seed: int = 0, **kwargs) -> VisionTransformer:
    """A 2-block, 64-d timm ViT (DeiT-distilled if asked) on 32 x 64 images: the real timm code at test size.

    Every parameter is re-drawn (timm initialises CLS to ~1e-6 and biases to 0, which would hide mistakes).
    """
    torch.manual_seed(seed)
    cls = VisionTransformerDistilled if distilled else VisionTransformer
    kwargs = {"img_size": (MELS, FRAMES), "patch_size": 16, "embed_dim": DIM, "depth": DEPTH, "num_heads": HEADS,
              "num_classes": 5, **kwargs}
    model = cls(**kwargs).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.normal_(0.0, 0.1)
            if "norm" in name and name.endswith("weight"):
                p.add_(1.0)
    return model


def tiny_target(distill_token: bool = False, mixer: str = "gsa", **kwargs) -> ASTBackbone:
    """The matching ASTBackbone: non-overlapping 16x16 patches over the same grid."""
    kwargs = {"embed_dim": DIM, "depth": DEPTH, "num_heads": HEADS, **kwargs}
    return ASTBackbone(FRAMES, MELS, fstride=16, tstride=16, mixer=mixer, distill_token=distill_token,
                       pooling="cls_dist" if distill_token else "cls", **kwargs).eval()


def as_image(x: torch.Tensor) -> torch.Tensor:
    """(B, T, F) fbank -> (B, 3, F, T) image: frequency is the height, as in ASTBackbone's PatchEmbed."""
    return rearrange(x, "b t f -> b 1 f t").expand(-1, 3, -1, -1)


# ------------------------------------------------------------------------------------------ equivalence
@pytest.mark.parametrize("distilled", [False, True], ids=["vit", "deit_distilled"])
def test_converted_backbone_reproduces_timm(distilled):
    source = tiny_timm(distilled)
    target = tiny_target(distill_token=distilled)
    target.load_state_dict(convert_timm_vit(source, target))
    x = torch.randn(3, FRAMES, MELS, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref_tokens = source.forward_features(as_image(x))
        ref_pooled = source.forward_head(ref_tokens, pre_logits=True)  # CLS (ViT) / mean of CLS and dist (DeiT)
        tokens = target.forward_features(x)
        pooled = target.forward_head(tokens, pre_logits=True)  # timm's names, timm's meaning
    assert tokens.shape == ref_tokens.shape == (3, (2 if distilled else 1) + 2 * 4, DIM)
    assert (tokens - ref_tokens).abs().max() < TOL
    assert (pooled - ref_pooled).abs().max() < TOL


def test_full_size_vit_base_patch16_384_reproduces_timm():
    """The AI-CL backbone itself, at full size (86 M parameters, 577 tokens), random weights re-drawn so that
    every tensor matters: converted, it gives timm's pre-logits features on a 384 x 384 input."""
    from audio_ticl.models import create_model

    torch.manual_seed(0)
    source = timm.create_model("vit_base_patch16_384", pretrained=False).eval()
    with torch.no_grad():
        for param in source.parameters():
            param.normal_(0.0, 0.05)
    target = create_model("ast_base", input_frames=384, num_mel_bins=384, fstride=16, tstride=16, pooling="cls")
    target.load_state_dict(convert_timm_vit(source, target.eval()))
    x = torch.randn(1, 384, 384, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        reference = source.forward_head(source.forward_features(as_image(x)), pre_logits=True)
        ours = target(x)
    assert reference.abs().max() > 0.1  # a non-trivial output, so the tolerance means something
    assert (ours - reference).abs().max() < TOL


def test_state_dict_source_needs_the_grid_unless_square():
    source = tiny_timm()
    target = tiny_target()
    with pytest.raises(ConversionError, match="cannot infer the patch grid"):
        convert_timm_vit(source.state_dict(), target)  # 2 x 4 grid: not square
    from_state = convert_timm_vit(source.state_dict(), target, source_grid=(2, 4))
    from_model = convert_timm_vit(source, target)
    assert from_state.keys() == from_model.keys()
    for key in from_model:
        torch.testing.assert_close(from_state[key], from_model[key])


def test_converted_weights_load_into_the_fta_mixer():
    """FTA shares qkv / proj with GSA: the same converted weights load, only the mixing differs."""
    source = tiny_timm()
    state = convert_timm_vit(source, tiny_target())
    fta = tiny_target(mixer="fta")
    fta.load_state_dict(state)
    torch.testing.assert_close(fta.blocks[1].mixer.qkv.weight, source.blocks[1].attn.qkv.weight)


def test_deit_distilled_into_cls_only_target_drops_the_dist_token():
    source = tiny_timm(distilled=True)
    state = convert_timm_vit(source, tiny_target())
    assert "dist_token" not in state and state["pos_embed"].shape == (1, 1 + 8, DIM)
    torch.testing.assert_close(state["pos_embed"][:, :1], source.pos_embed[:, :1].detach())  # CLS row
    torch.testing.assert_close(state["pos_embed"][:, 1:], source.pos_embed[:, 2:].detach())  # patch rows


def test_patch_kernel_is_the_rgb_sum():
    source = tiny_timm()
    state = convert_timm_vit(source, tiny_target())
    kernel = source.patch_embed.proj.weight.detach()
    assert state["patch_embed.proj.weight"].shape == (DIM, 1, 16, 16)
    torch.testing.assert_close(state["patch_embed.proj.weight"][:, 0], kernel.sum(dim=1))


# ------------------------------------------------------------------------------------------ grid adaptation
@pytest.mark.parametrize("frames,grid", [(128, (12, 12)), (1024, (12, 101))])
def test_vit_base_384_grid_is_centre_cropped_in_frequency(frames, grid):
    """vit_base_patch16_384's 24 x 24 grid -> AST's (12, T') grid at stride 10 (one block: same geometry, cheap)."""
    source = timm.create_model("vit_base_patch16_384", pretrained=False, depth=1, num_classes=0)
    geometry = ASTGeometry(embed_dim=768, depth=1, num_heads=12, mlp_hidden=3072, patch_size=16, grid=grid,
                           num_prefix_tokens=1)
    assert ASTBackbone(frames, 128, embed_dim=768, depth=1, num_heads=12).patch_grid == grid  # stride 10
    pos = convert_timm_vit(source, geometry)["pos_embed"]
    assert pos.shape == (1, 1 + grid[0] * grid[1], 768)
    src = source.pos_embed.detach()
    torch.testing.assert_close(pos[:, :1], src[:, :1])
    rows = rearrange(src[:, 1:], "1 (f t) d -> 1 d f t", f=24)[:, :, 6:18]  # centre 12 of 24 frequency rows
    if grid[1] <= 24:
        expected = rows[:, :, :, 6:18]  # time cropped in the centre too
    else:
        expected = F.interpolate(rows, size=grid, mode="bilinear", align_corners=False)  # time interpolated
    torch.testing.assert_close(rearrange(pos[:, 1:], "1 (f t) d -> 1 d f t", f=grid[0]), expected)


def test_no_embed_class_source_gives_prefix_tokens_no_position():
    source = tiny_timm(no_embed_class=True)
    target = tiny_target()
    state = convert_timm_vit(source, target)
    assert torch.count_nonzero(state["pos_embed"][:, 0]) == 0
    target.load_state_dict(state)
    x = torch.randn(2, FRAMES, MELS)
    with torch.no_grad():
        assert (target.forward_features(x) - source.forward_features(as_image(x))).abs().max() < TOL


# ------------------------------------------------------------------------------------------ errors
def test_embed_dim_mismatch_names_the_key():
    with pytest.raises(ConversionError, match="'patch_embed.proj.weight'.*embed_dim 64.*embed_dim 32"):
        convert_timm_vit(tiny_timm().state_dict(), tiny_target(embed_dim=32), source_grid=(2, 4))
    with pytest.raises(ConversionError, match="embed_dim 64, the target ASTBackbone embed_dim 32"):
        convert_timm_vit(tiny_timm(), tiny_target(embed_dim=32))


def test_missing_key_is_named():
    state = tiny_timm().state_dict()
    del state["blocks.1.mlp.fc2.weight"]
    with pytest.raises(ConversionError, match="no key 'blocks.1.mlp.fc2.weight'"):
        convert_timm_vit(state, tiny_target(), source_grid=(2, 4))


def test_input_channels_other_than_rgb_are_an_error():
    with pytest.raises(ConversionError, match="2 input channels"):
        convert_timm_vit(tiny_timm(in_chans=2), tiny_target())


def test_depth_heads_and_mlp_mismatches():
    with pytest.raises(ConversionError, match="2 blocks.*depth 3"):
        convert_timm_vit(tiny_timm(), tiny_target(depth=3))
    with pytest.raises(ConversionError, match="4 attention heads.*2"):
        convert_timm_vit(tiny_timm(), tiny_target(num_heads=2))
    with pytest.raises(ConversionError, match="'blocks.0.mlp.fc1.weight' has shape"):
        convert_timm_vit(tiny_timm(), tiny_target(mlp_ratio=2.0))


def test_layers_without_a_place_are_an_error_not_skipped():
    with pytest.raises(ConversionError, match="blocks.0.ls1.gamma"):  # LayerScale
        convert_timm_vit(tiny_timm(init_values=1e-5), tiny_target())


def test_target_dist_token_needs_a_distilled_source():
    with pytest.raises(ConversionError, match="distillation token.*dist_token"):
        convert_timm_vit(tiny_timm(), tiny_target(distill_token=True))


# ------------------------------------------------------------------------------------------ init specs
def test_init_spec_parsing():
    assert "timm" in CONVERTERS
    assert is_converter_spec("timm:vit_base_patch16_384")
    assert not is_converter_spec("/tmp/weights.pth") and not is_converter_spec("upstream")
    assert parse_init_spec("timm:vit_base_patch16_384") == ("timm", "vit_base_patch16_384", None)
    source, name, file = parse_init_spec("timm:deit_base_distilled_patch16_384:/data/a:b.pth")
    assert (source, name, str(file)) == ("timm", "deit_base_distilled_patch16_384", "/data/a:b.pth")
    for bad in ("timm:", "timm:vit_base_patch16_384:"):
        with pytest.raises(ConversionError, match="malformed"):
            parse_init_spec(bad)


def test_download_failure_says_network_and_how_to_pass_a_file(monkeypatch):
    def offline(*args, **kwargs):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(timm, "create_model", offline)
    with pytest.raises(WeightsUnavailableError) as info:
        load_pretrained("timm:vit_base_patch16_384", tiny_target())
    message = str(info.value)
    assert "could not fetch" in message and "network" in message and "couldn't connect" in message
    assert "timm:vit_base_patch16_384:/path/to/weights.pth" in message


def test_unknown_timm_model_is_named():
    with pytest.raises(WeightsUnavailableError, match="no model 'vit_nonexistent_xyz'"):
        load_pretrained("timm:vit_nonexistent_xyz", tiny_target())


def test_missing_timm_says_pip_install_and_a_local_file_still_works(monkeypatch, tmp_path):
    monkeypatch.setattr(timm_vit_module, "_import_timm", lambda: None)
    with pytest.raises(WeightsUnavailableError, match="pip install timm"):
        load_pretrained("timm:vit_base_patch16_384", tiny_target())
    # without timm a local file is read as a plain timm state dict (here square: a 32 x 32 image, grid 2 x 2)
    source = tiny_timm(img_size=32)
    path = tmp_path / "vit.pth"
    torch.save({"model": source.state_dict()}, path)  # DeiT's release layout
    target = ASTBackbone(32, 32, fstride=16, tstride=16, embed_dim=DIM, depth=DEPTH, num_heads=HEADS)
    target.load_state_dict(load_pretrained(f"timm:any_name:{path}", target))
    torch.testing.assert_close(target.blocks[0].mixer.proj.bias, source.blocks[0].attn.proj.bias)


def test_local_file_through_timm_and_the_runner(tmp_path):
    """``model.init: timm:<name>:<file>`` in a run config: the file is checked and converted, no network."""
    from audio_ticl.benchmark.config import MethodConfig, ModelConfig, RunConfig
    from audio_ticl.benchmark.errors import ConfigError
    from audio_ticl.benchmark.model_setup import build_model

    torch.manual_seed(0)
    source = timm.create_model("vit_tiny_patch16_224", pretrained=False)  # 192-d, 3 heads, depth 12, 14 x 14
    path = tmp_path / "vit_tiny.pth"
    torch.save(source.state_dict(), path)
    cfg = RunConfig()
    cfg.features.num_mel_bins = 128
    cfg.model = ModelConfig(name="ast_tiny", fstride=10, tstride=10, init=f"timm:vit_tiny_patch16_224:{path}")
    model = build_model(cfg, MethodConfig(name="m"), 128, torch.device("cpu"), progress=False)
    backbone = model.backbone
    assert backbone.patch_grid == (12, 12)
    torch.testing.assert_close(backbone.blocks[11].mlp.fc2.weight, source.blocks[11].mlp.fc2.weight)
    grid = rearrange(source.pos_embed[:, 1:].detach(), "1 (f t) d -> 1 f t d", f=14)[:, 1:13, 1:13]
    torch.testing.assert_close(backbone.pos_embed[:, 1:].detach(), rearrange(grid, "1 f t d -> 1 (f t) d"))

    torch.save({"cls_token": torch.zeros(1, 1, 192)}, path)  # not a ViT checkpoint
    with pytest.raises(ConfigError, match="model.init.*not hold weights of timm model .vit_tiny_patch16_224.*missing"):
        build_model(cfg, MethodConfig(name="m"), 128, torch.device("cpu"), progress=False)
    cfg.model.name = "ast_small"  # 384-d target for 192-d weights
    torch.save(source.state_dict(), path)
    with pytest.raises(ConfigError, match="embed_dim 192, the target ASTBackbone embed_dim 384"):
        build_model(cfg, MethodConfig(name="m"), 128, torch.device("cpu"), progress=False)


@pytest.mark.parametrize("frames", [96, 256], ids=["crop", "interpolate_time"])
def test_distilled_deit_file_through_the_factory_matches_asts_imagenet_init(tmp_path, frames):
    """``timm:deit_tiny_distilled_patch16_224:<file>`` (DeiT, Touvron et al. 2021: CLS + distillation token), as AST
    builds it from ImageNet (tests/ast_reference: RGB kernels summed, 14 x 14 grid cropped / interpolated)."""
    import copy

    from ast_reference import PatchEmbed, ast_adapt, redraw, run_v

    from audio_ticl.models import create_backbone, from_pretrained

    deit = redraw(timm.create_model("deit_tiny_distilled_patch16_224", pretrained=False)).eval()
    path = tmp_path / "deit_tiny_distilled.pth"
    torch.save(deit.state_dict(), path)
    backbone = create_backbone("ast_tiny", input_frames=frames, distill_token=True, pooling="cls_dist",
                               init=f"timm:deit_tiny_distilled_patch16_224:{path}").eval()
    described = from_pretrained("timm", f"deit_tiny_distilled_patch16_224:{path}", input_frames=frames).eval()
    assert described.num_prefix_tokens == 2 and described.pooling == "cls_dist"
    v = copy.deepcopy(deit)
    proj = torch.nn.Conv2d(1, 192, kernel_size=16, stride=10)
    proj.weight = torch.nn.Parameter(deit.patch_embed.proj.weight.sum(dim=1, keepdim=True))
    proj.bias = deit.patch_embed.proj.bias
    v.patch_embed = PatchEmbed(proj)
    grid = ((128 - 16) // 10 + 1, (frames - 16) // 10 + 1)
    v.pos_embed = torch.nn.Parameter(ast_adapt(deit.pos_embed.detach(), 2, (14, 14), grid))
    x = torch.randn(2, frames, 128, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        tokens = run_v(v, x, 2)
        expected = (tokens[:, 0] + tokens[:, 1]) / 2
        assert (backbone(x) - expected).abs().max() < TOL
        assert (described(x) - expected).abs().max() < TOL
