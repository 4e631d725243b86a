"""The packages' layering and the one error hierarchy.

``models`` is the bottom layer (pure PyTorch: no Avalanche, no other package of the suite), ``strategies`` may
import ``models`` (and Avalanche), ``benchmark`` may import both; nothing imports upwards, so there is no cycle.
The error root :class:`TICLError` therefore lives in ``models.errors``, and every user-input error derives from it.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: package -> the suite's packages it may import
ALLOWED = {"models": set(), "strategies": {"models"}, "benchmark": {"models", "strategies"}}


def _loaded_after(module: str) -> list[str]:
    code = (
        f"import sys, {module}\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('audio_ticl.') or m == 'avalanche')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_importing_models_loads_no_other_package_and_no_avalanche():
    loaded = _loaded_after("audio_ticl.models")
    assert not [m for m in loaded if m.startswith(("audio_ticl.strategies", "audio_ticl.benchmark"))]
    assert "avalanche" not in loaded


def test_importing_strategies_loads_no_benchmark_module():
    loaded = _loaded_after("audio_ticl.strategies")
    assert "audio_ticl.strategies" in loaded
    assert not [m for m in loaded if m.startswith("audio_ticl.benchmark")]


def _suite_imports(path: Path, package: str) -> set[str]:
    """The suite's packages a source file imports, absolute (``audio_ticl.x``) or relative (``..x``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names = [node.module or ""]
            else:  # relative: resolve against the file's package
                parts = path.relative_to(ROOT).parent.parts
                base = parts[: len(parts) - node.level + 1]
                names = [".".join(("audio_ticl", *base, *(node.module.split(".") if node.module else [])))]
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "audio_ticl" and len(parts) > 1 and parts[1] != package:
                found.add(parts[1])
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_no_source_file_imports_upwards(package):
    offenders = []
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = _suite_imports(path, package) - ALLOWED[package]
        offenders += [f"{path.relative_to(ROOT)} imports {sorted(bad)}"] if bad else []
    assert offenders == []


def test_every_user_input_error_is_a_ticl_error():
    from audio_ticl.benchmark import errors as benchmark_errors
    from audio_ticl.benchmark.report.collect import UnfinishedRunError
    from audio_ticl.models.convert import ConversionError, WeightsUnavailableError
    from audio_ticl.models.errors import ModelError, TICLError, UnknownNameError, UnknownOptionError
    from audio_ticl.strategies import StrategyError

    assert benchmark_errors.TICLError is TICLError  # one root, re-exported
    for cls in (benchmark_errors.ConfigError, benchmark_errors.DataError, benchmark_errors.CheckpointError,
                ModelError, UnknownNameError, UnknownOptionError, ConversionError, WeightsUnavailableError,
                StrategyError, UnfinishedRunError):
        assert issubclass(cls, TICLError), cls
    # and the builtins they derived from before still catch them
    assert issubclass(ModelError, ValueError) and issubclass(UnknownNameError, KeyError)
    assert issubclass(UnknownOptionError, TypeError) and issubclass(StrategyError, ValueError)
