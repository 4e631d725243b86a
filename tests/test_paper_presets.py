"""The GPU paper presets stay runnable: each one's --smoke variant runs end to end on generated official-layout
fixtures (tiny random-init AST, 2 batches an epoch), and the AI-CL sequence falls back from AVE to UrbanSound8K."""
import json
import shutil
from pathlib import Path

import pytest
from fixtures import (
    AVE_FIXTURE_CLASSES,
    SCV2_WORDS,
    make_ave_fixture,
    make_esc50_fixture,
    make_speechcommands_fixture,
    make_urbansound8k_fixture,
)

from audio_ticl.benchmark.cli import main
from audio_ticl.benchmark.config import load_config
from audio_ticl.benchmark.errors import ConfigError

#: two classes in each ESC-50 category, so the five category tasks exist
ESC50_TWO_PER_CATEGORY = (
    (0, "dog"), (1, "rooster"), (10, "rain"), (11, "sea_waves"), (20, "crying_baby"),
    (21, "sneezing"), (30, "door_wood_knock"), (31, "mouse_click"), (40, "helicopter"), (41, "chainsaw"),
)
URBANSOUND8K_CLASSES = tuple(enumerate((
    "air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling",
    "engine_idling", "gun_shot", "jackhammer", "siren", "street_music",
)))


def _smoke(preset: str, root: Path, out: Path, *extra: str) -> dict:
    args = ["run", "--preset", preset, "--smoke", "--data-root", str(root), "--out", str(out), "--no-progress"]
    for item in extra:
        args += ["--set", item]
    assert main(args) == 0
    done = [m for m in out.iterdir() if (m / "summary.json").is_file()]
    return {m.name: json.loads((m / "summary.json").read_text()) for m in done}


@pytest.fixture(scope="module")
def paper_root(tmp_path_factory) -> Path:
    """A --data-root laid out as the README asks: one folder per dataset, named as the downloads name them."""
    root = tmp_path_factory.mktemp("datasets")
    make_speechcommands_fixture(root / "speech_commands_v0.02", ["yes", "no", "up"], speakers=3, takes=1)
    make_esc50_fixture(root / "ESC-50", ESC50_TWO_PER_CATEGORY[:3], seconds=0.3)
    make_urbansound8k_fixture(root / "UrbanSound8K", URBANSOUND8K_CLASSES[:3], seconds=0.3)
    return root


def test_smoke_variant_shrinks_the_preset_but_keeps_its_protocol() -> None:
    full, smoke = load_config("aicl-paper"), load_config("aicl-paper", smoke=True)
    assert full.model.init == "timm:vit_base_patch16_384" and full.model.name == "ast_base"
    assert smoke.name == "aicl-paper-smoke" and smoke.model.init == "random" and smoke.train.max_batches == 2
    assert [s.source for s in smoke.scenario.sequence] == ["speechcommands", "esc50", "ave"]
    assert [s.train for s in full.scenario.sequence] == [
        {"epochs": 5, "batch_size": 128}, {"epochs": 20, "batch_size": 32}, {"epochs": 15, "batch_size": 12}
    ]
    with pytest.raises(ConfigError, match="no smoke variant"):
        load_config("esc50-cpu", smoke=True)


def test_aicl_paper_keeps_each_datasets_input_length(paper_root: Path) -> None:
    from audio_ticl.benchmark.scenarios import build_tasks, model_frames, task_frames

    for smoke in (False, True):
        cfg = load_config("aicl-paper", smoke=smoke, overrides=[f"data.root={paper_root}"])
        assert cfg.features.target_frames is None and cfg.model.per_task_pos_embed is True
    tasks, _ = build_tasks(cfg, progress=False)
    assert task_frames(tasks) == {0: 128, 1: 512, 2: 400}  # Speech Commands, ESC-50, UrbanSound8K (AVE's fallback)
    assert model_frames(tasks) == 512


@pytest.mark.slow
def test_aicl_paper_smoke_falls_back_to_urbansound8k_without_ave(paper_root: Path, tmp_path: Path) -> None:
    summaries = _smoke("aicl-paper", paper_root, tmp_path / "run")
    for name, summary in summaries.items():
        assert [t["source"] for t in summary["tasks"]] == ["speechcommands", "esc50", "urbansound8k"], name
        # ESC-50 tests on fold 4 and chooses epochs on fold 5, never on the test fold
        assert [t["n_test"] for t in summary["tasks"]][1] == 3
        # each dataset trains with its own epoch count (AI-CL: 5, 20, 15)
        assert [len(p["val_accuracy"]) for p in summary["per_task"]] == [5, 20, 15], name
        # ... and at its own input length, not padded to the longest (AI-CL); 16x16 patches, stride 16 here
        assert [t["input_frames"] for t in summary["tasks"]] == [128, 512, 400], name
        assert [p["tokens"] for p in summary["per_task"]] == [1 + 8 * 8, 1 + 8 * 32, 1 + 8 * 25], name
    assert summaries["aicl-gsa"]["avg_forgetting"] == 0.0


@pytest.mark.slow
def test_aicl_paper_smoke_uses_ave_when_it_is_there(paper_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "datasets"
    shutil.copytree(paper_root, root)
    make_ave_fixture(root / "AVE_Dataset")
    summaries = _smoke("aicl-paper", root, tmp_path / "run", "methods=[{name: finetune, strategy: finetune}]")
    tasks = summaries["finetune"]["tasks"]
    assert [t["source"] for t in tasks] == ["speechcommands", "esc50", "ave"]
    assert tasks[2]["classes"] == sorted(AVE_FIXTURE_CLASSES)


def test_a_broken_ave_folder_is_an_error_not_a_fallback(paper_root: Path, tmp_path: Path) -> None:
    root = tmp_path / "datasets"
    shutil.copytree(paper_root, root)
    (root / "AVE_Dataset").mkdir()  # there, but without the official lists
    args = ["run", "--preset", "aicl-paper", "--smoke", "--data-root", str(root), "--out", str(tmp_path / "run")]
    assert main([*args, "--no-progress"]) == 2
    assert not (tmp_path / "run" / "finetune" / "summary.json").exists()


@pytest.mark.slow
def test_esc50_5tasks_smoke_has_one_task_per_category(tmp_path: Path) -> None:
    root = make_esc50_fixture(tmp_path / "ESC-50", ESC50_TWO_PER_CATEGORY, seconds=0.3)
    summaries = _smoke("esc50-5tasks", root, tmp_path / "run")
    tasks = summaries["aicl-fta"]["tasks"]
    assert [t["name"] for t in tasks] == ["animals", "natural", "human", "domestic", "urban"]
    assert tasks[0]["classes"] == ["dog", "rooster"]


@pytest.mark.slow
def test_scv2_7tasks_smoke_has_seven_tasks_of_five_words(tmp_path: Path) -> None:
    root = make_speechcommands_fixture(tmp_path / "sc", SCV2_WORDS, speakers=3, takes=1)
    summaries = _smoke("scv2-7tasks", root, tmp_path / "run")
    tasks = summaries["finetune"]["tasks"]
    assert len(tasks) == 7 and all(len(t["classes"]) == 5 for t in tasks)
    assert sorted(c for t in tasks for c in t["classes"]) == sorted(SCV2_WORDS)


@pytest.mark.slow
def test_urbansound8k_5tasks_smoke_splits_by_fold(tmp_path: Path) -> None:
    root = make_urbansound8k_fixture(tmp_path / "UrbanSound8K", URBANSOUND8K_CLASSES, folds=(1, 2, 9, 10))
    summaries = _smoke("urbansound8k-5tasks", root, tmp_path / "run")
    tasks = summaries["aicl-gsa"]["tasks"]
    assert len(tasks) == 5 and all((t["n_train"], t["n_val"], t["n_test"]) == (4, 2, 2) for t in tasks)
