"""The AI-CL protocol: one dataset per task (dataset_sequence), through the runner."""
import json

import yaml
from fixtures import make_speechcommands_fixture

from audio_ticl.benchmark.cli import main


def test_dataset_sequence_runs_one_task_per_dataset(tmp_path):
    sc_root = make_speechcommands_fixture(tmp_path / "sc", ["yes", "no", "up"], speakers=3, takes=2)
    config = {
        "extends": "smoke",
        "scenario": {
            "kind": "dataset_sequence",
            "sequence": [
                {"source": "synthetic", "name": "synth",
                 "options": {"classes": ["siren", "rain"], "clips_per_class": {"train": 4, "val": 2, "test": 2}}},
                {"source": "speechcommands", "root": str(sc_root), "name": "words"},
            ],
        },
        "methods": [{"name": "aicl", "strategy": "adapter_incremental", "mixer": "fta", "pet": "convpass"}],
    }
    path = tmp_path / "seq.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    assert main(["run", "--config", str(path), "--out", str(out), "--no-progress"]) == 0
    summary = json.loads((out / "aicl" / "summary.json").read_text())
    tasks = summary["tasks"]
    assert [t["name"] for t in tasks] == ["synth", "words"]
    assert tasks[0]["classes"] == ["siren", "rain"]
    assert tasks[1]["classes"] == ["no", "up", "yes"]  # word folders, sorted
    # the fixture puts speaker 0 in the test list and speaker 1 in the validation list: 2 takes each per word
    assert (tasks[1]["n_train"], tasks[1]["n_val"], tasks[1]["n_test"]) == (6, 6, 6)
    assert len(summary["accuracy_matrix"]) == 2
