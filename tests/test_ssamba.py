"""SSAMBA: a checkpoint in SSAMBA's own key layout, with random weights, gives through ``ssamba:<file>`` the outputs
of SSAMBA's fine-tuning forward (``AMBAModel``, task ``ft_avgtok``, over Vision Mamba's layers), re-created here
from its code as plain functions; plus the converter's errors and what it reads from a file."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from einops import rearrange

from audio_ticl.models import create_model, from_pretrained
from audio_ticl.models.convert import ConversionError, describe_pretrained
from audio_ticl.models.errors import ModelError
from audio_ticl.models.selective_scan import selective_scan_reference

DIM, DEPTH, N_STATE = 32, 4, 16
INNER, RANK = 2 * DIM, math.ceil(DIM / 16)
FRAMES = 46  # 128 x 46 at stride 10: a 12 x 4 grid


def _ssamba_state(grid=(12, 4), *, pretraining=False, rms=False, seed=0) -> dict[str, torch.Tensor]:
    """A DataParallel ``AMBAModel`` state dict with SSAMBA's keys and random weights."""
    gen = torch.Generator().manual_seed(seed)

    def r(*shape, scale=0.1):
        return torch.randn(*shape, generator=gen) * scale

    v = "module.v."
    sd = {f"{v}patch_embed.proj.weight": r(DIM, 1, 16, 16, scale=0.05), f"{v}patch_embed.proj.bias": r(DIM),
          f"{v}cls_token": r(1, 1, DIM), f"{v}pos_embed": r(1, 1 + grid[0] * grid[1], DIM),
          f"{v}head.weight": r(1000, DIM), f"{v}head.bias": r(1000)}
    for i in range(DEPTH):
        p = f"{v}layers.{i}."
        for s, a in (("", "A_log"), ("_b", "A_b_log")):
            sd[f"{p}mixer.{a}"] = torch.log(torch.arange(1.0, N_STATE + 1)).repeat(INNER, 1) + r(INNER, N_STATE)
            sd[f"{p}mixer.D{s}"] = 1 + r(INNER)
            sd[f"{p}mixer.conv1d{s}.weight"] = r(INNER, 1, 4, scale=0.3)
            sd[f"{p}mixer.conv1d{s}.bias"] = r(INNER)
            sd[f"{p}mixer.x_proj{s}.weight"] = r(RANK + 2 * N_STATE, INNER, scale=0.2)
            sd[f"{p}mixer.dt_proj{s}.weight"] = r(INNER, RANK, scale=0.3)
            sd[f"{p}mixer.dt_proj{s}.bias"] = r(INNER) - 3.0
        sd[f"{p}mixer.in_proj.weight"] = r(2 * INNER, DIM, scale=0.2)
        sd[f"{p}mixer.out_proj.weight"] = r(DIM, INNER, scale=0.2)
        sd[f"{p}norm.weight"] = 1 + r(DIM)
        if not rms:
            sd[f"{p}norm.bias"] = r(DIM)
    sd[f"{v}norm_f.weight"] = 1 + r(DIM)
    if not rms:
        sd[f"{v}norm_f.bias"] = r(DIM)
    if pretraining:
        sd |= {"module.p_input_fdim": torch.tensor(128), "module.p_input_tdim": torch.tensor(1024),
               "module.mask_embed": r(1, 1, DIM), "module.cpredlayer.0.weight": r(DIM, DIM),
               "module.cpredlayer.0.bias": r(DIM), "module.cpredlayer.2.weight": r(256, DIM),
               "module.cpredlayer.2.bias": r(256), "module.gpredlayer.0.weight": r(DIM, DIM),
               "module.gpredlayer.0.bias": r(DIM), "module.gpredlayer.2.weight": r(256, DIM),
               "module.gpredlayer.2.bias": r(256)}
    else:
        sd |= {"module.mlp_head.0.weight": 1 + r(DIM), "module.mlp_head.0.bias": r(DIM),
               "module.mlp_head.1.weight": r(5, DIM), "module.mlp_head.1.bias": r(5)}
    return sd


# ------------------------------------------------------------------------ SSAMBA's forward, from its code
def _vim_mixer(v: dict, i: int, hidden: torch.Tensor) -> torch.Tensor:
    """Vim's Mamba.forward with bimamba_type "v2" and if_devide_out (mamba_inner_fn_no_out_proj per direction)."""
    p, length = f"layers.{i}.mixer.", hidden.shape[1]
    xz = rearrange(v[p + "in_proj.weight"] @ rearrange(hidden, "b l d -> d (b l)"), "d (b l) -> b d l", l=length)

    def inner(xz, s):
        x, z = xz.chunk(2, dim=1)
        x = F.conv1d(x, v[f"{p}conv1d{s}.weight"], v[f"{p}conv1d{s}.bias"], padding=3, groups=INNER)
        x = F.silu(x[..., :length])
        x_dbl = F.linear(rearrange(x, "b d l -> (b l) d"), v[f"{p}x_proj{s}.weight"])
        delta = rearrange(v[f"{p}dt_proj{s}.weight"] @ x_dbl[:, :RANK].t(), "d (b l) -> b d l", l=length)
        b = rearrange(x_dbl[:, RANK:RANK + N_STATE], "(b l) n -> b n l", l=length)
        c = rearrange(x_dbl[:, RANK + N_STATE:], "(b l) n -> b n l", l=length)
        a = -torch.exp(v[p + ("A_log" if s == "" else "A_b_log")])
        return selective_scan_reference(x, delta, a, b, c, v[f"{p}D{s}"], z, delta_bias=v[f"{p}dt_proj{s}.bias"],
                                        delta_softplus=True)

    out, out_b = inner(xz, ""), inner(xz.flip([-1]), "_b")
    return F.linear(rearrange(out + out_b.flip([-1]), "b d l -> b l d") / 2, v[p + "out_proj.weight"])


def _norm(v: dict, name: str, x: torch.Tensor) -> torch.Tensor:
    if f"{name}.bias" in v:
        return F.layer_norm(x, (DIM,), v[f"{name}.weight"], v[f"{name}.bias"], eps=1e-5)
    return F.rms_norm(x, (DIM,), v[f"{name}.weight"], eps=1e-5)


def _amba_forward(sd: dict, x: torch.Tensor, stride: int, pos_embed: torch.Tensor) -> torch.Tensor:
    """AMBAModel.finetuningavgtok with if_bidirectional: layer pairs summed, norm_f twice, mean of patch tokens."""
    v = {k.removeprefix("module.v."): t for k, t in sd.items() if k.startswith("module.v.")}
    x = x.unsqueeze(1).transpose(2, 3)
    x = F.conv2d(x, v["patch_embed.proj.weight"], v["patch_embed.proj.bias"], stride=(stride, stride))
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat((v["cls_token"].expand(x.shape[0], -1, -1), x), dim=1) + pos_embed

    def layer(i, hidden, residual):  # Vim's Block: Add -> LN -> Mixer
        residual = hidden if residual is None else residual + hidden
        return _vim_mixer(v, i, _norm(v, f"layers.{i}.norm", residual)), residual

    hidden, residual = x, None
    for i in range(0, DEPTH, 2):
        h_f, r_f = layer(i, hidden, residual)
        h_b, r_b = layer(i + 1, hidden.flip([1]), None if residual is None else residual.flip([1]))
        hidden, residual = h_f + h_b.flip([1]), r_f + r_b.flip([1])
    x = _norm(v, "norm_f", residual + hidden)
    x = _norm(v, "norm_f", x)
    return x[:, 1:].mean(dim=1)


def _ssamba_pos_rule(pos: torch.Tensor, t_dim: int, f_dim: int) -> torch.Tensor:
    """SSAMBA's fine-tuning resize of an 8 x 64 pretraining position embedding (both_models.py): centre crop in
    time, then bilinear in frequency."""
    grid = rearrange(pos[:, 1:], "1 (f t) d -> 1 d f t", f=8, t=64)
    grid = grid[:, :, :, 32 - t_dim // 2: 32 - t_dim // 2 + t_dim]
    grid = F.interpolate(grid, size=(f_dim, t_dim), mode="bilinear")
    return torch.cat([pos[:, :1], rearrange(grid, "1 d f t -> 1 (f t) d")], dim=1)


@pytest.mark.parametrize("rms", [False, True], ids=["layernorm", "rmsnorm"])
def test_a_fine_tuned_checkpoint_gives_ssambas_outputs(tmp_path, rms):
    sd = _ssamba_state(rms=rms)
    torch.save(sd, tmp_path / "best_audio_model.pth")
    model = from_pretrained("ssamba", str(tmp_path / "best_audio_model.pth"), input_frames=FRAMES, fstride=10,
                            tstride=10).eval()
    assert type(model).__name__ == "SSAMBABackbone" and model.patch_grid == (12, 4)
    assert model.blocks[0].norm.__class__.__name__ == ("RMSNorm" if rms else "LayerNorm")
    x = torch.randn(2, FRAMES, 128, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        want = _amba_forward(sd, x, 10, sd["module.v.pos_embed"])
        got = model(x)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_a_pretraining_checkpoint_is_resampled_as_ssamba_fine_tunes_it(tmp_path):
    sd = _ssamba_state(grid=(8, 64), pretraining=True)
    torch.save(sd, tmp_path / "amba_tiny_300.pth")
    model = from_pretrained("ssamba", str(tmp_path / "amba_tiny_300.pth"), input_frames=FRAMES, fstride=10,
                            tstride=10).eval()
    pos = _ssamba_pos_rule(sd["module.v.pos_embed"], 4, 12)
    torch.testing.assert_close(model.pos_embed.detach(), pos)
    x = torch.randn(1, FRAMES, 128, generator=torch.Generator().manual_seed(6))
    with torch.no_grad():
        torch.testing.assert_close(model(x), _amba_forward(sd, x, 10, pos), atol=1e-4, rtol=1e-4)
    described = describe_pretrained(f"ssamba:{tmp_path / 'amba_tiny_300.pth'}").model_kwargs
    assert described == {"model": "ssamba_custom", "embed_dim": DIM, "depth": DEPTH, "norm": "layer",
                              "patch_size": (16, 16), "fstride": 16, "tstride": 16, "pooling": "mean",
                              "num_mel_bins": 128, "input_frames": 1024}


def test_the_converter_names_what_does_not_fit(tmp_path):
    sd = _ssamba_state()
    sd["module.v.layers.0.mixer.mystery"] = torch.zeros(3)
    torch.save(sd, tmp_path / "odd.pth")
    with pytest.raises(ConversionError, match=r"unexpected \['module.v.layers.0.mixer.mystery'\]"):
        from_pretrained("ssamba", str(tmp_path / "odd.pth"), input_frames=FRAMES, fstride=10, tstride=10)
    sd = _ssamba_state()
    sd["module.surprise"] = torch.zeros(1)
    torch.save(sd, tmp_path / "surprise.pth")
    with pytest.raises(ConversionError, match="surprise"):
        from_pretrained("ssamba", str(tmp_path / "surprise.pth"), input_frames=FRAMES, fstride=10, tstride=10)
    torch.save(_ssamba_state(), tmp_path / "deep.pth")
    shallow = create_model("ssamba_custom", input_frames=FRAMES, embed_dim=DIM, depth=2)
    from audio_ticl.models import init_backbone

    with pytest.raises(ModelError, match="unexpected"):
        init_backbone(shallow, f"ssamba:{tmp_path / 'deep.pth'}")


def test_paired_layers_sum_and_the_plain_stack_is_pre_norm():
    torch.manual_seed(0)
    model = create_model("ssamba_custom", input_frames=FRAMES, embed_dim=DIM, depth=2, paired=False,
                         double_final_norm=False).eval()
    x = torch.randn(1, FRAMES, 128)
    tokens = model.patch_embed(x)
    s = torch.cat([model.cls_token, tokens], dim=1) + model.pos_embed
    for block in model.blocks:
        s = s + block.mixer(block.norm(s), model.patch_grid, 1)
    with torch.no_grad():
        torch.testing.assert_close(model.forward_features(x), model.norm(s))
    with pytest.raises(ModelError, match="even depth"):
        create_model("ssamba_custom", input_frames=FRAMES, embed_dim=DIM, depth=3)


# ------------------------------------------------------------------------ in a TI-CL run
def test_a_method_must_use_a_mixer_its_model_takes():
    from audio_ticl.benchmark.config import load_config
    from audio_ticl.benchmark.errors import ConfigError

    with pytest.raises(ConfigError, match=r"'methods.0.mixer': model 'ssamba_custom' takes the mixer\(s\) mamba"):
        load_config("smoke", overrides=["model.name=ssamba_custom", "model.depth=2", "model.num_heads=null"])
    with pytest.raises(ConfigError, match=r"'methods.0.mixer': model 'ast_custom' takes .*gsa.*, got 'mamba'"):
        load_config("smoke", overrides=["model.name=ast_custom", "methods.0.mixer=mamba"])


def test_ssamba_runs_a_task_incremental_sequence(tmp_path):
    """Sequential fine-tuning, a linear probe and per-task ConvPass over 3 synthetic tasks, SSAMBA (32-d, 2 layers)
    as the backbone."""
    from audio_ticl.benchmark import cli

    config = tmp_path / "ssamba.yaml"
    config.write_text(
        "extends: smoke\n"
        "model: {name: ssamba_custom, embed_dim: 32, depth: 2, num_heads: null, pooling: mean, init: random}\n"
        "methods:\n"
        "  - {name: finetune, strategy: finetune, mixer: mamba}\n"
        "  - {name: linear-probe, strategy: linear_probe, mixer: mamba}\n"
        "  - {name: convpass, strategy: adapter_incremental, mixer: mamba, pet: convpass,\n"
        "     pet_options: {dim_first_task: 8, dim: 4}}\n"
    )
    assert cli.main(["run", "--config", str(config), "--out", str(tmp_path / "out"), "--no-progress"]) == 0
    import json

    for method in ("finetune", "linear-probe", "convpass"):
        folder = tmp_path / "out" / method
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["mixer"] == "mamba" and len(summary["accuracy_matrix"]) == 3
        assert "name: ssamba_custom" in (folder / "config.yaml").read_text()
