"""Per-task input lengths (AI-CL: every dataset at its own length) and per-task position embeddings.

A dataset_sequence keeps each dataset's own number of frames; the TI-CL model runs each task at its length with
a position embedding resampled from the backbone's (frozen buffer, or a trainable per-task parameter with
``per_task_pos_embed``), and class-split models (one length, option off) are exactly what they were.
"""
from __future__ import annotations

import io

import pytest
import torch
import yaml

from audio_ticl.benchmark import metrics as M
from audio_ticl.benchmark.config import ModelConfig, load_config
from audio_ticl.benchmark.errors import ConfigError
from audio_ticl.benchmark.scenarios import build_tasks, input_frames, model_frames, task_frames
from audio_ticl.models import TaskIncrementalModel, create_model, create_pet
from audio_ticl.models.context import ForwardContext, current_context, forward_context
from audio_ticl.models.errors import ModelError
from audio_ticl.models.pos_embed import resample_pos_embed

MELS = 32
LONG, SHORT = 64, 32  # stride 16 on 32 mel bins: grids (2, 4) and (2, 2)


def tiny_backbone(frames: int = LONG, mixer: str = "gsa", **kwargs):
    torch.manual_seed(0)
    kwargs = {"embed_dim": 16, "depth": 2, "num_heads": 2, "num_mel_bins": MELS, "fstride": 16, "tstride": 16,
              **kwargs}
    return create_model("ast_custom", input_frames=frames, mixer=mixer, **kwargs)


def fbank(batch: int, frames: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, frames, MELS, generator=torch.Generator().manual_seed(seed))


def two_length_model(per_task: bool, pet: bool = False, mixer: str = "gsa") -> TaskIncrementalModel:
    net = TaskIncrementalModel(
        tiny_backbone(mixer=mixer),
        create_pet("convpass", dim=4, dim_first_task=4) if pet else None,
        task_frames={0: LONG, 1: SHORT},
        per_task_pos_embed=per_task,
    )
    torch.manual_seed(1)
    net.add_task(0, 3)
    net.add_task(1, 2)
    return net


# ------------------------------------------------------------------------------------------------ scenarios
def _sequence_config(tmp_path, **features):
    config = {
        "extends": "smoke",
        "scenario": {
            "kind": "dataset_sequence",
            "sequence": [
                {"source": "synthetic", "name": "short",
                 "options": {"classes": ["siren", "rain"], "duration_s": 0.5,
                             "clips_per_class": {"train": 2, "val": 1, "test": 1}}},
                {"source": "synthetic", "name": "long",
                 "options": {"classes": ["chirp_up", "pluck"], "duration_s": 1.0,
                             "clips_per_class": {"train": 2, "val": 1, "test": 1}}},
            ],
        },
        "features": {"cache_dir": str(tmp_path / "cache"), **features},
    }
    path = tmp_path / "seq.yaml"
    path.write_text(yaml.safe_dump(config))
    return load_config(config_file=path)


def test_dataset_sequence_keeps_each_tasks_length(tmp_path):
    tasks, _ = build_tasks(_sequence_config(tmp_path), progress=False)
    assert task_frames(tasks) == {0: 50, 1: 100}  # 0.5 s -> 48 frames -> 50; 1 s -> 98 -> 100 (synthetic rounding)
    for task in tasks:
        shapes = {tuple(part.features.shape[1:]) for part in task.splits.values()}
        assert shapes == {(task_frames(tasks)[task.id], 128)}
    assert model_frames(tasks) == 100
    with pytest.raises(ConfigError, match=r"different input lengths .*\{0: 50, 1: 100\}.*features.target_frames"):
        input_frames(tasks)


def test_target_frames_still_forces_one_common_length(tmp_path):
    tasks, _ = build_tasks(_sequence_config(tmp_path, target_frames=64), progress=False)
    assert task_frames(tasks) == {0: 64, 1: 64}
    assert model_frames(tasks) == input_frames(tasks) == 64


# ---------------------------------------------------------------------------------------------- the backbone
def test_explicit_pos_embed_gives_the_same_numbers_at_the_configured_length():
    backbone = tiny_backbone(mixer="fta")
    x = fbank(2, LONG)
    ref = backbone.forward_features(x)
    assert torch.equal(backbone.forward_features(x, pos_embed=backbone.pos_embed), ref)
    assert torch.equal(backbone(x), backbone.forward_head(ref))


def test_other_length_runs_as_a_backbone_built_at_that_length():
    backbone = tiny_backbone(mixer="fta")
    pos = backbone.resampled_pos_embed(SHORT)
    assert pos.shape == (1, 1 + 2 * 2, 16) and not pos.requires_grad
    assert torch.equal(pos, resample_pos_embed(backbone.pos_embed.detach(), (2, 4), (2, 2), 1))
    native = tiny_backbone(frames=SHORT, mixer="fta")
    native.load_state_dict({**backbone.state_dict(), "pos_embed": pos})
    x = fbank(2, SHORT)
    torch.testing.assert_close(backbone.forward_features(x, pos_embed=pos), native.forward_features(x), rtol=0, atol=0)
    with pytest.raises(ModelError, match=r"does not fit an input of 64 frames.*\(1, 9, 16\)"):
        backbone.forward_features(fbank(2, LONG), pos_embed=pos)
    with pytest.raises(ModelError, match="expects input"):
        backbone.forward_features(x)  # without an embedding, only the configured length runs


# ------------------------------------------------------------------------------------------ per-task embeddings
def test_frozen_per_task_embedding_only_where_the_grid_differs():
    net = two_length_model(per_task=False)
    assert net.task_pos_embed.get(0) is None  # the backbone's length: shares its embedding
    own = net.task_pos_embed.get(1)
    assert own.shape == (1, 1 + 2 * 2, 16) and not own.requires_grad
    assert torch.equal(own, resample_pos_embed(net.backbone.pos_embed.detach(), (2, 4), (2, 2), 1))
    assert all(p is not own for p in net.parameters())
    assert all(p is not own for t in (0, 1) for p in net.task_parameters(t))
    assert "task_pos_embed.1" in net.state_dict() and "task_pos_embed.0" not in net.state_dict()
    assert net.count_parameters()["total"] == sum(p.numel() for p in net.parameters())
    assert net.count_parameters()["tasks"][1] == sum(p.numel() for p in net.heads["1"].parameters())


def test_trainable_per_task_embedding_for_every_task_when_the_option_is_on():
    net = TaskIncrementalModel(tiny_backbone(), task_frames={0: LONG, 1: SHORT}, per_task_pos_embed=True)
    head0 = net.add_task(0, 3)
    head1 = net.add_task(1, 2)
    for t, frames, grid, returned in ((0, LONG, (2, 4), head0), (1, SHORT, (2, 2), head1)):
        own = net.task_pos_embed.get(t)
        assert isinstance(own, torch.nn.Parameter) and own.requires_grad
        assert own.shape == (1, 1 + grid[0] * grid[1], 16)
        assert any(p is own for p in net.task_parameters(t)) and any(p is own for p in returned)
        assert all(p is not own for p in net.task_parameters(1 - t))
        assert all(p is not own for p in net.backbone_parameters())
        assert net.pos_embed_for(t) is own and net.input_frames(t) == frames
    assert torch.equal(net.task_pos_embed.get(0), net.backbone.pos_embed)  # same grid: an exact copy ...
    assert net.task_pos_embed.get(0) is not net.backbone.pos_embed  # ... that trains on its own
    n_pos = 16 * (5 + 9)
    assert net.count_parameters()["trainable"] == sum(p.numel() for p in net.backbone.parameters()) + n_pos + (
        16 * 3 + 3 + 16 * 2 + 2
    )


def _train_task(net: TaskIncrementalModel, task: int, frames: int, params) -> None:
    opt = torch.optim.SGD(list(params), lr=0.5)
    for step in range(3):
        opt.zero_grad()
        loss = net.forward_task(fbank(4, frames, seed=step), task).logsumexp(1).mean()
        loss.backward()
        opt.step()


def test_training_a_short_task_moves_only_its_own_embedding():
    # frozen (option off): a fine-tuning optimizer over every parameter leaves both embeddings unchanged
    net = two_length_model(per_task=False)
    pos, own = net.backbone.pos_embed.detach().clone(), net.task_pos_embed.get(1).clone()
    head = net.heads["1"].weight.detach().clone()
    _train_task(net, 1, SHORT, net.parameters())
    assert torch.equal(net.backbone.pos_embed, pos) and torch.equal(net.task_pos_embed.get(1), own)
    assert not torch.equal(net.heads["1"].weight, head)  # it did train
    # trainable (option on): the task's own embedding trains, the backbone's does not
    net = two_length_model(per_task=True, pet=True)
    pos, own = net.backbone.pos_embed.detach().clone(), net.task_pos_embed.get(1).detach().clone()
    other = net.task_pos_embed.get(0).detach().clone()
    _train_task(net, 1, SHORT, net.task_parameters(1))
    assert torch.equal(net.backbone.pos_embed, pos) and torch.equal(net.task_pos_embed.get(0), other)
    assert not torch.equal(net.task_pos_embed.get(1), own)


def test_each_task_runs_with_its_own_embedding():
    net = two_length_model(per_task=True, pet=True, mixer="fta")
    with torch.no_grad():
        net.task_pos_embed.get(1).add_(1.0)
    x = fbank(2, SHORT)
    b = net.backbone
    expected = net.heads["1"](b.forward_head(b.forward_features(x, task_id=1, pos_embed=net.task_pos_embed.get(1))))
    assert torch.equal(net(x, torch.tensor([1, 1])), expected)
    assert torch.equal(net.forward_task(x, 1), expected)
    assert current_context() is None  # nothing of the forward outlives it


# --------------------------------------------------------------------------------------- class-split: unchanged
def _old_forward(net: TaskIncrementalModel, x: torch.Tensor, task: int) -> torch.Tensor:
    """The forward before per-task lengths existed, written out: patch embed, prefix, + the backbone's
    position embedding, blocks on the backbone's grid (with the task's PET modules), norm, pool, head."""
    b = net.backbone
    with forward_context(ForwardContext(task, b.patch_grid, b.num_prefix_tokens)):
        tokens = b.patch_embed(x)
        prefix = [b.cls_token] if b.dist_token is None else [b.cls_token, b.dist_token]
        h = torch.cat([torch.cat(prefix, 1).expand(tokens.shape[0], -1, -1), tokens], 1) + b.pos_embed
        for block in b.blocks:
            h = block(h, b.patch_grid, b.num_prefix_tokens)
        return net.heads[str(task)](b.forward_head(b.norm(h)))


@pytest.mark.parametrize("mixer", ["gsa", "fta"])
def test_class_split_model_is_bit_identical_and_adds_nothing(mixer):
    def build(**kwargs):
        pet = create_pet("convpass", dim=4, dim_first_task=4)
        net = TaskIncrementalModel(tiny_backbone(mixer=mixer, distill_token=True, pooling="cls_dist"), pet, **kwargs)
        torch.manual_seed(3)
        params = [net.add_task(0, 3), net.add_task(1, 2)]
        return net, params

    plain, plain_params = build()
    same, same_params = build(task_frames={0: LONG, 1: LONG}, per_task_pos_embed=False)
    assert list(plain.state_dict()) == list(same.state_dict())
    assert not any(k.startswith("task_pos_embed") for k in plain.state_dict())
    assert [len(p) for p in plain_params] == [len(p) for p in same_params]
    assert plain.count_parameters() == same.count_parameters()
    for k, v in plain.state_dict().items():
        assert torch.equal(v, same.state_dict()[k]), k
    x, labels = fbank(4, LONG), torch.tensor([0, 1, 1, 0])
    for net in (plain, same):
        for t in (0, 1):
            assert torch.equal(net.forward_task(x, t), _old_forward(net, x, t))
        mixed = net(x, labels)
        assert torch.equal(mixed[labels == 0, :3], _old_forward(net, x[labels == 0], 0))
        assert torch.equal(mixed[labels == 1, :2], _old_forward(net, x[labels == 1], 1))


# ------------------------------------------------------------------------------------------------ compute
def test_a_short_task_costs_fewer_flops():
    net = two_length_model(per_task=True, pet=True)
    long_flops = M.count_flops(net, fbank(1, LONG), torch.tensor([0]))
    short_flops = M.count_flops(net, fbank(1, SHORT), torch.tensor([1]))
    assert 0 < short_flops < long_flops


# -------------------------------------------------------------------------------------------------- errors
def test_a_length_the_task_does_not_take_is_a_clear_error():
    net = two_length_model(per_task=False)
    with pytest.raises(ModelError, match=r"task 1 expects inputs of 32 frames, got 64 frames"):
        net(fbank(2, LONG), torch.tensor([1, 1]))
    with pytest.raises(ModelError, match=r"task 0 expects inputs of 64 frames, got 32 frames"):
        net.forward_task(fbank(2, SHORT), 0)
    with pytest.raises(ModelError, match=r"cannot mix tasks of different input lengths.*\{0: 64, 1: 32\}"):
        net(fbank(2, LONG), torch.tensor([0, 1]))
    with pytest.raises(ModelError, match="already exists with 32 input frames"):
        net.set_task_frames({1: LONG})
    with pytest.raises(ModelError, match=r"smaller than one patch \(16 mel bins x 16 frames\)"):
        net.set_task_frames({2: 8})


def test_lengths_set_before_adaptation_are_used_by_add_task():
    # Avalanche's adaptation only calls add_task(task_id, num_classes): the length comes from set_task_frames
    net = TaskIncrementalModel(tiny_backbone())
    net.set_task_frames({0: SHORT})
    net.add_task(0, 2)
    assert net.input_frames(0) == SHORT and net.task_pos_embed.get(0).shape == (1, 5, 16)
    assert net.forward_task(fbank(2, SHORT), 0).shape == (2, 2)


# ---------------------------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("per_task", [False, True])
def test_state_dict_round_trip_restores_the_per_task_embeddings(per_task):
    net = two_length_model(per_task=per_task, pet=True)
    with torch.no_grad():
        for t in (0, 1):
            own = net.task_pos_embed.get(t)
            if own is not None:
                own.add_(torch.randn_like(own))
    buffer = io.BytesIO()
    torch.save(net.state_dict(), buffer)
    buffer.seek(0)
    # the resume path: same lengths and option, add_task for every task, then load_state_dict
    fresh = TaskIncrementalModel(
        tiny_backbone(), create_pet("convpass", dim=4, dim_first_task=4), task_frames={0: LONG, 1: SHORT},
        per_task_pos_embed=per_task,
    )
    fresh.add_task(0, 3)
    fresh.add_task(1, 2)
    assert not torch.equal(fresh.task_pos_embed.get(1), net.task_pos_embed.get(1))
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    for t in (0, 1):
        a, b = net.task_pos_embed.get(t), fresh.task_pos_embed.get(t)
        assert (a is None) == (b is None) and (a is None or torch.equal(a, b))
        assert isinstance(b, torch.nn.Parameter) == per_task or b is None
    for t, frames in ((0, LONG), (1, SHORT)):
        x = fbank(2, frames)
        assert torch.equal(fresh.forward_task(x, t), net.forward_task(x, t))
    # a model without the task's lengths cannot silently load it
    plain = TaskIncrementalModel(tiny_backbone(), create_pet("convpass", dim=4, dim_first_task=4))
    plain.add_task(0, 3)
    plain.add_task(1, 2)
    with pytest.raises(RuntimeError, match="task_pos_embed.1"):
        plain.load_state_dict(net.state_dict())


def test_task_specific_features_flags_every_reason_features_depend_on_the_task():
    same = TaskIncrementalModel(tiny_backbone(), task_frames={0: LONG, 1: LONG})
    same.add_task(0, 2)
    same.add_task(1, 2)
    assert not same.task_specific_features  # one backbone pass may serve every head (LwF's shortcut)
    assert two_length_model(per_task=False).task_specific_features  # task 1 has its own (frozen) embedding
    assert TaskIncrementalModel(tiny_backbone(), per_task_pos_embed=True).task_specific_features
    assert two_length_model(per_task=False, pet=True).task_specific_features


def test_a_copy_probe_gets_its_embedding_without_touching_the_model():
    # the runner's untrained-head probe: deepcopy, then add_task on the copy
    import copy

    net = TaskIncrementalModel(tiny_backbone(), task_frames={0: LONG, 1: SHORT}, per_task_pos_embed=True)
    net.add_task(0, 3)
    probe = copy.deepcopy(net)
    probe.add_task(1, 2)
    assert probe.task_pos_embed.get(1).shape == (1, 5, 16) and net.task_pos_embed.get(1) is None
    assert probe.forward_task(fbank(2, SHORT), 1).shape == (2, 2)


# --------------------------------------------------------------------------------------------------- config
def test_config_option_and_the_paper_preset():
    assert ModelConfig().per_task_pos_embed is False
    for smoke in (False, True):
        cfg = load_config("aicl-paper", smoke=smoke)
        assert cfg.model.per_task_pos_embed is True
        assert cfg.features.target_frames is None  # every dataset keeps its own length
    assert load_config("smoke").model.per_task_pos_embed is False
