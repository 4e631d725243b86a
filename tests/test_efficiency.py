"""``ticl efficiency``: geometry, registry-driven cases, CPU peak memory, what a train step trains, FLOPs, the
files it writes and its option errors. Tiny models (``ast_custom`` / ``ssamba_custom``: 32-d, 2 blocks, 2 heads),
1-2 repeats."""
from __future__ import annotations

import csv

import pytest
import torch

from audio_ticl.benchmark import cli
from audio_ticl.benchmark.efficiency import command, machine, profiling
from audio_ticl.benchmark.efficiency.cases import CaseSpec, Setup, build_case
from audio_ticl.benchmark.efficiency.geometry import from_frames, from_tokens, geometries
from audio_ticl.benchmark.efficiency.measure import COLUMNS
from audio_ticl.benchmark.efficiency.memory import cpu_peak_bytes, peak_live_bytes
from audio_ticl.benchmark.efficiency.timing import Timing
from audio_ticl.benchmark.errors import OptionError
from audio_ticl.models import MIXERS
from audio_ticl.models.fta_kernel import fta_kernel
from audio_ticl.models.mixers import GlobalSelfAttention
from audio_ticl.models.scan_kernel import scan_kernel

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"embed_dim": 32, "depth": 2, "num_heads": 2}  # depth 2: SSAMBA runs its layers in pairs
MB = 2**20
#: a cheap geometry: 32 frames at stride 16 -> 8 x 2 = 16 patch tokens
FAST = ["--sizes", "custom", "--frames", "32", "--strides", "16", "--threads", "1", "--repeats", "2",
        "--warmup", "0"]


def _run(tmp_path, *argv: str):
    plan = command.plan(command.parse([*FAST, *argv]), TINY)
    text, paths = command.execute(plan, tmp_path)
    with open(tmp_path / "efficiency.csv") as f:
        rows = list(csv.DictReader(f))
    return plan, text, paths, rows


# -------------------------------------------------------------------------------------------------- geometry
@pytest.mark.parametrize("stride, grid", [(10, (12, 101)), (16, (8, 64))])
def test_frames_become_the_real_patch_grid(stride, grid):
    g = from_frames(1024, stride)
    assert (g.grid, g.tokens, g.grid_text) == (grid, grid[0] * grid[1], f"{grid[0]}x{grid[1]}")


@pytest.mark.parametrize("tokens, stride", [(1212, 10), (588, 10), (512, 16), (8, 16)])
def test_tokens_become_the_shortest_input_with_exactly_that_many_patches(tokens, stride):
    g = from_tokens(tokens, stride)
    assert g.tokens == tokens and from_frames(g.frames, stride).grid == g.grid
    assert g.frames == 16 or from_frames(g.frames - 1, stride).tokens < tokens  # one frame less: a column less


def test_a_token_count_no_grid_has_is_an_error_naming_it():
    with pytest.raises(OptionError, match=r"--tokens 500: .*stride 10\b.*multiple of 12 \(e\.g\. 492 or 504\)"):
        from_tokens(500, 10)
    assert [(g.frames, g.tokens) for g in geometries(None, [512], [16])] == [(1024, 512)]
    with pytest.raises(OptionError, match="--tokens 512"):  # 512 fits stride 16 (8 rows), not stride 10 (12)
        geometries(None, [512], [16, 10])


# -------------------------------------------------------------------------------------------------- timing, memory
def test_timing_reports_the_median_and_the_interquartile_range():
    t = Timing.of([0.005, 0.001, 0.004, 0.002, 0.003])
    assert t.median_ms == pytest.approx(3.0) and t.iqr_ms == pytest.approx(2.0)


def test_cpu_peak_memory_sees_a_known_allocation():
    def allocate() -> float:
        block = torch.ones(MB)  # 4 MB of float32, alive until the return
        return float(block[0])

    peak = cpu_peak_bytes(allocate)
    assert 4 * MB <= peak < 6 * MB
    assert cpu_peak_bytes(lambda: None) < 1024


def test_peak_live_bytes_follow_the_events_in_time_order():
    # given out of order: +10 at t=1, +4 at t=2, -5 at t=3 -> live 10, 14, 9
    assert peak_live_bytes([(3, -5), (1, 10), (2, 4)]) == 14
    assert peak_live_bytes([(1, -8), (2, 4)]) == 0  # a free of older memory is no negative peak
    assert peak_live_bytes([]) == 0


# -------------------------------------------------------------------------------------------------- cases
def _grad_reached(case) -> set[int]:
    """ids of the parameters that received a gradient during one train step."""
    reached: set[int] = set()
    params = [p for m in case.modules for p in m.parameters() if p.requires_grad]
    handles = [p.register_post_accumulate_grad_hook(lambda p: reached.add(id(p))) for p in params]
    case.set_training(True)
    case.train_step()
    for h in handles:
        h.remove()
    return reached


def test_full_fine_tuning_trains_every_backbone_parameter():
    geometry = from_frames(32, 16)
    case = build_case(CaseSpec("custom", "ast_custom", "gsa"), geometry, Setup(train=True, model_kwargs=TINY))
    backbone, head = case.modules
    everything = {id(p) for p in [*backbone.parameters(), *head.parameters()]}
    assert {id(p) for p in case.trainable} == everything
    assert _grad_reached(case) == everything


@pytest.mark.parametrize("pet", ["lora", "convpass"])
def test_a_pet_method_trains_its_modules_and_the_head_only(pet):
    geometry = from_frames(32, 16)
    case = build_case(CaseSpec("custom", "ast_custom", "fta", pet), geometry, Setup(train=True, model_kwargs=TINY))
    backbone, head = case.modules
    pet_params = {id(p) for n, p in backbone.named_parameters() if f"pet_{pet}" in n}
    frozen = {id(p) for n, p in backbone.named_parameters() if f"pet_{pet}" not in n}
    assert pet_params and frozen
    expected = pet_params | {id(p) for p in head.parameters()}
    assert {id(p) for p in case.trainable} == expected
    reached = _grad_reached(case)
    assert reached == expected and not reached & frozen


def test_materialized_attention_counts_the_flops_of_sdpa():
    """Both count the two (L x L x hd) matrix products, 4 B H L^2 hd; neither counts the softmax or the scaling."""
    geometry = from_frames(64, 16)  # 8 x 4 grid + CLS: L = 33
    setup = Setup(scope="op", model_kwargs=TINY)
    flops = {m: build_case(CaseSpec("custom", "ast_custom", m), geometry, setup).flops()
             for m in ("gsa", "gsa_materialized")}
    assert flops["gsa"] == flops["gsa_materialized"] == 4 * 2 * 2 * 33 * 33 * 16
    encoder = {m: build_case(CaseSpec("custom", "ast_custom", m), geometry, Setup(model_kwargs=TINY)).flops()
               for m in ("gsa", "gsa_materialized")}
    assert encoder["gsa"] == encoder["gsa_materialized"] > flops["gsa"]


# -------------------------------------------------------------------------------------------------- the run
def test_a_newly_registered_mixer_is_measured_without_touching_the_command(tmp_path, monkeypatch):
    class Throwaway(GlobalSelfAttention):
        """A test-only mixer."""

    monkeypatch.setitem(MIXERS, "throwaway", Throwaway)
    plan, text, _, rows = _run(tmp_path)  # no --mixers: every registered one
    assert [s.mixer for s in plan.specs] == [*MIXERS, "mamba"]
    assert [r["mixer"] for r in rows] == [*MIXERS, "mamba"]
    assert "| throwaway " in text


def test_files_table_and_ratios(tmp_path):
    plan, text, paths, rows = _run(tmp_path, "--mixers", "gsa,gsa-materialized", "--pet", "none,lora", "--train",
                                   "--frames", "32,48")
    assert list(rows[0]) == COLUMNS
    assert COLUMNS[:12] == ["device", "dtype", "threads", "scope", "size", "mixer", "pet", "frames", "stride",
                            "grid", "tokens", "batch"]
    assert len(rows) == 2 * 2 * 2  # geometries x mixers x pets
    assert {(r["frames"], r["grid"], r["tokens"]) for r in rows} == {("32", "8x2", "16"), ("48", "8x3", "24")}
    for r in rows:
        assert float(r["fwd_ms"]) > 0 and float(r["train_ms"]) > 0 and float(r["gflops"]) > 0
        assert float(r["tokens_per_s"]) == pytest.approx(2 * int(r["tokens"]) / (float(r["fwd_ms"]) / 1e3))
        assert float(r["peak_mb"]) > 0 and r["memory_method"] == "cpu_profiler_live_bytes"
    header = text.splitlines()[0]
    for column in ("frames", "grid", "tokens", "fwd: x faster than gsa", "fwd: x faster than none",
                   "x less memory than gsa"):
        assert f" {column} " in header
    assert "| 8x3 " in text and "peak live bytes of torch's CPU allocator" in text
    names = {p.name for p in paths}
    assert {"efficiency.csv", "efficiency.md", "time_vs_tokens.png", "time_vs_tokens.pdf",
            "memory_vs_tokens.png", "memory_vs_tokens.pdf"} <= names
    assert all((tmp_path / n).stat().st_size > 0 for n in names)
    assert not list(tmp_path.glob(".*.tmp"))  # written atomically: no temp file left


# -------------------------------------------------------------------------------------------------- CLI errors
def test_an_unknown_mixer_lists_the_registered_ones(capsys):
    assert cli.main(["efficiency", "--mixers", "gsa,hyena"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ticl: error: --mixers: unknown 'hyena'") and err.count("\n") == 1
    assert all(name in err for name in [*MIXERS, "mamba"])


def test_a_bad_token_count_is_a_one_line_error(capsys):
    assert cli.main(["efficiency", "--tokens", "500"]) == 2
    assert "--tokens 500" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--frames", "128", "--tokens", "144"], "not allowed with argument"),
    (["--batch", "0"], "--batch expects a positive integer, got '0'"),
    (["--batch", "-2"], "--batch expects a positive integer"),
    (["--frames", "128,0"], "--frames expects comma-separated positive integers"),
])
def test_option_errors_exit_2_naming_the_option(capsys, argv, message):
    with pytest.raises(SystemExit) as exc:
        cli.main(["efficiency", *argv])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_the_op_scope_refuses_pet_methods():
    with pytest.raises(OptionError, match="--pet lora: --scope op"):
        command.plan(command.parse(["--scope", "op", "--pet", "none,lora"]))


# -------------------------------------------------------------------------------------------------- --preset
def test_a_preset_brings_its_backbone_length_stride_and_batch():
    """esc50-cpu: ast_custom 96-d, 4 blocks, 4 heads, mean pooling, 512 frames at stride 10, batch 16."""
    plan = command.plan(command.parse(["--preset", "esc50-cpu", "--mixers", "gsa,fta"]))
    assert [(s.size, s.model, s.mixer) for s in plan.specs] == [("esc50-cpu", "ast_custom", "gsa"),
                                                                ("esc50-cpu", "ast_custom", "fta")]
    assert plan.setup.model_kwargs == {"embed_dim": 96, "depth": 4, "num_heads": 4, "pooling": "mean",
                                       "distill_token": False}
    assert [(g.frames, g.stride, g.grid) for g in plan.geometries] == [(512, 10, (12, 50))]
    assert plan.setup.batch == 16
    stride16 = command.plan(command.parse(["--preset", "baselines-fsdd-cpu", "--batch", "3", "--frames", "64,128"]))
    assert [(g.frames, g.stride, g.grid) for g in stride16.geometries] == [(64, 16, (8, 4)), (128, 16, (8, 8))]
    assert stride16.setup.batch == 3  # the command line wins over the preset


def test_a_preset_measures_its_own_backbone(tmp_path):
    plan = command.plan(command.parse(["--preset", "esc50-cpu", "--mixers", "fta", "--frames", "48", "--batch", "1",
                                       "--threads", "1", "--repeats", "1", "--warmup", "0"]))
    command.execute(plan, tmp_path)
    with open(tmp_path / "efficiency.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert (row["size"], row["grid"], row["batch"]) == ("esc50-cpu", "12x4", "1")
    path = "this package's fused CPU kernel" if fta_kernel() is not None else "ATen's CPU flash attention"
    assert f"- fta computed by {path}" in (tmp_path / "efficiency.md").read_text()


@pytest.mark.parametrize("argv, message", [
    (["--preset", "esc50-cpu", "--sizes", "base"], "--sizes and --preset: give one"),
    (["--preset", "aicl-paper"], "--preset aicl-paper: its tasks keep their own input lengths"),
])
def test_preset_option_errors(argv, message):
    with pytest.raises(OptionError, match=message):
        command.plan(command.parse(argv))


def test_profile_writes_where_the_time_goes_for_every_case_and_call(tmp_path):
    _, _, paths, _ = _run(tmp_path, "--mixers", "gsa,fta", "--train", "--profile")
    names = sorted(p.name for p in paths if p.parent.name == "profiles")
    assert names == [f"custom-{m}-none-16tok-{k}.txt" for m in ("fta", "gsa") for k in ("fwd", "train")]
    fwd = (tmp_path / "profiles" / "custom-fta-none-16tok-fwd.txt").read_text()
    assert fwd.startswith("custom/fta/none at 32 frames, grid 8x2 = 16 tokens")
    assert "Self CPU %" in fwd and "# of Calls" in fwd  # the profiler's table
    rows = [line for line in fwd.splitlines() if "::" in line]  # op rows (aten::..., audio_ticl_fta::...)
    assert 3 <= len(rows) <= profiling.TOP_OPS
    train = (tmp_path / "profiles" / "custom-gsa-none-16tok-train.txt").read_text()
    assert "one train step" in train and "Self CPU %" in train


# -------------------------------------------------------------------------------------------------- busy CPUs
def _fake_proc(tmp_path, running: int, states: list[str]):
    (tmp_path / "loadavg").write_text(f"1.50 1.20 1.00 {running}/113 28520\n")
    for i, state in enumerate(states):
        (tmp_path / "task" / str(100 + i)).mkdir(parents=True)
        (tmp_path / "task" / str(100 + i) / "stat").write_text(f"{100 + i} (py (omp) x) {state} 1 2 3\n")
    return tmp_path / "loadavg", tmp_path / "task"


def test_the_busy_note_does_not_count_this_process_own_threads(tmp_path, monkeypatch):
    """Three runnable tasks, all ours (the main thread and two spinning OpenMP workers): no other process."""
    monkeypatch.setattr(machine.os, "cpu_count", lambda: 2)
    loadavg, tasks = _fake_proc(tmp_path, 3, ["R", "R", "R", "S"])
    assert machine.own_runnable_threads(tasks) == 3
    assert machine.busy_note(2, loadavg=loadavg, task_dir=tasks) == ""


def test_the_busy_note_names_other_runnable_tasks(tmp_path, monkeypatch):
    monkeypatch.setattr(machine.os, "cpu_count", lambda: 2)
    loadavg, tasks = _fake_proc(tmp_path, 3, ["R", "S"])
    note = machine.busy_note(2, "compare with --threads 1", loadavg=loadavg, task_dir=tasks)
    assert note.startswith("note: 2 other runnable task(s) (load average 1.5) on")
    assert machine.busy_note(1, loadavg=loadavg, task_dir=tasks) == ""  # one thread: nothing to wait for


# -------------------------------------------------------------------------------------------------- mamba
def test_mamba_measures_the_ssamba_model_of_the_same_size(tmp_path):
    plan, text, _, rows = _run(tmp_path, "--mixers", "gsa,mamba", "--frames", "48")
    assert [(s.size, s.model, s.mixer) for s in plan.specs] == [("custom", "ast_custom", "gsa"),
                                                                ("custom", "ssamba_custom", "mamba")]
    mamba = next(r for r in rows if r["mixer"] == "mamba")
    assert float(mamba["gflops"]) > 0 and float(mamba["fwd_ms"]) > 0
    assert "| mamba " in text


def test_the_op_scope_refuses_mixers_without_an_attention_op():
    with pytest.raises(OptionError, match="--mixers mamba: --scope op times attention ops"):
        command.plan(command.parse(["--scope", "op", "--mixers", "gsa,mamba"]))


@pytest.mark.skipif(scan_kernel() is None, reason="no CPU scan kernel here")
def test_the_flop_counter_counts_the_cpu_scan():
    from audio_ticl.benchmark.metrics import forward_flops
    from audio_ticl.models.selective_scan import selective_scan_cpu

    batch, channels, length, state = 2, 8, 5, 16
    u, delta = torch.randn(batch, channels, length), torch.rand(batch, channels, length)
    a, b, c = -torch.rand(channels, state), torch.randn(batch, state, length), torch.randn(batch, state, length)
    flops = forward_flops(lambda: selective_scan_cpu(u, delta, a, b, c))
    assert flops == batch * channels * length * (6 * state + 4)


def test_the_flop_counter_counts_the_cpu_causal_conv():
    from audio_ticl.benchmark.metrics import forward_flops
    from audio_ticl.models.causal_conv import causal_conv_cpu

    x, weight = torch.randn(2, 7, 12), torch.randn(12, 1, 4)
    assert forward_flops(lambda: causal_conv_cpu(x, weight, None)) == 2 * 2 * 7 * 12 * 4


def test_the_op_scope_defaults_to_the_attention_mixers():
    plan = command.plan(command.parse(["--scope", "op", "--tokens", "144"]))
    assert [s.mixer for s in plan.specs] == list(MIXERS)


# -------------------------------------------------------------------------------------------- memory guard
def test_the_score_map_estimate_is_two_maps_a_forward_and_every_layer_in_training():
    from audio_ticl.benchmark.efficiency.fit import score_map_bytes

    geometry = from_frames(32, 16)  # 16 patch tokens + CLS
    model = build_case(CaseSpec("custom", "ast_custom", "gsa_materialized"), geometry, Setup(model_kwargs=TINY))
    backbone = model.modules[0]
    one_map = 3 * 2 * 17 * 17 * 4  # batch 3, 2 heads, 17 x 17, fp32
    assert score_map_bytes(backbone, 17, 3, 4, training=False) == 2 * one_map
    assert score_map_bytes(backbone, 17, 3, 4, training=True) == 2 * 2 * one_map  # 2 layers, both saved
    sdpa = build_case(CaseSpec("custom", "ast_custom", "gsa"), geometry, Setup(model_kwargs=TINY)).modules[0]
    assert score_map_bytes(sdpa, 17, 3, 4, training=True) == 0


def test_available_memory_is_read_from_meminfo(tmp_path):
    from audio_ticl.benchmark.efficiency.fit import available_bytes

    (tmp_path / "meminfo").write_text("MemTotal:  100 kB\nMemAvailable:   2048 kB\n")
    assert available_bytes(tmp_path / "meminfo") == 2048 * 1024
    assert available_bytes(tmp_path / "missing") is None


def test_a_case_that_would_not_fit_is_skipped_before_it_runs_and_reported(tmp_path, monkeypatch):
    from audio_ticl.benchmark.efficiency import measure
    from audio_ticl.models.mixers import MaterializedSelfAttention

    calls = []
    original = MaterializedSelfAttention.attend
    monkeypatch.setattr(MaterializedSelfAttention, "attend", lambda self, *a: calls.append(1) or original(self, *a))
    monkeypatch.setattr(measure, "available_bytes", lambda: 8000)  # 8 kB: the 17 x 17 maps need 9.2 kB
    _, text, _, rows = _run(tmp_path, "--mixers", "gsa,gsa-materialized")
    by_mixer = {r["mixer"]: r for r in rows}
    assert by_mixer["gsa"]["skipped"] == "" and float(by_mixer["gsa"]["fwd_ms"]) > 0
    skipped = by_mixer["gsa_materialized"]
    assert skipped["skipped"].startswith("did not fit") and skipped["fwd_ms"] == ""  # NaN, written empty
    assert not calls  # nothing of it ran: not the FLOP count, the memory probe or the timing
    assert "did not fit" in text and "not measured: custom/gsa_materialized/none at 16 tokens" in text


# -------------------------------------------------------------------------------------------- --combine
def test_combine_makes_one_table_from_parts_and_refuses_parts_that_do_not_agree(tmp_path):
    from audio_ticl.benchmark.efficiency.combine import combine

    for name, frames in (("long", "48"), ("short", "32")):
        _run(tmp_path / name, "--mixers", "gsa,fta", "--frames", frames)
    out = tmp_path / "both"
    parts = ",".join(str(tmp_path / name / "efficiency.csv") for name in ("long", "short"))
    args = command.parse(["--combine", parts, "--out", str(out)])
    assert command.run_command(args) == 0
    with open(out / "efficiency.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["tokens"], r["mixer"]) for r in rows] == [("16", "gsa"), ("16", "fta"), ("24", "gsa"), ("24", "fta")]
    text = (out / "efficiency.md").read_text()
    assert "combined from" in text and "long/efficiency.csv" in text and (out / "time_vs_tokens.png").is_file()
    md = tmp_path / "long" / "efficiency.md"
    md.write_text(md.read_text() + "- note: 1 other runnable task(s) (load average 1.9)\n")
    command.run_command(args)  # a part's busy warning travels into the combined notes, naming the part
    assert "long/efficiency.csv: 1 other runnable task(s)" in (out / "efficiency.md").read_text()
    _run(tmp_path / "batch3", "--mixers", "gsa", "--frames", "64", "--batch", "3")
    with pytest.raises(OptionError, match=r"the files differ in batch \(.*long/efficiency.csv: 2; .*: 3\)"):
        combine([tmp_path / "long" / "efficiency.csv", tmp_path / "batch3" / "efficiency.csv"])
    with pytest.raises(OptionError, match=r"the case \(size custom, mixer gsa, pet none, frames 48, stride 16\) is in "
                                          r"more than one file"):
        combine([tmp_path / "long" / "efficiency.csv", tmp_path / "both" / "efficiency.csv"])
    with pytest.raises(OptionError, match="nope.csv is not a file"):
        combine([tmp_path / "nope.csv"])


def test_crossovers_name_the_lengths_between_which_one_mixer_overtakes_another():
    import pandas as pd

    from audio_ticl.benchmark.efficiency.report import crossovers

    times = {"attn": [1.0, 4.0, 16.0, 64.0], "scan": [3.0, 6.0, 12.0, 24.0], "lin": [0.5, 1.0, 2.0, 4.0]}
    df = pd.DataFrame([{"size": "tiny", "pet": "none", "stride": 16, "mixer": m, "tokens": t, "fwd_ms": ms}
                       for m, series in times.items() for t, ms in zip((600, 1200, 2400, 4800), series)])
    lines = crossovers(df)
    assert lines[0].startswith("scan overtakes attn between 1200 and 2400 tokens (tiny, pet none, stride 16")
    assert lines[1].startswith("lin is faster than attn at every length measured")
    assert lines[2].startswith("lin is faster than scan at every length measured")
