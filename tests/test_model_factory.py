"""The backbone factory and its init registry (``models.factory`` / ``models.init``): random, registered sources
(``upstream`` from the benchmark), converter specs and state-dict files, all loaded after the random init and all
position embeddings resampled by ``resample_pos_embed``."""
from __future__ import annotations

import pytest
import torch

from audio_ticl.models import InitWeights, create_backbone, create_model, init_backbone, list_inits
from audio_ticl.models import init as init_registry
from audio_ticl.models.convert import CONVERTERS
from audio_ticl.models.errors import ModelError, UnknownNameError
from audio_ticl.models.init import register_init
from audio_ticl.models.pos_embed import resample_pos_embed

GEOMETRY = {"embed_dim": 16, "depth": 1, "num_heads": 2, "num_mel_bins": 32}


def build(frames: int = 64, seed: int = 0, **kwargs):
    torch.manual_seed(seed)
    return create_backbone("ast_custom", input_frames=frames, **GEOMETRY, **kwargs)


def same_state(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return list(sa) == list(sb) and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_random_is_the_models_own_init_and_draws_the_same_numbers():
    torch.manual_seed(0)
    plain = create_model("ast_custom", input_frames=64, **GEOMETRY)
    after_plain = torch.get_rng_state()
    assert same_state(build(init="random"), plain) and torch.equal(torch.get_rng_state(), after_plain)
    assert same_state(build(), plain)


def test_a_state_dict_file_loads_after_the_random_init(tmp_path):
    source = build(seed=7)
    path = tmp_path / "backbone.pt"
    torch.save(source.state_dict(), path)
    torch.manual_seed(0)
    create_model("ast_custom", input_frames=64, **GEOMETRY)
    expected_rng = torch.get_rng_state()
    loaded = build(init=str(path))
    assert same_state(loaded, source) and torch.equal(torch.get_rng_state(), expected_rng)
    torch.save({"state_dict": source.state_dict()}, path)  # a wrapped checkpoint
    assert same_state(build(init=str(path)), source)


def test_file_errors_name_the_spec_and_the_choices(tmp_path):
    with pytest.raises(UnknownNameError, match=r"init 'nowhere.pt': expected one of \[.*'random'.*\], <source>:"):
        build(init="nowhere.pt")
    path = tmp_path / "other.pt"
    torch.save(build(frames=128).state_dict(), path)  # another grid, and a file does not say which
    with pytest.raises(ModelError, match=r"init '.*other.pt' does not fit ASTBackbone: .*pos_embed"):
        build(init=str(path))


def test_a_registered_source_with_another_grid_is_resampled_by_the_one_function(monkeypatch):
    source = build(frames=128, seed=3)  # grid (2, 12)
    calls = []

    def pretrained(backbone, *, scale: float = 1.0):
        calls.append(scale)
        return InitWeights(source.state_dict(), grid=source.patch_grid)

    monkeypatch.setitem(init_registry._SOURCES, "test_pretrained", pretrained)
    target = build(init="test_pretrained", init_options={"test_pretrained": {"scale": 2.0}, "other": {"x": 1}})
    assert calls == [2.0] and target.patch_grid == (2, 5)  # only its own options reach a source
    expected = resample_pos_embed(source.pos_embed.detach(), (2, 12), (2, 5), 1)
    assert torch.equal(target.pos_embed.detach(), expected)
    for key, value in source.state_dict().items():
        if key != "pos_embed":
            assert torch.equal(target.state_dict()[key], value), key


def test_a_converter_spec_goes_to_its_converter(monkeypatch):
    source = build(seed=5)
    seen = []

    def convert(model_name, file, target):
        seen.append((model_name, file))
        return source.state_dict()

    monkeypatch.setitem(CONVERTERS, "fake", convert)
    assert same_state(init_backbone(build(), "fake:some_model"), source) and seen == [("some_model", None)]


def test_the_benchmark_registers_upstream():
    import audio_ticl.benchmark.upstream as upstream

    assert {"random", "upstream"} <= set(list_inits())
    assert init_registry.get_init("upstream") is upstream.upstream_init


def test_registration_errors():
    with pytest.raises(ModelError, match="bare word"):
        register_init("a:b")(lambda backbone: None)
    with pytest.raises(ModelError, match="'random' is registered twice"):
        register_init("random")(lambda backbone: None)


def test_the_upstream_cache_format_loads_with_weights_only(tmp_path):
    """What ``benchmark.upstream`` writes (tensors, numbers, strings, lists, tuples) reads back weights_only."""
    backbone = build()
    checkpoint = {
        "state_dict": {k: v.cpu() for k, v in backbone.state_dict().items()},
        "input_frames": 64,
        "grid": tuple(backbone.patch_grid),
        "num_prefix_tokens": 1,
        "val_accuracy": 0.5,
        "classes": ["a", "b"],
        "seconds": 1.0,
    }
    torch.save(checkpoint, tmp_path / "up.pt")
    back = torch.load(tmp_path / "up.pt", weights_only=True)
    assert back["grid"] == (2, 5) and back["classes"] == ["a", "b"]
    assert all(torch.equal(back["state_dict"][k], v) for k, v in checkpoint["state_dict"].items())
