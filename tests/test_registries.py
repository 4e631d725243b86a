"""Registry-driven coverage: the strategies, weight converters and init sources registered must equal the ones
listed here with the test module that trains or loads each by name, so a new entry without a test fails.

(Models, token mixers and PET methods: ``test_model_registries.py``; data sources: ``test_datasets.py``.)
"""
from __future__ import annotations

from pathlib import Path

import pytest

import audio_ticl.benchmark.upstream  # noqa: F401  (registers the ``upstream`` init)
from audio_ticl.models.convert import CONVERTERS
from audio_ticl.models.init import list_inits
from audio_ticl.strategies import STRATEGIES

TESTS = Path(__file__).resolve().parent

#: strategy -> the test module whose runs train it by its registered name
STRATEGY_TESTS = {
    "adapter_incremental": "test_strategies.py",
    "finetune": "test_strategies.py",
    "linear_probe": "test_baselines.py",
    "ewc": "test_baselines.py",
    "online_ewc": "test_baselines.py",
    "si": "test_si.py",
    "lwf": "test_baselines.py",
    "replay": "test_baselines.py",
    "agem": "test_baselines.py",
    "cumulative": "test_cumulative.py",
    "joint": "test_cumulative.py",
}
#: converter prefix of ``model.init`` -> its proof (the source architecture with random weights, converted)
CONVERTER_TESTS = {
    "timm": "test_convert_timm.py",
    "ast": "test_convert_ast.py",
    "ssast": "test_convert_ssast.py",
    "hf": "test_convert_hf.py",
    "ssamba": "test_ssamba.py",
}
#: init source -> the test module that loads weights through it
INIT_TESTS = {"random": "test_model_factory.py", "upstream": "test_model_factory.py"}


def test_registries_equal_the_covered_sets() -> None:
    assert set(STRATEGIES) == set(STRATEGY_TESTS)
    assert set(CONVERTERS) == set(CONVERTER_TESTS)
    assert set(list_inits()) == set(INIT_TESTS)


@pytest.mark.parametrize(
    "name,module",
    [*STRATEGY_TESTS.items(), *CONVERTER_TESTS.items(), *INIT_TESTS.items()],
)
def test_each_entry_is_named_in_its_test_module(name: str, module: str) -> None:
    text = (TESTS / module).read_text()
    assert f'"{name}"' in text or f"'{name}'" in text or f"{name}:" in text, f"{module} never names {name!r}"
