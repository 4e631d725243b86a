"""Every config error before any work: the dry run builds each method's model, weights, PET method and strategy,
so a typo in the last method fails before any feature is extracted, naming the key; ``ticl run --check`` does
only that."""
from __future__ import annotations

import pytest

from audio_ticl.benchmark import runner
from audio_ticl.benchmark.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if the run gets as far as reading data."""
    def refuse(*args, **kwargs):
        raise AssertionError("the run read data before the config was checked")

    monkeypatch.setattr(runner, "build_tasks", refuse)


@pytest.mark.parametrize("override, message", [
    ("methods.finetune.strategy_options={lamda: 3}", "config key 'methods.2.strategy_options' (finetune, strategy "
     "'finetune'): Finetune.__init__ got an unexpected keyword argument: lamda"),
    ("methods.aicl-fta.pet_options={dimm: 3}", "config key 'methods.1.pet_options' (convpass): PET method 'convpass'"
     " has no option(s) ['dimm']"),
    ("model.num_heads=5", "the backbone cannot be built: embed dim 32 is not divisible by num_heads 5"),
    ("model.init=/nonexistent/weights.pt", "config key 'model.init': init '/nonexistent/weights.pt'"),
    ("model.patch_size=[256,16]", "the backbone cannot be built: input of 128 frames x 128 mel bins is smaller than "
     "one patch (256 mel bins x 16 frames)"),
])
def test_a_bad_method_fails_before_any_work_naming_the_key(tmp_path, capsys, no_work, override, message):
    out = tmp_path / "run"
    assert main(["run", "--preset", "smoke", "--out", str(out), "--no-progress", "--set", override]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists(), "nothing is written before the config is checked"


def test_an_init_file_that_is_not_a_checkpoint_is_named(tmp_path, capsys, no_work):
    junk = tmp_path / "weights.pt"
    junk.write_text("not a checkpoint")
    assert main(["run", "--preset", "smoke", "--check", "--set", f"model.init={junk}"]) == 2
    err = capsys.readouterr().err
    assert "config key 'model.init'" in err and str(junk) in err


def test_an_unavailable_device_is_named(capsys, no_work):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert main(["run", "--preset", "smoke", "--check", "--set", "train.device=cuda"]) == 2
    assert "config key 'train.device' is 'cuda', but CUDA is not available" in capsys.readouterr().err


def test_check_builds_every_method_and_writes_nothing(tmp_path, capsys, no_work, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "--preset", "smoke", "--check"]) == 0
    out = capsys.readouterr().out
    assert [line.split(":")[0] for line in out.splitlines()[:3]] == ["aicl-gsa", "aicl-fta", "finetune"]
    assert "config 'smoke': 3 methods build; no data was read" in out
    assert not list(tmp_path.iterdir())


def test_the_dry_run_leaves_the_random_state_alone():
    import torch

    from audio_ticl.benchmark.config import load_config
    from audio_ticl.benchmark.preflight import preflight

    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    preflight(load_config("smoke"))
    assert torch.equal(torch.rand(3), expected)
