"""The suite installs under one import name, ``audio_ticl``, so a user's own ``models/`` cannot shadow it."""
from __future__ import annotations

import ast
import configparser
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP = ("benchmark", "models", "strategies")


def _declared_packages() -> set[str]:
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "setup.cfg")
    return {p.strip() for p in cfg["options"]["packages"].split() if p.strip()}


def test_setup_cfg_lists_every_subpackage() -> None:
    on_disk = {
        "audio_ticl." + ".".join(init.parent.relative_to(ROOT).parts)
        for top in TOP
        for init in (ROOT / top).rglob("__init__.py")
    }
    assert _declared_packages() == on_disk


def test_a_users_own_models_folder_does_not_shadow_the_suite(tmp_path: Path) -> None:
    for name in TOP:  # a research folder with packages of the same generic names, first on sys.path
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("raise ImportError('the user package was imported')\n")
    code = (
        "import sys, audio_ticl.models, audio_ticl.benchmark.cli, audio_ticl.strategies\n"
        "print(audio_ticl.models.__file__)\n"
        "print(sorted(n for n in ('models', 'benchmark', 'strategies') if n in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    models_file, loaded_generic = out.stdout.strip().splitlines()
    # the suite's own models/: this repository's folder (editable install) or the installed copy (wheel)
    assert tmp_path not in Path(models_file).resolve().parents
    assert Path(models_file).parts[-3:] == ("audio_ticl", "models", "__init__.py") or Path(models_file).resolve() == (
        ROOT / "models" / "__init__.py"
    ).resolve()
    assert loaded_generic == "[]"


def test_no_source_file_imports_a_bare_top_level_name() -> None:
    offenders = []
    for top in (*TOP, "tests"):
        for path in (ROOT / top).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                offenders += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names if n.split(".")[0] in TOP]
    assert offenders == []
