"""PET methods on SSAMBA: the ones that apply attach to the Mamba layers by name (per-family targets), start as the
frozen model, change it through every module they add, and train only themselves; the ones that do not apply say
why, from the model and from a config, before any work."""
from __future__ import annotations

import pytest
import torch

from audio_ticl.models import create_model, create_pet, list_models
from audio_ticl.models.errors import ModelError
from audio_ticl.models.pet import PET_METHODS
from audio_ticl.models.pet.lora import merge_lora
from audio_ticl.models.registry import model_family

DIM, FRAMES = 32, 48  # 16 x 16 patches at stride 16: an 8 x 3 grid
APPLY = ["bitfit", "convpass", "houlsby", "lora"]
NOT_APPLY = ["aat", "adaptformer", "conformer", "pfeiffer", "vpt_deep", "vpt_shallow"]


def _model(depth: int = 2) -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("ssamba_custom", input_frames=FRAMES, embed_dim=DIM, depth=depth, fstride=16, tstride=16)
    return model.eval().requires_grad_(False)


def test_every_method_either_applies_to_ssamba_or_says_why():
    assert sorted(PET_METHODS) == sorted(APPLY + NOT_APPLY)  # a new method must be placed in one list
    for name in NOT_APPLY:
        with pytest.raises(ModelError, match=rf"PET method '{name}' does not apply to SSAMBABackbone \(mamba"):
            create_pet(name).inject(_model(), 0)
    for name in APPLY:
        assert create_pet(name).not_applicable("mamba") == ""


@pytest.mark.parametrize("name", APPLY)
def test_a_method_starts_as_the_frozen_model_and_changes_it_through_every_module(name):
    model = _model()
    x = torch.randn(2, FRAMES, 128)
    frozen = model(x)
    method = create_pet(name)
    params = method.inject(model, 0)
    assert params and all(p.requires_grad for p in params)
    # zero init: the identity; bit for bit, except that BitFit's hook on the conv moves it from the CPU kernel to
    # the module (the same sum in another order)
    exact = name != "bitfit"
    torch.testing.assert_close(model(x, task_id=0), frozen, rtol=0 if exact else 1e-5, atol=0 if exact else 1e-6)
    with torch.no_grad():
        for p in params:
            p.add_(torch.randn_like(p) * 0.05)
    out = model(x, task_id=0)
    assert not torch.allclose(out, frozen)
    out.square().sum().backward()
    silent = [i for i, p in enumerate(params) if p.grad is None or not p.grad.abs().sum() > 0]
    assert not silent, f"{name}: parameters {silent} of {len(params)} never reached the output (a hook not called)"
    assert all(p.grad is None for p in model.parameters() if not p.requires_grad)


def test_targets_are_the_mamba_layers_modules():
    model = _model()
    e = 2 * DIM
    bitfit = create_pet("bitfit").inject(model, 0)
    # patch conv D; per layer: norm D, conv1d E, conv1d_b E, dt_proj E, dt_proj_b E; final norm D
    assert sum(p.numel() for p in bitfit) == DIM + 2 * (DIM + 4 * e) + DIM
    lora = create_pet("lora", rank=4).inject(_model(), 0)
    assert sum(p.numel() for p in lora) == 2 * 4 * ((DIM + 2 * e) + (e + DIM))  # in_proj and out_proj per layer
    houlsby_model = _model()
    create_pet("houlsby", bottleneck=4).inject(houlsby_model, 0)
    sites = [n for n, m in houlsby_model.named_modules() if n.endswith("pet_houlsby")]
    assert sites == ["blocks.0.mixer.pet_houlsby", "blocks.1.mixer.pet_houlsby"]


def test_the_reversed_layer_of_a_pair_gives_its_adapters_the_tokens_in_their_own_order():
    """ConvPass reads the patch grid: the second layer of a pair (run on the flipped sequence in SSAMBA) must hand
    its adapter norm(s) in the tokens' order, not flipped."""
    model = _model()
    create_pet("convpass", dim_first_task=4, dim=4).inject(model, 0)
    seen = {}
    model.blocks[0].norm.register_forward_hook(lambda m, a, out: seen.setdefault("stream", a[0]))
    adapter = model.blocks[1].mixer.pet_convpass.adapters["0"]
    adapter.register_forward_hook(lambda m, a, out: seen.setdefault("adapter_input", a[0]))
    model(torch.randn(1, FRAMES, 128), task_id=0)
    torch.testing.assert_close(seen["adapter_input"], model.blocks[1].norm(seen["stream"]))


def test_lora_merges_into_in_proj_and_out_proj():
    model = _model()
    params = create_pet("lora").inject(model, 0)
    with torch.no_grad():
        for p in params:
            p.add_(torch.randn_like(p) * 0.05)
    x = torch.randn(2, FRAMES, 128)
    merged = merge_lora(model, 0)
    assert not [n for n, _ in merged.named_modules() if "pet_lora" in n]
    torch.testing.assert_close(merged(x), model(x, task_id=0), rtol=1e-4, atol=1e-5)


def test_every_registered_model_declares_its_family_as_its_class_does():
    for name in list_models():
        model = create_model(name, input_frames=FRAMES, fstride=16, tstride=16, embed_dim=DIM, depth=2, num_heads=2)
        assert model_family(name) == model.pet_family, name
        for method in PET_METHODS.values():  # every family a model has is one every method has an answer for
            assert "declares no targets" not in method.not_applicable(model.pet_family), (name, method.name)


def test_a_config_with_a_pet_method_that_does_not_apply_fails_before_any_work(tmp_path):
    from audio_ticl.benchmark.config import load_config
    from audio_ticl.benchmark.errors import ConfigError

    def config(pet: str):
        path = tmp_path / f"{pet}.yaml"
        path.write_text(
            "extends: smoke\n"
            "model: {name: ssamba_custom, depth: 2, num_heads: null}\n"
            f"methods: [{{name: m, strategy: adapter_incremental, mixer: mamba, pet: {pet}}}]\n"
        )
        return path

    with pytest.raises(ConfigError, match=r"'methods.0.pet': PET method 'adaptformer' does not apply to model "
                                          r"'ssamba_custom' \(mamba layers\): AdaptMLP .* It takes: bitfit, "
                                          r"convpass, houlsby, lora"):
        load_config(config_file=config("adaptformer"))
    assert load_config(config_file=config("houlsby")).methods[0].pet == "houlsby"


def test_the_upstream_backbone_trains_with_the_models_own_layers():
    from audio_ticl.benchmark.upstream import upstream_mixer

    assert upstream_mixer("ssamba_custom") == "mamba" and upstream_mixer("ssamba_tiny") == "mamba"
    assert upstream_mixer("ast_custom") == "gsa"  # every attention mixer then starts from the same weights


def test_the_readme_table_says_what_the_registry_does():
    """Every PET method has a row in the README's SSAMBA table: "yes" with its targets, or "no" with its reason."""
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    rows = {line.split("|")[1].strip().strip("`"): line for line in readme.splitlines()
            if line.startswith("| `") and "| yes |" in line or line.startswith("| `") and "| no |" in line}
    for name, cls in PET_METHODS.items():
        assert name in rows, f"README's SSAMBA table has no row for {name}"
        reason = cls.not_applicable("mamba")
        if reason:
            assert f"| no | {reason} |" in rows[name], name
        else:
            targets = ", ".join(f"`{p}`" for p in cls.family_targets["mamba"])
            assert f"| yes | {targets} |" in rows[name], name
