"""The README's "Adding a strategy" example runs end to end, by import path, exactly as written there."""
import json
import re
import sys
from pathlib import Path

import yaml

from audio_ticl.benchmark.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_strategy_example_runs(tmp_path, monkeypatch):
    section = README.read_text().split("## Adding a strategy", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert 25 <= len(code.strip().splitlines()) <= 45  # the walk-through is a whole strategy, not a fragment
    (tmp_path / "readme_strategy.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = {
        "extends": "smoke",
        "methods": [{
            "name": "anr", "strategy": "readme_strategy:AdaptersNormsReplay", "mixer": "gsa", "pet": "convpass",
            "strategy_options": {"mem_size": 8},
        }],
    }
    path = tmp_path / "anr.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    try:
        assert main(["run", "--config", str(path), "--out", str(out), "--no-progress"]) == 0
    finally:
        sys.modules.pop("readme_strategy", None)
        from audio_ticl.strategies import STRATEGIES

        STRATEGIES.pop("adapters_norms_replay", None)
    summary = json.loads((out / "anr" / "summary.json").read_text())
    # smoke model: embed 32, depth 1 -> LayerNorms norm1, norm2 and the final norm, 2 x 32 parameters each
    norms = 3 * 2 * 32
    for row in summary["per_task"]:
        assert row["trainable_params"] == row["task_specific_params"] + norms
    assert len(summary["accuracy_matrix"]) == 3
