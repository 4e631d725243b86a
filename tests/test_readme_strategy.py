"""The README's "Adding a strategy" example runs end to end, by import path, as written."""
import json
import re
import sys
from pathlib import Path

import yaml

from benchmark.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_strategy_example_runs(tmp_path, monkeypatch):
    section = README.read_text().split("## Adding a strategy", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    (tmp_path / "readme_strategy.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    config = {
        "extends": "smoke",
        "methods": [{"name": "probe", "strategy": "readme_strategy:HeadsOnly", "mixer": "gsa"}],
    }
    path = tmp_path / "probe.yaml"
    path.write_text(yaml.safe_dump(config))
    out = tmp_path / "run"
    try:
        assert main(["run", "--config", str(path), "--out", str(out), "--no-progress"]) == 0
    finally:
        sys.modules.pop("readme_strategy", None)
        from strategies import STRATEGIES

        STRATEGIES.pop("heads_only", None)
    summary = json.loads((out / "probe" / "summary.json").read_text())
    for row in summary["per_task"]:
        assert row["trainable_params"] == row["task_specific_params"]  # only the head trains
    assert summary["avg_forgetting"] == 0.0  # frozen backbone, frozen old heads: nothing to forget
