"""One run folder, one config: a rerun or resume under another config is refused naming the keys, methods join a
folder only when asked, a diverging loss stops the run, and ``ticl table`` says where its rows' configs differ."""
from __future__ import annotations

import pytest

from audio_ticl.benchmark.cli import main
from audio_ticl.benchmark.errors import ConfigError
from audio_ticl.benchmark.report.table import build_table
from audio_ticl.benchmark.results import write_yaml
from audio_ticl.benchmark.run_folder import merged_run_config

pytestmark = pytest.mark.usefixtures("one_thread")

BASE = {"seed": 0, "train": {"lr": 0.1, "epochs": 2, "threads": 1},
        "methods": [{"name": "a", "strategy": "finetune"}, {"name": "b", "strategy": "ewc"}]}


def _folder(tmp_path, config=BASE):
    write_yaml(tmp_path / "config.yaml", config)
    return tmp_path


def test_a_fresh_folder_takes_the_config_and_an_equal_one_is_accepted(tmp_path):
    assert merged_run_config(tmp_path, BASE) == BASE
    assert merged_run_config(_folder(tmp_path), BASE) == BASE
    threads = {**BASE, "train": {**BASE["train"], "threads": 2}}  # changes no number
    assert merged_run_config(tmp_path, threads)["train"]["threads"] == 1
    logged = {**BASE, "logging": {"tensorboard": True}}  # neither does logging, nor a folder made before it existed
    assert merged_run_config(tmp_path, logged) == BASE


def test_another_config_is_refused_naming_each_key_with_both_values(tmp_path):
    other = {**BASE, "seed": 1, "train": {**BASE["train"], "epochs": 3}}
    with pytest.raises(ConfigError, match=r"holds a run of another config, which differs at seed \(0 -> 1\), "
                       r"train.epochs \(2 -> 3\); choose another --out"):
        merged_run_config(_folder(tmp_path), other)


def test_a_changed_method_is_refused_and_a_new_one_needs_add_methods(tmp_path):
    folder = _folder(tmp_path)
    changed = {**BASE, "methods": [{"name": "a", "strategy": "lwf"}]}
    with pytest.raises(ConfigError, match=r"method 'a' ran there under another config, which differs at "
                       r"methods.a.strategy \('finetune' -> 'lwf'\)"):
        merged_run_config(folder, changed)
    new = {**BASE, "methods": [{"name": "c", "strategy": "si"}]}
    with pytest.raises(ConfigError, match="has no method c: pass --add-methods to add it"):
        merged_run_config(folder, new)
    merged = merged_run_config(folder, new, add_methods=True)
    assert [m["name"] for m in merged["methods"]] == ["a", "b", "c"]
    subset = {**BASE, "methods": BASE["methods"][1:]}  # --methods b: the folder keeps a
    assert [m["name"] for m in merged_run_config(folder, subset)["methods"]] == ["a", "b"]


def test_the_cli_refuses_a_rerun_or_resume_under_another_config(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--preset", "smoke", "--methods", "finetune", "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["run", "--preset", "smoke", "--methods", "finetune", "--out", str(out), "--no-progress", "--resume",
                 "--set", "train.lr=0.5"]) == 2
    err = capsys.readouterr().err
    assert "ticl: error: run folder" in err and "train.lr (0.003 -> 0.5)" in err
    assert main(["run", "--preset", "smoke", "--methods", "aicl-gsa", "--out", str(out), "--no-progress"]) == 2
    assert "has no method aicl-gsa: pass --add-methods" in capsys.readouterr().err
    assert main(["run", "--preset", "smoke", "--methods", "aicl-gsa", "--out", str(out), "--no-progress",
                 "--add-methods"]) == 0
    assert "aicl-gsa" in (out / "table.md").read_text() and "finetune" in (out / "table.md").read_text()
    assert main(["run", "--preset", "smoke", "--out", str(tmp_path / "nowhere"), "--resume", "--no-progress"]) == 2
    assert "--resume: run folder" in capsys.readouterr().err


def test_a_finished_method_is_not_kept_under_another_config(tmp_path, capsys):
    """The second line of defence: a method folder whose own config.yaml differs from the run's (edited, or copied
    in) is not taken as finished by --resume."""
    out = tmp_path / "run"
    assert main(["run", "--preset", "smoke", "--methods", "finetune", "--out", str(out), "--no-progress"]) == 0
    text = (out / "finetune" / "config.yaml").read_text().replace("batch_size: 8", "batch_size: 9")
    (out / "finetune" / "config.yaml").write_text(text)
    assert main(["run", "--preset", "smoke", "--methods", "finetune", "--out", str(out), "--no-progress",
                 "--resume"]) == 2
    assert "finished run" in capsys.readouterr().err


def test_a_diverging_loss_stops_the_run_naming_method_task_and_epoch(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", "--preset", "smoke", "--methods", "finetune", "--out", str(out), "--no-progress",
                 "--set", "methods.finetune.train.lr=1e30"]) == 2
    err = capsys.readouterr().err
    assert "ticl: error: finetune: the training loss became" in err and "in task 0, epoch 1, iteration" in err
    assert not (out / "finetune" / "summary.json").exists()


def test_the_table_names_the_keys_where_its_rows_configs_differ(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["run", "--preset", "smoke", "--methods", "finetune", "--out", str(one), "--no-progress"]) == 0
    assert main(["run", "--preset", "smoke", "--methods", "finetune", "--out", str(two), "--no-progress",
                 "--set", "train.batch_size=4"]) == 0
    assert "Caution: the rows ran under configs" not in build_table([one])
    table = build_table([one, two])
    assert "Caution: the rows ran under configs that differ at train.batch_size (8: finetune (one); 4: finetune " \
           "(two))" in table
