"""The backbone protocol (``models.protocol``): timm's names and meanings, the task id passed through the forward,
and the deprecated aliases of the old names."""
from __future__ import annotations

import pytest
import torch

from audio_ticl.models import Backbone, PatchBackbone, TaskIncrementalModel, create_model, create_pet
from audio_ticl.models.context import ForwardContext, current_context, forward_context


def tiny_backbone(**kwargs):
    torch.manual_seed(0)
    kwargs = {"embed_dim": 32, "depth": 2, "num_heads": 4, "num_mel_bins": 32, **kwargs}
    return create_model("ast_custom", input_frames=64, **kwargs).eval()


def fbank(batch: int = 2) -> torch.Tensor:
    return torch.randn(batch, 64, 32, generator=torch.Generator().manual_seed(1))


def test_ast_follows_the_protocol_with_timms_meanings():
    backbone = tiny_backbone(distill_token=True, pooling="cls_dist")
    assert isinstance(backbone, Backbone) and isinstance(backbone, PatchBackbone)
    assert backbone.num_features == 32 and backbone.num_prefix_tokens == 2 and backbone.patch_grid == (2, 5)
    x = fbank()
    tokens = backbone.forward_features(x)
    assert tokens.shape == (2, 2 + 2 * 5, 32)  # tokens, final-normed, like timm's forward_features
    torch.testing.assert_close(tokens.mean(-1), torch.zeros(2, 12), atol=1e-5, rtol=0)  # LayerNorm'd, unit affine
    pooled = backbone.forward_head(tokens, pre_logits=True)
    assert torch.equal(pooled, (tokens[:, 0] + tokens[:, 1]) / 2) and torch.equal(backbone(x), pooled)


def test_task_id_goes_through_the_call_and_nothing_stays_behind():
    backbone = tiny_backbone()
    seen = []
    backbone.blocks[0].mlp.register_forward_hook(lambda *args: seen.append(current_context()))
    backbone(fbank(), task_id=4)
    backbone.forward_features(fbank())
    assert seen == [ForwardContext(4, (2, 5), 1), ForwardContext(None, (2, 5), 1)]
    assert current_context() is None
    assert not hasattr(backbone, "set_active_task") and not hasattr(backbone.blocks[0], "attn_parallel")
    assert not any(hasattr(m, "active_task") for m in backbone.modules())


def test_contexts_nest_and_restore():
    outer, inner = ForwardContext(1, (2, 2), 1), ForwardContext(2, None, 0)
    with forward_context(outer):
        with forward_context(inner):
            assert current_context() is inner
        assert current_context() is outer
    assert current_context() is None


def test_the_ticl_model_runs_each_group_with_its_task_id():
    net = TaskIncrementalModel(tiny_backbone(), create_pet("convpass", dim_first_task=4, dim=4))
    net.add_task(0, 2)
    net.add_task(1, 3)
    seen = []
    net.backbone.blocks[1].mixer.register_forward_hook(lambda *args: seen.append(current_context().task_id))
    net(fbank(4), torch.tensor([1, 0, 0, 1]))
    assert seen == [0, 1] and current_context() is None


def test_deprecated_aliases_warn_and_give_the_same_numbers():
    backbone = tiny_backbone()
    x = fbank()
    tokens = backbone.forward_features(x)
    with pytest.warns(DeprecationWarning, match="forward_tokens is deprecated"):
        assert torch.equal(backbone.forward_tokens(x), tokens)
    with pytest.warns(DeprecationWarning, match="forward_tokens"):
        assert torch.equal(backbone.forward_tokens(x, pos_embed=backbone.pos_embed), tokens)
    with pytest.warns(DeprecationWarning, match="pool is deprecated: use forward_head"):
        assert torch.equal(backbone.pool(tokens), backbone.forward_head(tokens))


def test_positional_pos_embed_is_refused_not_taken_for_a_task_id():
    """The old ``forward_features(x, pos_embed)`` call must fail loudly, not run with a tensor as the task id."""
    backbone = tiny_backbone()
    with pytest.raises(TypeError):
        backbone.forward_features(fbank(), backbone.pos_embed)
