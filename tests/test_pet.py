"""PET by module name (PEFT's pattern): targets matched by pattern, one module per task, hooks, exact removal.

A toy method targets modules the backbone never declared as PET sites (``blocks.*.norm1``, ``patch_embed.proj``);
ConvPass is checked against the pre-refactor block arithmetic written out by hand from the block's submodules.
"""
from __future__ import annotations

import copy

import pytest
import torch
from einops import rearrange
from torch import nn

from audio_ticl.models import TaskIncrementalModel, create_model, create_pet
from audio_ticl.models.context import ForwardContext, current_context
from audio_ticl.models.errors import ModelError
from audio_ticl.models.pet import PETMethod, TaskModules, iter_task_modules, match_targets


def tiny_backbone(mixer: str = "gsa", **kwargs) -> nn.Module:
    torch.manual_seed(0)
    kwargs = {"embed_dim": 32, "depth": 2, "num_heads": 4, "num_mel_bins": 32, **kwargs}
    return create_model("ast_custom", input_frames=64, mixer=mixer, **kwargs).eval()


def fbank(batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 64, 32, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------------ a toy method
class Shift(nn.Module):
    """Sequential toy module: adds a learned vector to its target's output; counts its calls."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.shift = nn.Parameter(torch.randn(dim))
        self.calls = 0

    def forward(self, out: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        self.calls += 1
        return out + self.shift


class ParallelPatchConv(nn.Module):
    """Parallel toy module: a second patch projection with the target's geometry, added to the target's output."""

    def __init__(self, target: nn.Conv2d) -> None:
        super().__init__()
        self.conv = nn.Conv2d(target.in_channels, target.out_channels, target.kernel_size, target.stride)
        self.calls = 0

    def forward(self, x: torch.Tensor, ctx: ForwardContext) -> torch.Tensor:
        self.calls += 1
        assert ctx.grid == (2, 5) and ctx.num_prefix == 1  # the backbone's forward handed its geometry on
        return self.conv(x)


class ToyShift(PETMethod):
    """Targets the LayerNorm before every mixer: never a PET site of the backbone."""

    name = "toy_shift"
    targets = ("blocks.*.norm1",)
    placement = "sequential"

    def create_module(self, backbone, target_name, target, task_id):
        return Shift(target.normalized_shape[0])


class ToyPatchConv(PETMethod):
    name = "toy_patch_conv"
    targets = ("patch_embed.proj",)
    placement = "parallel"

    def create_module(self, backbone, target_name, target, task_id):
        return ParallelPatchConv(target)


@pytest.mark.parametrize("method", [ToyShift(), ToyPatchConv()], ids=lambda m: m.name)
def test_a_toy_method_on_undeclared_modules(method):
    backbone = tiny_backbone()
    x = fbank()
    plain = backbone.forward_features(x)
    keys = list(backbone.state_dict())
    before = {id(p) for p in backbone.parameters()}

    new = {t: method.inject(backbone, t) for t in (0, 1)}
    for t in (0, 1):  # exactly the new parameters, trainable, owned by that task only
        owned = [p for m in method.task_modules(backbone, t) for p in m.parameters()]
        assert [id(p) for p in new[t]] == [id(p) for p in owned] and all(p.requires_grad for p in new[t])
        assert not ({id(p) for p in new[t]} & before)
    assert {id(p) for p in backbone.parameters()} == before | {id(p) for t in (0, 1) for p in new[t]}
    assert len(method.task_modules(backbone, 0)) == len(match_targets(backbone, method.targets))

    def calls(t):
        return [m.calls for m in method.task_modules(backbone, t)]

    with torch.no_grad():
        out1 = backbone.forward_features(x, task_id=1)
    assert calls(1) == [1] * len(calls(1)) and calls(0) == [0] * len(calls(0))  # only the running task's modules
    assert not torch.allclose(out1, plain)
    assert torch.equal(backbone.forward_features(x), plain)  # no task: the plain backbone, bit for bit
    assert calls(0) == [0] * len(calls(0)) and current_context() is None

    method.remove(backbone, 0)
    assert method.task_modules(backbone, 0) == [] and torch.equal(backbone.forward_features(x, task_id=1), out1)
    method.remove(backbone, 1)
    for task in (None, 0, 1):
        assert torch.equal(backbone.forward_features(x, task_id=task), plain)
    assert list(backbone.state_dict()) == keys and list(iter_task_modules(backbone)) == []
    assert all(not m._forward_hooks for m in backbone.modules())  # the hooks went with the last task


def test_task_modules_live_in_a_moduledict_under_their_target():
    backbone = tiny_backbone()
    ToyShift().inject(backbone, 3)
    slot = backbone.blocks[1].norm1.pet_toy_shift
    assert isinstance(slot, TaskModules) and isinstance(slot.adapters, nn.ModuleDict) and list(slot.adapters) == ["3"]
    assert "blocks.1.norm1.pet_toy_shift.adapters.3.shift" in backbone.state_dict()


def test_patterns_match_whole_names_component_by_component():
    backbone = tiny_backbone()
    create_pet("convpass", dim_first_task=4, dim=4).inject(backbone, 0)
    names = [n for n, _ in match_targets(backbone, ("blocks.*.mlp", "blocks.0.*"))]
    assert names[:2] == ["blocks.0.mlp", "blocks.1.mlp"]  # pattern order, then the model's order; PET never matched
    assert names[2:] == [f"blocks.0.{n}" for n in ("norm1", "mixer", "drop_path1", "norm2", "drop_path2")]
    assert match_targets(backbone, ("blocks.*.fc1",)) == []  # fc1 sits one level deeper: blocks.*.mlp.fc1


def test_bad_targets_and_repeated_tasks_are_errors_that_change_nothing():
    backbone = tiny_backbone()

    class Nothing(ToyShift):
        name = "nothing"
        targets = ("blocks.*.lora",)

    class Container(ToyShift):
        name = "container"
        targets = ("blocks",)

    with pytest.raises(ModelError, match=r"nothing: .* no module matching the targets \('blocks.\*.lora',\)"):
        Nothing().inject(backbone, 0)
    with pytest.raises(ModelError, match="'blocks' .* is a ModuleList"):
        Container().inject(backbone, 0)
    method = ToyShift()
    method.inject(backbone, 0)
    state = torch.get_rng_state()
    with pytest.raises(ModelError, match=r"task 0 already has PET modules on \['blocks.0.norm1', 'blocks.1.norm1'\]"):
        method.inject(backbone, 0)
    assert torch.equal(torch.get_rng_state(), state) and len(method.task_modules(backbone, 0)) == 2


def test_an_error_inside_a_pet_module_leaves_no_context_behind():
    backbone = tiny_backbone()
    method = ToyShift()
    method.inject(backbone, 0)

    def boom(*args):
        raise RuntimeError("boom")

    method.task_modules(backbone, 0)[0].forward = boom
    with pytest.raises(RuntimeError, match="boom"):
        backbone(fbank(), task_id=0)
    assert current_context() is None


def test_a_deep_copy_runs_its_own_modules():
    """LwF's teacher is a deepcopy: its hooks must find the copy's modules, and removing in one leaves the other."""
    backbone = tiny_backbone()
    method = ToyShift()
    method.inject(backbone, 0)
    x = fbank()
    out = backbone(x, task_id=0)
    twin = copy.deepcopy(backbone)
    with torch.no_grad():
        for m in method.task_modules(twin, 0):
            m.shift.add_(1.0)
    assert torch.equal(backbone(x, task_id=0), out) and not torch.allclose(twin(x, task_id=0), out)
    method.remove(twin, 0)
    assert torch.equal(backbone(x, task_id=0), out) and torch.equal(twin(x, task_id=0), backbone(x))


# ------------------------------------------------------------------------------------------------ ConvPass
def _convpass_by_hand(a: nn.Module, h: torch.Tensor, grid: tuple[int, int], p: int) -> torch.Tensor:
    """AI-CL's Convpass from the adapter's submodules: down, QuickGELU, 3x3 conv (prefix as 1x1 maps), QuickGELU,
    dropout, up, scale."""
    z = a.down(h)
    z = z * torch.sigmoid(1.702 * z)
    prefix = rearrange(z[:, :p], "b p c -> (b p) c 1 1")
    patches = rearrange(z[:, p:], "b (f t) c -> b c f t", f=grid[0])
    prefix = rearrange(a.conv(prefix), "(b p) c 1 1 -> b p c", p=p)
    patches = rearrange(a.conv(patches), "b c f t -> b (f t) c")
    z = torch.cat([prefix, patches], dim=1)
    return a.up(a.drop(z * torch.sigmoid(1.702 * z))) * a.scale


def _pre_refactor_forward(net: TaskIncrementalModel, x: torch.Tensor, task: int) -> torch.Tensor:
    """The block arithmetic before PET moved onto hooks: ``y = mixer(h); y = y + site(h)``, the same for the MLP,
    then drop_path, then the residual. Submodules are called outside a backbone forward, so no hook acts."""
    b = net.backbone
    grid, p = b.patch_grid, b.num_prefix_tokens
    tokens = b.patch_embed(x)
    prefix = torch.cat([b.cls_token, b.dist_token], 1) if b.dist_token is not None else b.cls_token
    h = torch.cat([prefix.expand(tokens.shape[0], -1, -1), tokens], dim=1) + b.pos_embed
    for block in b.blocks:
        attn, mlp = (m.pet_convpass.adapters[str(task)] for m in (block.mixer, block.mlp))
        n = block.norm1(h)
        y = block.mixer(n, grid, p)
        y = y + _convpass_by_hand(attn, n, grid, p)
        h = h + block.drop_path1(y)
        n = block.norm2(h)
        y = block.mlp(n)
        y = y + _convpass_by_hand(mlp, n, grid, p)
        h = h + block.drop_path2(y)
    return net.heads[str(task)](b.forward_head(b.norm(h)))


@pytest.mark.parametrize("train", [False, True], ids=["eval", "train_dropout"])
@pytest.mark.parametrize("mixer", ["gsa", "fta"])
def test_convpass_gives_the_pre_refactor_numbers(mixer, train):
    net = TaskIncrementalModel(tiny_backbone(mixer, distill_token=True, pooling="cls_dist", drop_path=0.1),
                               create_pet("convpass", dim_first_task=8, dim=4, dropout=0.3))
    net.add_task(0, 3)
    net.add_task(1, 2)
    with torch.no_grad():
        for m in net.pet.task_modules(net.backbone, 0) + net.pet.task_modules(net.backbone, 1):
            nn.init.normal_(m.up.weight, std=0.2)  # zero-init up-projections would hide the adapters
    net.train(train)
    x = fbank(3)
    for task in (0, 1):
        torch.manual_seed(5)  # dropout and drop_path draw in the same order on both paths
        ours = net.forward_task(x, task)
        torch.manual_seed(5)
        assert torch.equal(ours, _pre_refactor_forward(net, x, task))


def test_convpass_injects_in_the_pre_refactor_order():
    """All mixer adapters first, then all MLP adapters (the random init order); the model lists them per block."""
    backbone = tiny_backbone()
    method = create_pet("convpass", dim_first_task=8, dim=4)
    params = method.inject(backbone, 0)
    modules = method.task_modules(backbone, 0)
    names = {id(m): n for n, m in backbone.named_modules()}
    assert [names[id(m)] for m in modules] == [
        f"blocks.{i}.{t}.pet_convpass.adapters.0" for i in range(2) for t in ("mixer", "mlp")
    ]
    by_creation = [modules[0], modules[2], modules[1], modules[3]]
    assert [id(p) for p in params] == [id(p) for m in by_creation for p in m.parameters()]
