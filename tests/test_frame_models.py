"""Frame models (tokens as tall as the input: SSAST's 128 x 2 frames, the MFCC-gram transformer's single MFCC
frames) have no frequency x time grid: FTA and ConvPass refuse them with the reason, from the model and from a
config, while the sequence PET methods attach; the MFCC-gram encoder has the paper's dimensions."""
from __future__ import annotations

import pytest
import torch

from audio_ticl.models import create_model, create_pet
from audio_ticl.models.errors import ModelError

FRAMES = {"patch_size": (128, 2), "fstride": 128, "tstride": 2}


def test_the_mfcc_gram_encoder_has_the_papers_dimensions():
    model = create_model("mfcc_gram", input_frames=64, num_mel_bins=40, patch_size=(40, 1), fstride=40, tstride=1)
    assert (model.embed_dim, len(model.blocks), model.blocks[0].mixer.num_heads) == (512, 3, 8)
    assert model.blocks[0].mlp.fc1.out_features == 2048
    assert model.patch_grid == (1, 64)  # one MFCC frame a token
    assert model(torch.randn(2, 64, 40)).shape == (2, 512)


def test_fta_and_convpass_refuse_frame_tokens_and_sequence_methods_attach():
    with pytest.raises(ModelError, match=r"mixer 'fta' needs a frequency x time patch grid; .*grid 1 x 32"):
        create_model("ast_custom", input_frames=64, embed_dim=32, depth=1, num_heads=2, mixer="fta", **FRAMES)
    model = create_model("ast_custom", input_frames=64, embed_dim=32, depth=1, num_heads=2, **FRAMES)
    with pytest.raises(ModelError, match=r"convpass: its 3x3 conv runs on the frequency x time patch grid"):
        create_pet("convpass").inject(model, 0)
    for name in ("houlsby", "lora", "bitfit", "conformer"):
        assert create_pet(name).inject(model, 0)


def test_a_config_asking_for_fta_or_convpass_on_frames_fails_before_any_work(tmp_path):
    from audio_ticl.benchmark.config import load_config
    from audio_ticl.benchmark.errors import ConfigError

    def config(method: str):
        path = tmp_path / "frames.yaml"
        path.write_text(
            "extends: smoke\n"
            "model: {patch_size: [128, 2], fstride: 128, tstride: 2}\n"
            f"methods: [{method}]\n"
        )
        return path

    with pytest.raises(ConfigError, match=r"'methods.0.mixer': 'fta' needs a frequency x time grid; model.patch_size "
                                          r"\[128, 2\] over 128 input bins gives one frequency row"):
        load_config(config_file=config("{name: m, strategy: adapter_incremental, mixer: fta, pet: convpass}"))
    with pytest.raises(ConfigError, match=r"'methods.0.pet': 'convpass' convolves over the frequency x time grid"):
        load_config(config_file=config("{name: m, strategy: adapter_incremental, mixer: gsa, pet: convpass}"))
    ok = load_config(config_file=config("{name: m, strategy: adapter_incremental, mixer: gsa, pet: houlsby}"))
    assert ok.methods[0].pet == "houlsby"
