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


@pytest.mark.parametrize("compare, base", [("pretrain-compare", "fsdd-cpu"), ("pretrain-compare-esc50", "esc50-cpu")])
def test_the_pretrain_compare_presets_are_their_base_with_two_methods_under_one_search(compare, base):
    """The issue's comparison: the base preset's data, features, model and training, with adapter_incremental and
    linear_probe only, each searching the base's learning rates under its budget."""
    methods, cfg = _methods(compare)
    base_methods, base_cfg = _methods(base)
    for section in ("data", "scenario", "features", "model", "train", "tuning"):
        assert getattr(cfg, section) == getattr(base_cfg, section), section
    assert [m["strategy"] for m in methods] == ["adapter_incremental", "linear_probe"]
    assert methods[0]["pet"] == "houlsby"  # a sequence PET method: it applies to frame tokens as to patches
    assert all(m["search"] == base_methods[0]["search"] for m in methods)
    assert _methods("pretrain-compare")[0] == _methods("pretrain-compare-esc50")[0]


def test_the_pretraining_presets_read_no_downstream_validation_or_test_clip():
    """Both objectives pretrain on the same clips: FSDD's training takes and ESC-50's folds 1-3, the folds that
    esc50-cpu trains on (its 4 and 5 are validation and test)."""
    from audio_ticl.benchmark.pretrain.schema import load_pretrain_config

    esc_train = load_config(preset="esc50-cpu", overrides=["data.root=/x"]).data.options["train_folds"]
    configs = [load_pretrain_config(name) for name in ("mspm-fsdd-esc10", "mfcc-fsdd-esc10")]
    for cfg in configs:
        assert [(s.source, s.splits) for s in cfg.sources] == [("fsdd", ["train"]), ("esc50", ["train"])]
        assert cfg.sources[1].options["train_folds"] == esc_train
        assert cfg.window_frames == load_config(preset="fsdd-cpu", overrides=["data.root=/x"]).features.target_frames
    assert configs[0].sources == configs[1].sources
    assert (configs[0].objective, configs[1].objective) == ("mspm", "frame_reconstruction")
