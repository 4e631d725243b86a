"""``ticl pretrain``: a short MSPM run writes a checkpoint that ``ticl run`` starts from, a resumed run equals an
uninterrupted one bit for bit, a folder of audio files is a source, bad configs fail before any work, and the
summary names the commit that produced the checkpoint."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audio_ticl.benchmark import cli
from audio_ticl.benchmark.errors import CheckpointError, ConfigError
from audio_ticl.benchmark.pretrain.data import split_windows
from audio_ticl.benchmark.pretrain.loop import STATE_FILE, pretrain
from audio_ticl.benchmark.pretrain.schema import load_pretrain_config
from audio_ticl.benchmark.results import Provenance, provenance


def test_a_pretrained_backbone_plugs_into_ticl_run(tmp_path):
    out = tmp_path / "pre"
    assert cli.main(["pretrain", "--preset", "smoke", "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    clips = summary["clips"]  # 4 training clips of each synthetic class; no val or test clip
    assert clips % 4 == 0 and summary["sources"] == {"synthetic:train": clips}
    assert summary["steps"] == 2 * (clips // 8)
    assert (out / "ssast.pth").is_file() and (out / "history.csv").is_file()
    config = tmp_path / "run.yaml"
    config.write_text(
        "extends: smoke\n"
        f"model: {{name: ast_custom, embed_dim: 32, depth: 2, num_heads: 2, fstride: 16, tstride: 16, pooling: mean, "
        f"init: 'ssast:{out / 'ssast.pth'}'}}\n"
        "methods: [{name: probe, strategy: linear_probe, mixer: gsa}]\n"
    )
    assert cli.main(["run", "--config", str(config), "--out", str(tmp_path / "run"), "--no-progress"]) == 0
    assert (tmp_path / "run" / "probe" / "summary.json").is_file()


def test_a_resumed_run_equals_an_uninterrupted_one(tmp_path):
    overrides = ["checkpoint_every=2", "epochs=2"]
    whole = pretrain(load_pretrain_config("smoke", overrides=overrides), tmp_path / "whole", progress=False)
    cut = tmp_path / "cut"
    _run_until(load_pretrain_config("smoke", overrides=overrides), cut, steps=2)  # interrupted after step 2
    resumed = pretrain(load_pretrain_config("smoke", overrides=overrides), cut, progress=False, resume=True)
    a = torch.load(tmp_path / "whole" / "ssast.pth", weights_only=True)
    b = torch.load(cut / "ssast.pth", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert resumed["final"] == whole["final"] and resumed["steps"] == whole["steps"] > 2


def test_the_summary_records_the_commit_and_a_dirty_tree_keeps_its_diff(tmp_path, monkeypatch):
    """As ``ticl run`` does: a checkpoint can be traced to the code that trained it."""
    from audio_ticl.benchmark.pretrain import loop

    cfg = load_pretrain_config("smoke", overrides=["epochs=1"])
    source = provenance()
    summary = pretrain(cfg, tmp_path / "here", progress=False)
    assert summary["git_commit"] == source.commit and summary["dirty"] is source.dirty
    assert json.loads((tmp_path / "here" / "summary.json").read_text())["git_commit"] == source.commit
    assert (tmp_path / "here" / "source.diff").is_file() is source.dirty
    monkeypatch.setattr(loop, "provenance", lambda: Provenance("0123abc+dirty", True, "+x = 2\n"))
    summary = pretrain(cfg, tmp_path / "dirty", progress=False)
    assert summary["git_commit"] == "0123abc+dirty" and summary["dirty"] is True
    assert (tmp_path / "dirty" / "source.diff").read_text() == "+x = 2\n"
    monkeypatch.setattr(loop, "provenance", lambda: Provenance("0123abc", False))
    assert pretrain(cfg, tmp_path / "clean", progress=False)["dirty"] is False
    assert not (tmp_path / "clean" / "source.diff").exists()


def _run_until(cfg, out: Path, steps: int) -> None:
    """Run ``cfg`` and stop it right after ``steps`` steps, as an interruption would (the checkpoint of that step
    written, nothing after)."""
    from audio_ticl.benchmark.pretrain import loop

    calls = {"n": 0}
    real = loop.MSPM.forward

    def stop_after(self, *args, **kwargs):
        if calls["n"] == steps:
            raise KeyboardInterrupt
        calls["n"] += 1
        return real(self, *args, **kwargs)

    loop.MSPM.forward = stop_after
    try:
        with pytest.raises(KeyboardInterrupt):
            pretrain(cfg, out, progress=False)
    finally:
        loop.MSPM.forward = real
    assert torch.load(out / STATE_FILE, weights_only=True)["step"] == steps


def test_a_folder_of_audio_files_is_a_source(tmp_path):
    folder = tmp_path / "audio" / "nested"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(8):
        sf.write(folder / f"clip{i}.wav", rng.standard_normal(8000).astype(np.float32) * 0.1, 16000)
    (folder / "notes.txt").write_text("not audio")
    out = tmp_path / "pre"
    assert cli.main(["pretrain", "--preset", "smoke", "--set", "sources=[]", "--audio-dir", str(tmp_path / "audio"),
                     "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["clips"] == 8 and list(summary["sources"]) == [f"folder:{tmp_path / 'audio'}"]


def test_bad_pretraining_configs_fail_before_any_work(tmp_path, capsys):
    with pytest.raises(ConfigError, match="needs clips"):
        load_pretrain_config("smoke", overrides=["sources=[]"])
    with pytest.raises(ConfigError, match="'model.init' must be 'random'"):
        load_pretrain_config("smoke", overrides=["model.init=upstream"])
    with pytest.raises(ConfigError, match=r"'window_frames' must be in \[1, features.target_frames = 64\]"):
        load_pretrain_config("smoke", overrides=["window_frames=65"])
    with pytest.raises(ConfigError, match=r"'window_min_signal' must be in \[0, 1\]"):
        load_pretrain_config("smoke", overrides=["window_min_signal=1.5"])
    with pytest.raises(ConfigError, match="unknown preset 'nope'; available presets: mfcc-fsdd-esc10, mfcc-smoke, "
                       "mspm-fsdd-esc10, smoke"):
        load_pretrain_config("nope")
    with pytest.raises(ConfigError, match="needs --preset NAME or --config FILE; pretraining presets: mfcc-fsdd"):
        load_pretrain_config()
    out = tmp_path / "pre"
    pretrain(load_pretrain_config("smoke", overrides=["epochs=1"]), out, progress=False)
    with pytest.raises(CheckpointError, match="already holds a pretraining run"):
        pretrain(load_pretrain_config("smoke", overrides=["epochs=1"]), out, progress=False)
    with pytest.raises(CheckpointError, match=r"written by another config \(differs in lr\)"):
        pretrain(load_pretrain_config("smoke", overrides=["epochs=1", "lr=0.5"]), out, progress=False, resume=True)


def test_masked_frame_reconstruction_pretrains_a_frame_model_on_mfcc(tmp_path):
    out = tmp_path / "mfcc"
    summary = pretrain(load_pretrain_config("mfcc-smoke"), out, progress=False)
    assert summary["objective"] == "frame_reconstruction" and set(summary["final"]) == {"loss", "l1"}
    state = torch.load(out / "ssast.pth", weights_only=True)
    assert "module.cpredlayer.0.weight" not in state and int(state["module.p_input_fdim"]) == 20
    assert tuple(state["module.v.patch_embed.proj.weight"].shape) == (32, 1, 20, 1)  # one MFCC frame a token


def test_an_ssamba_backbone_pretrains_and_is_written_in_ssambas_layout(tmp_path):
    from audio_ticl.models import create_model, init_backbone

    out = tmp_path / "amba"
    cfg = load_pretrain_config("smoke", overrides=["epochs=1", "model.name=ssamba_custom", "model.num_heads=null"])
    summary = pretrain(cfg, out, progress=False)
    assert summary["checkpoint"] == "amba.pth" and summary["init"].startswith("ssamba:")
    target = create_model("ssamba_custom", input_frames=64, embed_dim=32, depth=2, fstride=16, tstride=16,
                          pooling="mean")
    init_backbone(target, f"ssamba:{out / 'amba.pth'}")
    state = torch.load(out / STATE_FILE, weights_only=True)["model"]
    torch.testing.assert_close(target.state_dict()["blocks.1.mixer.in_proj.weight"],
                               state["backbone.blocks.1.mixer.in_proj.weight"])


def test_clips_are_cut_into_windows_and_padding_windows_are_dropped():
    """A 300-frame clip padded to 512 gives windows 0-1 (signal), 2 (44 of 128 frames of signal: kept at 0.25) and
    not 3 (padding); a 20-frame clip gives its first window only, padding and all."""
    long, short = torch.zeros(512, 3), torch.zeros(512, 3)
    long[:300] = torch.randn(300, 3)
    short[:20] = torch.randn(20, 3)
    windows = split_windows(torch.stack([long, short]), 128, min_signal=0.25)
    assert windows.shape == (4, 128, 3)
    for i in range(3):
        assert torch.equal(windows[i], long[128 * i: 128 * (i + 1)])
    assert torch.equal(windows[3], short[:128])
    assert split_windows(torch.stack([long, short]), 128, min_signal=0.5).shape[0] == 3  # 44 / 128 < 0.5
    assert split_windows(long[None, :500], 128, min_signal=0.0).shape[0] == 3  # a last partial window is dropped


def test_pretraining_on_windows_counts_clips_and_examples(tmp_path):
    cfg = load_pretrain_config("smoke", overrides=["epochs=1", "window_frames=32", "window_min_signal=0"])
    summary = pretrain(cfg, tmp_path / "pre", progress=False)
    assert summary["examples"] == 2 * summary["clips"]  # 64 frames -> two windows of 32 each
