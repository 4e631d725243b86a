"""Strategy registry, the TICLStrategy contract, and what each built-in strategy trains."""
import pytest
import torch

from audio_ticl.models import TaskIncrementalModel, create_model, create_pet
from audio_ticl.models.errors import TICLError
from audio_ticl.strategies import (
    STRATEGIES,
    StrategyError,
    TICLStrategy,
    get_strategy,
    make_optimizer_factory,
    register_strategy,
)


def _net(pet=True):
    backbone = create_model("ast_custom", input_frames=32, embed_dim=16, depth=1, num_heads=2, fstride=16, tstride=16)
    return TaskIncrementalModel(backbone, create_pet("convpass", dim_first_task=4, dim=4) if pet else None)


def _strategy(name, net):
    return get_strategy(name)(
        model=net, optimizer_factory=make_optimizer_factory("adam", 1e-3, 0.0, 0.9), train_mb_size=4, train_epochs=1,
        eval_mb_size=4, device="cpu",
    )


def test_builtin_strategies_are_registered():
    assert {"adapter_incremental", "finetune"} <= set(STRATEGIES)


def test_strategy_by_import_path():
    assert get_strategy("audio_ticl.strategies.finetune:Finetune") is STRATEGIES["finetune"]


def test_unknown_strategy_lists_the_registered_ones():
    with pytest.raises(StrategyError, match="unknown strategy 'nope'.*adapter_incremental"):
        get_strategy("nope")
    with pytest.raises(StrategyError, match="cannot import module"):
        get_strategy("no_such_module:Thing")
    with pytest.raises(StrategyError, match="not a subclass"):
        get_strategy("torch.nn:Linear")
    assert issubclass(StrategyError, TICLError)  # the CLI prints it on one line


def test_register_strategy_makes_a_subclass_available():
    @register_strategy("test_only_probe")
    class Probe(TICLStrategy):
        """A strategy used only by this test."""

    try:
        assert get_strategy("test_only_probe") is Probe and Probe.strategy_name == "test_only_probe"
    finally:
        STRATEGIES.pop("test_only_probe")


def test_adapter_incremental_needs_a_pet_method():
    with pytest.raises(StrategyError, match="needs a PET method"):
        _strategy("adapter_incremental", _net(pet=False))


def test_an_unknown_optimizer_is_a_strategy_error():
    with pytest.raises(StrategyError, match="unknown optimizer 'rmsprop'"):
        make_optimizer_factory("rmsprop", 1e-3, 0.0, 0.9)([torch.nn.Parameter(torch.zeros(1))])


class _Exp:
    def __init__(self, task):
        self.task_labels = [task]
        self.classes_in_this_experience = {0, 1}


@pytest.mark.parametrize("name", ["adapter_incremental", "finetune"])
def test_trainable_parameters_per_strategy(name):
    net = _net()
    strategy = _strategy(name, net)
    for task in (0, 1):
        net.add_task(task, 2)
        strategy.experience = _Exp(task)
        strategy.make_optimizer()
        trainable = {id(p) for p in net.parameters() if p.requires_grad}
        own = {id(p) for p in net.task_parameters(task)}
        other = {id(p) for t in net.task_ids if t != task for p in net.task_parameters(t)}
        backbone = {id(p) for p in net.backbone_parameters()}
        assert own <= trainable and not (other & trainable)
        if name == "adapter_incremental":
            assert trainable == own and not (backbone & trainable)
        else:
            assert backbone <= trainable
        strategy.on_task_end(task)
