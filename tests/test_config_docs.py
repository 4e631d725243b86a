"""The README's configuration reference is generated from the schema's field docs and must be current."""
import dataclasses
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from audio_ticl.benchmark import config_docs
from audio_ticl.benchmark.config import RunConfig
from audio_ticl.benchmark.config_docs import END, START, config_reference_markdown, read_section, replace_section

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_config_reference_is_current():
    # A fresh interpreter sees only the shipped registrations, never a name some test module registered.
    done = subprocess.run(
        [sys.executable, "-m", "audio_ticl.benchmark.config_docs", "--check", str(README)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, (
        f"{done.stderr[-2000:]}\nREADME.md's configuration reference is stale: run "
        "`python -m audio_ticl.benchmark.config_docs --write README.md`"
    )


def _leaf_keys(cls: type, prefix: str = "") -> list[str]:
    hints = typing.get_type_hints(cls)
    keys = []
    for f in dataclasses.fields(cls):
        key, hint = f"{prefix}{f.name}", hints[f.name]
        item = typing.get_args(hint)[0] if typing.get_origin(hint) is list else None
        if dataclasses.is_dataclass(hint):
            keys += _leaf_keys(hint, f"{key}.")
        elif item is not None and dataclasses.is_dataclass(item):
            keys += _leaf_keys(item, f"{key}[].")
        else:
            keys.append(key)
    return keys


def test_every_key_has_a_row():
    table = config_reference_markdown()
    missing = [key for key in _leaf_keys(RunConfig) if f"| `{key}` |" not in table]
    assert not missing
    assert "| `scenario.sequence[].fallback` | null |" in table  # a step inside a step: one row, no recursion


def test_registry_choices_appear_as_soon_as_they_are_registered(monkeypatch):
    from audio_ticl.models import PET_METHODS
    from audio_ticl.strategies import STRATEGIES

    monkeypatch.setitem(STRATEGIES, "dummy_strategy", object)
    monkeypatch.setitem(PET_METHODS, "dummy_pet", object)
    table = config_reference_markdown()
    assert "`dummy_strategy`" in table.split("| `methods[].strategy` |")[1].splitlines()[0]
    assert "`convpass`, `dummy_pet`" in table


def test_replace_section_keeps_the_rest_of_the_file():
    text = f"# title\n\nbefore\n{START}\nold table\n{END}\nafter\n"
    new = replace_section(text, "new table")
    assert new == f"# title\n\nbefore\n{START}\nnew table\n{END}\nafter\n"
    assert read_section(new) == "new table"
    with pytest.raises(ValueError, match="config-reference:start"):
        read_section("no markers here")


def test_write_and_check(tmp_path, capsys):
    from audio_ticl.benchmark.config_docs import PRETRAIN_END, PRETRAIN_START

    path = tmp_path / "README.md"
    path.write_text(f"intro\n{START}\nstale\n{END}\nmiddle\n{PRETRAIN_START}\nstale\n{PRETRAIN_END}\n")
    assert config_docs.main(["--check", str(path)]) == 1
    assert config_docs.main(["--write", str(path)]) == 0
    assert config_docs.main(["--check", str(path)]) == 0
    text = path.read_text()
    assert text.startswith(f"intro\n{START}\n<!-- generated from benchmark/config_schema.py")
    assert f"middle\n{PRETRAIN_START}\n<!-- generated from benchmark/pretrain/schema.py" in text
    path.write_text(f"intro\n{START}\nstale\n{END}\n")  # a README without the second pair: an error naming it
    with pytest.raises(ValueError, match="pretrain-config-reference:start"):
        config_docs.main(["--write", str(path)])


def test_the_pretraining_reference_lists_every_pretraining_key():
    from audio_ticl.benchmark.config_docs import PRETRAIN_END, PRETRAIN_START, pretrain_reference_markdown
    from audio_ticl.benchmark.pretrain.schema import PretrainConfig

    table = pretrain_reference_markdown()
    for key in _leaf_keys(PretrainConfig):
        assert f"| `{key}` |" in table, key
    assert read_section(README.read_text(), PRETRAIN_START, PRETRAIN_END) == table
