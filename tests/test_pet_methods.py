"""Every PET method of issue 10: its parameter formula for ViT-B, identity at start, gsa/fta, per-task isolation.

Small and fast: the ViT-B count builds one 12-block 768-d backbone on a 1 x 1 patch grid and never runs it; the
other tests run a 2-block 32-d backbone.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

from audio_ticl.models import TaskIncrementalModel, create_model, create_pet
from audio_ticl.models.context import ForwardContext
from audio_ticl.models.pet import ConformerAdapter, iter_task_modules, merge_lora

D, L, M = 768, 12, 3072  # ViT-B


def _bottleneck(m: int) -> int:
    return 2 * D * m + m + D


#: method -> its default per-task parameter count for ViT-B, by the formula of its docstring
VIT_B_FORMULAS = {
    "lora": L * 2 * 2 * 8 * D,
    "bitfit": 2 * D + L * (7 * D + M),
    "houlsby": L * 2 * _bottleneck(64),
    "pfeiffer": L * _bottleneck(D // 16),
    "adaptformer": L * _bottleneck(64),
    "aat": L * 2 * _bottleneck(D // 4),
    "conformer": L * (3 * D * 8 + D + 8 * 31 + 5 * 8),
    "convpass": L * 2 * (2 * D * 64 + 9 * 64**2 + 2 * 64 + D),  # task 0's bottleneck, 64
    "vpt_shallow": 10 * D,
    "vpt_deep": L * 10 * D,
}
#: method -> options for the 32-d test backbone
TINY_OPTIONS = {
    "lora": {"rank": 4, "alpha": 8},
    "bitfit": {},
    "houlsby": {"bottleneck": 8},
    "pfeiffer": {"bottleneck": 8, "reduction": None},
    "adaptformer": {"bottleneck": 8},
    "aat": {},
    "conformer": {"reduction": None, "bottleneck": 4, "kernel_size": 3},
    "convpass": {"dim_first_task": 4, "dim": 4},
    "vpt_shallow": {"length": 3},
    "vpt_deep": {"length": 3},
}
METHODS = sorted(TINY_OPTIONS)
#: methods that cannot start as the frozen model (their docstrings say why): prompts take attention mass
NOT_IDENTITY = {"vpt_shallow", "vpt_deep"}


@pytest.fixture(scope="module")
def vit_b() -> nn.Module:
    torch.manual_seed(0)
    return create_model("ast_base", input_frames=32, num_mel_bins=32).eval()  # a 2 x 2 grid: ConvPass needs rows


def tiny_backbone(mixer: str = "gsa") -> nn.Module:
    torch.manual_seed(0)
    return create_model(
        "ast_custom", input_frames=64, num_mel_bins=32, embed_dim=32, depth=2, num_heads=4, mixer=mixer
    ).eval()


def fbank(batch: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn(batch, 64, 32, generator=torch.Generator().manual_seed(seed))


def test_every_pet_method_is_covered():
    from audio_ticl.models import PET_METHODS

    assert set(PET_METHODS) == set(VIT_B_FORMULAS) == set(TINY_OPTIONS)


@pytest.mark.parametrize("name", METHODS)
def test_trainable_parameters_per_task_follow_the_formula_for_vit_b(vit_b, name):
    assert vit_b.num_features == D and len(vit_b.blocks) == L and vit_b.blocks[0].mlp.fc1.out_features == M
    method = create_pet(name)
    params = method.inject(vit_b, 0)
    try:
        owned = [p for m in method.task_modules(vit_b, 0) for p in m.parameters()]
        assert {id(p) for p in params} == {id(p) for p in owned} and len(params) == len(owned)
        assert sum(p.numel() for p in params) == VIT_B_FORMULAS[name]
    finally:
        method.remove(vit_b, 0)
    assert list(iter_task_modules(vit_b)) == []


@pytest.mark.parametrize("mixer", ["gsa", "fta"])
@pytest.mark.parametrize("name", [n for n in METHODS if n not in NOT_IDENTITY])
def test_a_fresh_task_is_the_frozen_model(name, mixer):
    backbone = tiny_backbone(mixer)
    x = fbank()
    with torch.no_grad():
        plain = backbone.forward_features(x)
        method = create_pet(name, **TINY_OPTIONS[name])
        method.inject(backbone, 0)
        assert torch.equal(backbone.forward_features(x, task_id=0), plain)
        for p in [p for m in method.task_modules(backbone, 0) for p in m.parameters()]:
            p.normal_(0.0, 0.2)  # and a trained one is not: the modules are on the forward path
        assert not torch.allclose(backbone.forward_features(x, task_id=0), plain, atol=1e-4)


def _backbone_tensors(backbone: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in backbone.state_dict().items() if ".pet_" not in k}


def _train(net: TaskIncrementalModel, task: int, steps: int = 3) -> None:
    params = net.task_parameters(task)
    opt = torch.optim.SGD(params, lr=0.5)
    before = [p.detach().clone() for p in params]
    net.train()
    for step in range(steps):
        x = fbank(4, seed=10 * task + step)
        y = torch.randint(0, 3, (4,), generator=torch.Generator().manual_seed(step))
        opt.zero_grad()
        nn.functional.cross_entropy(net(x, task), y).backward()
        opt.step()
    net.eval()
    pet_before = before[2:]  # the head's weight and bias come first
    pet_after = params[2:]
    assert any(not torch.equal(a, b) for a, b in zip(pet_after, pet_before)), "training changed no PET parameter"


@pytest.mark.parametrize("mixer", ["gsa", "fta"])
@pytest.mark.parametrize("name", METHODS)
def test_two_tasks_leave_the_backbone_and_task_0_bit_identical(name, mixer):
    net = TaskIncrementalModel(tiny_backbone(mixer), create_pet(name, **TINY_OPTIONS[name]))
    for p in net.backbone.parameters():
        p.requires_grad_(False)
    frozen = _backbone_tensors(net.backbone)
    net.add_task(0, 3)
    _train(net, 0)
    task0 = [{k: v.clone() for k, v in m.state_dict().items()} for m in net.pet.task_modules(net.backbone, 0)]
    x = fbank(3, seed=99)
    with torch.no_grad():
        out0 = net(x, 0)
    net.add_task(1, 3)
    _train(net, 1)
    after = _backbone_tensors(net.backbone)
    assert list(after) == list(frozen) and all(torch.equal(after[k], frozen[k]) for k in frozen)
    now = [m.state_dict() for m in net.pet.task_modules(net.backbone, 0)]
    assert len(now) == len(task0)
    assert all(set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a) for a, b in zip(now, task0))
    with torch.no_grad():
        assert torch.equal(net(x, 0), out0)


@pytest.mark.parametrize("mixer", ["gsa", "fta"])
def test_lora_merges_into_a_copy_with_the_same_outputs(mixer):
    backbone = tiny_backbone(mixer)
    method = create_pet("lora", rank=4, alpha=8)
    for task in (0, 1):
        method.inject(backbone, task)
    with torch.no_grad():
        for task in (0, 1):
            for m in method.task_modules(backbone, task):
                m.b_q.normal_(0.0, 0.1)
                m.b_v.normal_(0.0, 0.1)
    x = fbank()
    weights = {k: v.clone() for k, v in backbone.state_dict().items()}
    with torch.no_grad():
        for task in (0, 1):
            merged = merge_lora(backbone, task, method)
            assert list(iter_task_modules(merged)) == []
            unmerged = backbone.forward_features(x, task_id=task)
            torch.testing.assert_close(merged.forward_features(x), unmerged, atol=1e-5, rtol=0)
            assert not torch.allclose(unmerged, backbone.forward_features(x), atol=1e-4)
    assert all(torch.equal(v, weights[k]) for k, v in backbone.state_dict().items())  # the original is untouched


def test_lora_leaves_the_key_projection_alone():
    backbone = tiny_backbone()
    method = create_pet("lora", rank=2)
    method.inject(backbone, 0)
    module = method.task_modules(backbone, 0)[0]
    with torch.no_grad():
        module.b_q.normal_()
        module.b_v.normal_()
        delta = module(torch.randn(2, 5, 32), ForwardContext(0, (2, 2), 1))
    assert torch.count_nonzero(delta[..., 32:64]) == 0 and torch.count_nonzero(delta[..., :32]) > 0


def test_the_conformer_conv_runs_along_time_within_each_frequency_row():
    torch.manual_seed(0)
    adapter = ConformerAdapter(16, 4, kernel_size=3).eval()
    nn.init.normal_(adapter.up.weight)
    grid, prefix = (3, 5), 1
    h = torch.randn(1, prefix + 15, 16)
    ctx = ForwardContext(0, grid, prefix)
    bumped = h.clone()
    bumped[0, prefix + 1 * 5 + 2] += 1.0  # the patch at (f=1, t=2)
    with torch.no_grad():
        changed = (adapter(bumped, ctx) - adapter(h, ctx)).abs().sum(-1)[0]
    rows = changed[prefix:].reshape(3, 5)
    assert changed[0] == 0  # the prefix token sees no patch
    assert torch.count_nonzero(rows[0]) == 0 and torch.count_nonzero(rows[2]) == 0  # other frequency rows
    assert torch.count_nonzero(rows[1]) == 3 and rows[1, 0] == 0 and rows[1, 4] == 0  # t = 1..3 (kernel 3)


def _vpt_reference(backbone: nn.Module, x: torch.Tensor, prompts: list[torch.Tensor], deep: bool) -> torch.Tensor:
    """VPT written out by hand (Jia et al. 2022, Sec. 3.2): prompts after CLS, replaced per block when deep,
    counted as prefix tokens by every block, dropped before the final norm."""
    grid, prefix, p = backbone.patch_grid, backbone.num_prefix_tokens, prompts[0].shape[1]
    tokens = backbone.patch_embed(x)
    z = torch.cat([backbone.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1) + backbone.pos_embed
    z = torch.cat([z[:, :prefix], prompts[0].expand(x.shape[0], -1, -1), z[:, prefix:]], dim=1)
    for i, block in enumerate(backbone.blocks):
        if deep and i > 0:
            z = torch.cat([z[:, :prefix], prompts[i].expand(x.shape[0], -1, -1), z[:, prefix + p :]], dim=1)
        z = block(z, grid, prefix + p)
    return backbone.norm(torch.cat([z[:, :prefix], z[:, prefix + p :]], dim=1))


@pytest.mark.parametrize("mixer", ["gsa", "fta"])
@pytest.mark.parametrize("deep", [False, True])
def test_vpt_inserts_replaces_and_drops_its_prompts_as_the_paper_says(mixer, deep):
    backbone = tiny_backbone(mixer)
    backbone.blocks.append(create_model("ast_custom", input_frames=64, num_mel_bins=32, embed_dim=32, depth=1,
                                        num_heads=4, mixer=mixer).blocks[0])  # 3 blocks: first, middle, last
    method = create_pet("vpt_deep" if deep else "vpt_shallow", length=3)
    params = method.inject(backbone, 0)
    assert len(params) == (3 if deep else 1) and all(p.shape == (1, 3, 32) for p in params)
    x = fbank()
    with torch.no_grad():
        got = backbone.forward_features(x, task_id=0)
        want = _vpt_reference(backbone, x, params, deep)
        plain = backbone.forward_features(x)
    assert got.shape == plain.shape  # the prompts are gone from the output
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)
    assert not torch.allclose(got, plain, atol=1e-4)
    if deep:  # the last block's own prompts matter: a deep block replaces what the previous block made
        with torch.no_grad():
            params[-1].add_(torch.randn_like(params[-1]))  # not a constant: LayerNorm would remove it
            assert not torch.allclose(backbone.forward_features(x, task_id=0), got, atol=1e-4)


def test_vpt_prompts_are_seen_by_every_fta_patch_token():
    """FTA lets a patch attend to its row, its column and every prefix token: the prompts are prefix tokens."""
    backbone = tiny_backbone("fta")
    method = create_pet("vpt_shallow", length=2)
    (prompts,) = method.inject(backbone, 0)
    x = fbank(1)
    block = backbone.blocks[0]
    seen: list[torch.Tensor] = []
    handle = block.mixer.register_forward_hook(lambda m, a, out: seen.append(out))
    with torch.no_grad():
        backbone.forward_features(x, task_id=0)
        prompts.add_(torch.randn_like(prompts))
        backbone.forward_features(x, task_id=0)
    handle.remove()
    first, second = seen  # block 0's mixer output in each forward
    patch_change = (first - second).abs().sum(-1)[0, 1 + 2 :]
    assert first.shape[1] == 1 + 2 + backbone.num_patches
    assert torch.count_nonzero(patch_change) == backbone.num_patches


def test_vpt_refuses_blocks_without_a_prefix_count():
    class Plain(nn.Module):
        num_features = 8

        def __init__(self):
            super().__init__()
            self.blocks = nn.ModuleList([nn.Linear(8, 8)])

    with pytest.raises(Exception, match="num_prefix"):
        create_pet("vpt_deep").inject(Plain(), 0)


def test_pfeiffer_reads_the_blocks_output_after_the_residual_add():
    """Pfeiffer's adapter sits after the feed-forward's residual add (AdapterHub on pre-LN ViTs: x + h +
    up(ReLU(down(x + h)))), not on the MLP output h alone (which is Houlsby's second adapter)."""
    backbone = tiny_backbone()
    method = create_pet("pfeiffer", bottleneck=4, reduction=None)
    method.inject(backbone, 0)
    block = backbone.blocks[0]
    adapter = method.task_modules(backbone, 0)[0]
    with torch.no_grad():
        adapter.up.weight.normal_()
        z = torch.randn(2, 1 + backbone.num_patches, 32)
        grid = backbone.patch_grid
        y = block(z, grid, 1)  # no forward context: the plain block
        from audio_ticl.models.context import forward_context

        with forward_context(ForwardContext(0, grid, 1)):
            got = block(z, grid, 1)
        want = y + adapter.up(torch.relu(adapter.down(y)))
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


@pytest.mark.parametrize("name", METHODS)
def test_a_rebuilt_model_loads_the_saved_state_and_gives_the_same_outputs(name):
    """What ``--resume`` does: rebuild the model task by task, then load the checkpoint's state dict strictly."""
    def build() -> TaskIncrementalModel:
        net = TaskIncrementalModel(tiny_backbone(), create_pet(name, **TINY_OPTIONS[name]))
        for task in (0, 1):
            net.add_task(task, 3)
        return net.eval()

    saved = build()
    with torch.no_grad():
        for p in saved.parameters():
            p.add_(0.05 * torch.randn_like(p))  # trained-looking: every tensor differs from a fresh build
    fresh = build()
    fresh.load_state_dict(saved.state_dict(), strict=True)
    x = fbank(3, seed=7)
    with torch.no_grad():
        for task in (0, 1):
            assert torch.equal(fresh(x, task), saved(x, task))
