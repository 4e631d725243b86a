"""models/convert/hf_ast.py: Hugging Face ASTModel / ASTForAudioClassification folders ("hf:<dir>"), built with
random weights by transformers itself, saved with save_pretrained, loaded back with no download."""
from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")
pytest.importorskip("timm")
from ast_reference import ast_adapt, redraw  # noqa: E402

from audio_ticl.models import PatchBackbone, create_backbone, from_pretrained  # noqa: E402
from audio_ticl.models.convert import ConversionError, WeightsUnavailableError, load_pretrained  # noqa: E402
from audio_ticl.models.convert import hf_ast as hf_module  # noqa: E402

TOL = 1e-4
SIZE = {"embed_dim": 64, "depth": 2, "num_heads": 4, "mlp_ratio": 2.0}
CONFIG = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 128,
          "max_length": 136, "num_mel_bins": 128, "num_labels": 5}  # grid 12 x 13 at strides 10


def hf_model(classifier: bool = True, **overrides):
    config = transformers.ASTConfig(**{**CONFIG, **overrides})
    cls = transformers.ASTForAudioClassification if classifier else transformers.ASTModel
    return redraw(cls(config)).eval()


def at_length(model, frames: int):
    """The same HF model at another max_length, its position embedding adapted by AST's rule (ast_reference)."""
    new = hf_model(isinstance(model, transformers.ASTForAudioClassification), max_length=frames)
    state = model.state_dict()
    key = next(k for k in state if k.endswith("position_embeddings"))
    grid = ((128 - 16) // 10 + 1, (frames - 16) // 10 + 1)
    state[key] = ast_adapt(state[key], 2, (12, 13), grid)
    new.load_state_dict(state)
    return new


def fbank(frames: int) -> torch.Tensor:
    return torch.randn(2, frames, 128, generator=torch.Generator().manual_seed(7))


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
    model = hf_model()
    folder = tmp_path_factory.mktemp("hf") / "ast_cls"
    model.save_pretrained(folder)
    return model, folder


@pytest.mark.parametrize("frames", [136, 96, 256], ids=["source_grid", "crop_time", "interpolate_time"])
def test_classifier_logits_match(classifier_dir, frames):
    model, folder = classifier_dir
    backbone = from_pretrained("hf", str(folder), keep_head=True, input_frames=frames).eval()
    assert isinstance(backbone, PatchBackbone) and backbone.pooling == "cls_dist"
    reference = model if frames == 136 else at_length(model, frames)
    x = fbank(frames)
    with torch.no_grad():
        expected = reference(input_values=x).logits
        logits = backbone.pretrained_head(backbone(x))
    assert expected.abs().max() > 0.1
    assert (logits - expected).abs().max() < TOL


@pytest.mark.parametrize("frames", [136, 96])
def test_ast_model_pooled_matches_through_the_factory(tmp_path, frames):
    model = hf_model(classifier=False)
    model.save_pretrained(tmp_path)
    backbone = create_backbone("ast_custom", input_frames=frames, distill_token=True, pooling="cls_dist",
                               init=f"hf:{tmp_path}", **SIZE).eval()
    reference = model if frames == 136 else at_length(model, frames)
    x = fbank(frames)
    with torch.no_grad():
        assert (backbone(x) - reference(input_values=x).pooler_output).abs().max() < TOL
    with pytest.raises(ConversionError, match="without a classifier"):
        from_pretrained("hf", str(tmp_path), keep_head=True)


def test_both_key_layouts_load(classifier_dir, tmp_path):
    """save_pretrained writes the Hub layout (encoder.layer.{i}.attention.attention.query, as the published files);
    transformers 5's in-memory names (layers.{i}.attention.q_proj) load the same, here from a pytorch_model.bin."""
    from safetensors.torch import load_file

    model, folder = classifier_dir
    assert "audio_spectrogram_transformer.encoder.layer.1.attention.attention.value.bias" in load_file(
        str(folder / "model.safetensors"))
    state = model.state_dict()
    assert "audio_spectrogram_transformer.layers.1.attention.v_proj.bias" in state
    torch.save(state, tmp_path / "pytorch_model.bin")
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    backbone = from_pretrained("hf", str(tmp_path), keep_head=True).eval()
    x = fbank(136)
    with torch.no_grad():
        assert (backbone.pretrained_head(backbone(x)) - model(input_values=x).logits).abs().max() < TOL


def test_unused_and_missing_keys_are_named(classifier_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    model, folder = classifier_dir
    target = create_backbone("ast_custom", input_frames=136, distill_token=True, **SIZE)
    state = load_file(str(folder / "model.safetensors"))
    (tmp_path / "config.json").write_text((folder / "config.json").read_text())
    save_file({**state, "audio_spectrogram_transformer.pooler.dense.weight": torch.zeros(2)},
              str(tmp_path / "model.safetensors"))
    with pytest.raises(ConversionError, match="pooler.dense.weight"):
        load_pretrained(f"hf:{tmp_path}", target)
    del state["audio_spectrogram_transformer.encoder.layer.1.output.dense.bias"]
    save_file(state, str(tmp_path / "model.safetensors"))
    with pytest.raises(ConversionError, match="encoder.layer.1.output.dense.bias"):
        load_pretrained(f"hf:{tmp_path}", target)


def test_hub_name_offline_says_what_to_download_and_where(monkeypatch):
    def offline(name):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(hf_module, "_download", offline)
    with pytest.raises(WeightsUnavailableError) as info:
        from_pretrained("hf", "MIT/ast-finetuned-audioset-10-10-0.4593")
    message = str(info.value)
    assert "network" in message and "couldn't connect" in message
    assert "huggingface-cli download MIT/ast-finetuned-audioset-10-10-0.4593" in message
    assert "config.json" in message and "hf:/path/to/ast_model" in message


def test_missing_folder_is_not_downloaded(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="not found"):
        load_pretrained(f"hf:{tmp_path}/absent", create_backbone("ast_custom", input_frames=136, **SIZE))
