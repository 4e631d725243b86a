"""The pet-compare presets: every registered PET method is a row, both datasets run the same methods, every
method searches its learning rate under one budget, and the reference rows are the existing strategies."""
from __future__ import annotations

import dataclasses

import pytest

from audio_ticl.benchmark.config import load_config
from audio_ticl.models import PET_METHODS

PRESETS = ("pet-compare", "pet-compare-esc50")


def _methods(preset: str) -> list[dict]:
    cfg = load_config(preset=preset, overrides=["data.root=/nonexistent"])
    return [dataclasses.asdict(m) for m in cfg.methods], cfg


def test_every_registered_pet_method_is_a_row_with_its_learning_rate_searched():
    methods, cfg = _methods("pet-compare")
    assert {m["pet"] for m in methods if m["pet"]} == set(PET_METHODS)
    assert {m["strategy"] for m in methods if not m["pet"]} == {"linear_probe", "finetune"}
    assert all(m["strategy"] == "adapter_incremental" for m in methods if m["pet"])
    assert all(list(m["search"]) == ["train.lr"] and len(m["search"]["train.lr"]) == cfg.tuning.budget
               for m in methods)
    assert {m["mixer"] for m in methods if m["pet"] == "convpass"} == {"gsa", "fta"}


@pytest.mark.parametrize("preset", PRESETS[1:])
def test_both_datasets_compare_the_same_methods(preset):
    assert _methods(preset)[0] == _methods("pet-compare")[0]
    assert _methods(preset)[1].tuning == _methods("pet-compare")[1].tuning


@pytest.mark.parametrize("ssamba, ast", [("ssamba-compare", "pet-compare"),
                                         ("ssamba-compare-esc50", "pet-compare-esc50")])
def test_the_ssamba_presets_differ_from_their_ast_rows_only_in_the_backbone(ssamba, ast):
    """Same data, scenario, features, training, upstream recipe and search; each SSAMBA method is the AST preset's
    method of that name with the mamba mixer; the backbone is as wide, with twice the layers."""
    s_methods, s_cfg = _methods(ssamba)
    a_methods, a_cfg = _methods(ast)
    for section in ("data", "scenario", "features", "train", "tuning"):
        assert getattr(s_cfg, section) == getattr(a_cfg, section), section
    by_name = {m["name"]: m for m in a_methods}
    for method in s_methods:
        assert {**method, "mixer": "gsa"} == by_name[method["name"]]
    s_model, a_model = dataclasses.asdict(s_cfg.model), dataclasses.asdict(a_cfg.model)
    assert (s_model.pop("name"), a_model.pop("name")) == ("ssamba_custom", "ast_custom")
    assert (s_model.pop("depth"), a_model.pop("depth")) == (8, 4)
    assert (s_model.pop("num_heads"), a_model.pop("num_heads")) == (None, 4)
    assert s_model == a_model  # width, patches, pooling, init, upstream recipe
