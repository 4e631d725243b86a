"""models/convert/ssast.py: SSAST pretraining checkpoints ("ssast:<file>"), patch and frame models, against a
re-creation of SSAST's ASTModel (tests/ast_reference.SSASTModel: 64-d, 2 blocks, saved from DataParallel)."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("timm")
from ast_reference import SSASTModel, redraw  # noqa: E402

from audio_ticl.models import PatchBackbone, create_backbone, from_pretrained  # noqa: E402
from audio_ticl.models.convert import ConversionError, load_pretrained  # noqa: E402

TOL = 1e-4
SIZE = {"embed_dim": 64, "depth": 2, "num_heads": 4}


def save(model: SSASTModel, path) -> str:
    torch.save(torch.nn.DataParallel(model).state_dict(), path)
    return str(path)


def fbank(frames: int) -> torch.Tensor:
    return torch.randn(2, frames, 128, generator=torch.Generator().manual_seed(5))


@pytest.fixture(scope="module")
def patch_model():
    return redraw(SSASTModel(fshape=16, tshape=16, input_tdim=128)).eval()  # pretraining grid 8 x 8


@pytest.fixture(scope="module")
def frame_model():
    return redraw(SSASTModel(fshape=128, tshape=2, input_tdim=64), seed=1).eval()  # pretraining grid 1 x 32


@pytest.mark.parametrize(
    "frames,stride",
    [(128, 16), (64, 16), (96, 10)],
    ids=["pretraining_grid", "crop_time", "overlap_interpolate"],
)
def test_patch_model_mean_pooling_reproduces_ssast(patch_model, tmp_path, frames, stride):
    path = save(patch_model, tmp_path / "ssast_patch.pth")
    backbone = create_backbone("ast_custom", input_frames=frames, fstride=stride, tstride=stride, distill_token=True,
                               pooling="mean", init=f"ssast:{path}", **SIZE).eval()
    v = patch_model.finetuned(stride, stride, frames)
    x = fbank(frames)
    with torch.no_grad():
        expected, ours = patch_model.finetuning_avgtok(v, x), backbone(x)
    assert expected.abs().max() > 0.05
    assert (ours - expected).abs().max() < TOL


@pytest.mark.parametrize("frames", [64, 40, 100], ids=["pretraining_grid", "crop_time", "interpolate_time"])
def test_frame_model_128x2_patches_reproduce_ssast(frame_model, tmp_path, frames):
    path = save(frame_model, tmp_path / "ssast_frame.pth")
    backbone = from_pretrained("ssast", path, input_frames=frames, num_heads=4).eval()
    assert isinstance(backbone, PatchBackbone)
    assert backbone.patch_embed.patch_shape == (128, 2) and backbone.patch_grid == (1, frames // 2)
    assert backbone.pooling == "mean"
    v = frame_model.finetuned(128, 2, frames)
    x = fbank(frames)
    with torch.no_grad():
        expected, ours = frame_model.finetuning_avgtok(v, x), backbone(x)
    assert (ours - expected).abs().max() < TOL


def test_base_nokd_layout_has_no_distillation_token(tmp_path):
    model = redraw(SSASTModel(input_tdim=128, distilled=False)).eval()
    path = save(model, tmp_path / "nokd.pth")
    backbone = from_pretrained("ssast", path, num_heads=4).eval()
    assert backbone.num_prefix_tokens == 1 and backbone.patch_grid == (8, 8)
    x = fbank(128)
    with torch.no_grad():
        assert (backbone(x) - model.finetuning_avgtok(model.v, x)).abs().max() < TOL


def test_unused_and_missing_keys_are_named(patch_model, tmp_path):
    target = create_backbone("ast_custom", input_frames=128, fstride=16, tstride=16, distill_token=True, **SIZE)
    state = torch.nn.DataParallel(patch_model).state_dict()
    path = tmp_path / "bad.pth"
    torch.save({**state, "module.extra_layer.bias": torch.zeros(2)}, path)
    with pytest.raises(ConversionError, match="extra_layer.bias"):
        load_pretrained(f"ssast:{path}", target)
    state.pop("module.p_input_tdim")
    torch.save(state, path)
    with pytest.raises(ConversionError, match="p_input_tdim"):
        load_pretrained(f"ssast:{path}", target)
    state = torch.nn.DataParallel(patch_model).state_dict()
    del state["module.v.blocks.0.attn.qkv.weight"]
    torch.save(state, path)
    with pytest.raises(ConversionError, match="blocks.0.attn.qkv.weight"):
        load_pretrained(f"ssast:{path}", target)


def test_patch_shape_mismatch_is_an_error(frame_model, tmp_path):
    path = save(frame_model, tmp_path / "frame.pth")
    target = create_backbone("ast_custom", input_frames=64, fstride=16, tstride=16, distill_token=True, **SIZE)
    with pytest.raises(ConversionError, match="128x2 patches.*16x16"):
        load_pretrained(f"ssast:{path}", target)


def test_a_config_builds_the_frame_model_and_loads_its_checkpoint(frame_model, tmp_path):
    """``model.patch_size: [128, 2]`` with strides 128 / 2 and ``model.init: ssast:<file>``: the run config reaches
    the SSAST frame geometry and its weights through the factory, with the outputs SSAST fine-tuning gives."""
    from audio_ticl.benchmark.config import MethodConfig, ModelConfig, RunConfig
    from audio_ticl.benchmark.errors import ConfigError
    from audio_ticl.benchmark.model_setup import build_model

    path = save(frame_model, tmp_path / "ssast_frame.pth")
    cfg = RunConfig()
    cfg.features.num_mel_bins = 128
    cfg.model = ModelConfig(name="ast_custom", patch_size=[128, 2], fstride=128, tstride=2, pooling="mean",
                            distill_token=True, init=f"ssast:{path}", **SIZE)
    backbone = build_model(cfg, MethodConfig(name="m"), 40, torch.device("cpu"), progress=False).backbone.eval()
    assert backbone.patch_embed.patch_shape == (128, 2) and backbone.patch_grid == (1, 20)
    x = fbank(40)
    with torch.no_grad():
        v = frame_model.finetuned(128, 2, 40)
        torch.testing.assert_close(backbone(x), frame_model.finetuning_avgtok(v, x), atol=TOL, rtol=0)
    cfg.model.patch_size = [128]
    with pytest.raises(ConfigError, match="model.patch_size"):
        build_model(cfg, MethodConfig(name="m"), 40, torch.device("cpu"), progress=False)
