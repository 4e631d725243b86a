"""models/convert/ast_audioset.py: the AST AudioSet checkpoint layout ("ast:<file>") against a re-creation of AST.

The source is tests/ast_reference.ASTModel (AST's public code, small: 64-d, 2 blocks, 128 mel bins, 136 frames ->
a 12 x 13 grid at stride 10, as the AudioSet model's 12 x 101), saved from DataParallel as AST saves it.
"""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("timm")
from ast_reference import ASTModel, redraw  # noqa: E402

from audio_ticl.models import Backbone, PatchBackbone, create_backbone, from_pretrained  # noqa: E402
from audio_ticl.models.convert import ConversionError, load_pretrained  # noqa: E402
from audio_ticl.models.errors import ModelError  # noqa: E402

TOL = 1e-4
SIZE = {"embed_dim": 64, "depth": 2, "num_heads": 4}


@pytest.fixture(scope="module")
def source() -> ASTModel:
    return redraw(ASTModel(input_tdim=136)).eval()


@pytest.fixture(scope="module")
def checkpoint(source, tmp_path_factory):
    path = tmp_path_factory.mktemp("ast") / "audioset_tiny.pth"
    torch.save(torch.nn.DataParallel(source).state_dict(), path)  # keys module.v.*, module.mlp_head.*
    return path


def fbank(frames: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(2, frames, 128, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("frames", [136, 96, 256], ids=["source_grid", "crop_time", "interpolate_time"])
def test_factory_init_reproduces_ast(source, checkpoint, frames):
    """model.init 'ast:<file>': pooled features equal AST's, at the source length and fine-tuned at others."""
    backbone = create_backbone("ast_custom", input_frames=frames, distill_token=True, pooling="cls_dist",
                               init=f"ast:{checkpoint}", **SIZE).eval()
    reference = source if frames == 136 else source.finetuned_at(frames)
    x = fbank(frames)
    with torch.no_grad():
        expected, ours = reference.pooled(x), backbone(x)
    assert backbone.patch_grid == reference.grid
    assert expected.abs().max() > 0.1
    assert (ours - expected).abs().max() < TOL


@pytest.mark.parametrize("frames", [136, 200])
def test_from_pretrained_with_the_audioset_head_gives_ast_logits(source, checkpoint, frames):
    backbone = from_pretrained("ast", str(checkpoint), keep_head=True, input_frames=frames, num_heads=4).eval()
    assert isinstance(backbone, Backbone) and isinstance(backbone, PatchBackbone)
    assert backbone.num_prefix_tokens == 2 and backbone.pooling == "cls_dist" and backbone.num_features == 64
    head = backbone.pretrained_head
    assert not any(p.requires_grad for p in head.parameters())
    reference = source if frames == 136 else source.finetuned_at(frames)
    x = fbank(frames, seed=3)
    with torch.no_grad():
        expected, logits = reference(x), head(backbone(x))
    assert logits.shape == (2, 7)
    assert (logits - expected).abs().max() < TOL


def test_head_is_dropped_by_default(checkpoint):
    backbone = from_pretrained("ast", str(checkpoint), num_heads=4)
    assert not hasattr(backbone, "pretrained_head")
    assert not any(k.startswith("pretrained_head") for k in backbone.state_dict())


def test_cls_only_target_uses_the_cls_row(source, checkpoint):
    backbone = create_backbone("ast_custom", input_frames=136, init=f"ast:{checkpoint}", **SIZE)
    torch.testing.assert_close(backbone.pos_embed[:, 0], source.v.pos_embed[:, 0].detach())
    torch.testing.assert_close(backbone.pos_embed[:, 1:], source.v.pos_embed[:, 2:].detach())


def test_unused_and_missing_keys_are_named(source, tmp_path):
    target = create_backbone("ast_custom", input_frames=136, distill_token=True, **SIZE)
    state = torch.nn.DataParallel(source).state_dict()
    path = tmp_path / "extra.pth"
    torch.save({**state, "module.mystery.weight": torch.zeros(3)}, path)
    with pytest.raises(ConversionError, match="mystery.weight"):
        load_pretrained(f"ast:{path}", target)
    torch.save({**state, "module.v.blocks.0.ls1.gamma": torch.zeros(64)}, path)
    with pytest.raises(ConversionError, match="blocks.0.ls1.gamma"):
        load_pretrained(f"ast:{path}", target)
    del state["module.v.blocks.1.mlp.fc2.weight"]
    torch.save(state, path)
    with pytest.raises(ConversionError, match="blocks.1.mlp.fc2.weight"):
        load_pretrained(f"ast:{path}", target)
    with pytest.raises(ModelError, match="AST checkpoint.*blocks.1.mlp.fc2.weight"):
        create_backbone("ast_custom", input_frames=136, init=f"ast:{path}", **SIZE)


def test_grid_other_than_12_rows_needs_source_grid(tmp_path):
    source = redraw(ASTModel(fstride=16, tstride=16, input_tdim=128)).eval()  # 8 x 8 = 64 patches
    path = tmp_path / "ast16.pth"
    torch.save(torch.nn.DataParallel(source).state_dict(), path)
    kwargs = {"input_frames": 128, "fstride": 16, "tstride": 16, "distill_token": True, "pooling": "cls_dist"}
    with pytest.raises(ModelError, match="not a multiple of 12.*source_grid"):
        create_backbone("ast_custom", init=f"ast:{path}", **kwargs, **SIZE)
    backbone = create_backbone("ast_custom", init=f"ast:{path}", init_options={"ast": {"source_grid": (8, 8)}},
                               **kwargs, **SIZE).eval()
    x = fbank(128)
    with torch.no_grad():
        assert (backbone(x) - source.pooled(x)).abs().max() < TOL


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        create_backbone("ast_custom", input_frames=136, init=f"ast:{tmp_path}/none.pth", **SIZE)
