"""One test per assumption of ``strategies/avalanche_compat.py`` about Avalanche 0.6 (setup.cfg pins <0.7).

Each test is named after the assumption it checks, so an Avalanche upgrade that breaks one fails here, by name,
rather than deep inside a run. The last tests check the Avalanche algorithms that ``strategies.replay``,
``strategies.agem`` and ``strategies.si`` reproduce or rely on when they checkpoint their state.
"""
import random
import warnings

import pytest
import torch
import torch.nn.functional as F
from avalanche.training.plugins import AGEMPlugin, EvaluationPlugin
from avalanche.training.plugins.clock import Clock
from avalanche.training.storage_policy import ReservoirSamplingBuffer
from test_baselines import _Hook, _net, _tasks

from audio_ticl.benchmark.scenarios import make_benchmark
from audio_ticl.strategies import TICLStrategy, get_strategy, make_optimizer_factory
from audio_ticl.strategies import avalanche_compat as compat
from audio_ticl.strategies.agem import IndexedAGEMPlugin
from audio_ticl.strategies.replay import IndexedReservoirBuffer

pytestmark = pytest.mark.usefixtures("one_thread")


def _strategy(name="finetune", net=None, plugins=(), cls=None, **options):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No loggers specified")
        evaluator = EvaluationPlugin(loggers=[])
    cls = cls or get_strategy(name)
    return cls(
        model=net if net is not None else _net(), optimizer_factory=make_optimizer_factory("adam", 1e-3, 0.0, 0.9),
        train_mb_size=4, train_epochs=1, eval_mb_size=8, device="cpu", plugins=list(plugins), evaluator=evaluator,
        **options,
    )


def _augmented_tasks():
    tasks = _tasks()
    for t in tasks:
        t.freqm, t.timem = 8, 4  # SpecAugment on: the train and eval transform groups differ
    return tasks


# 1 -------------------------------------------------------------------------------------------------------
def test_1_criterion_is_the_templates_loss_function():
    strategy = _strategy()
    assert isinstance(compat.criterion(strategy), torch.nn.CrossEntropyLoss)


# 2 -------------------------------------------------------------------------------------------------------
def test_2_taskaware_subset_keeps_order_targets_task_labels_and_transform_group():
    torch.manual_seed(0)
    train = make_benchmark(_augmented_tasks()).train_stream[1].dataset
    idx = [5, 0, 3]
    subset = compat.taskaware_subset(train, idx)
    assert list(subset.targets) == [train.targets[i] for i in idx]
    assert set(subset.targets_task_labels) == {1}
    for k, i in enumerate(idx):  # eval group: no augmentation, so items compare exactly
        assert torch.equal(subset.eval()[k][0], train.eval()[i][0])
    x = subset[0][0]  # still the train group: SpecAugment masks (zeros after normalisation differ from the clip)
    torch.manual_seed(1)
    assert any(not torch.equal(subset[0][0], x) for _ in range(5)), "the subset lost the train transform group"


# 3 -------------------------------------------------------------------------------------------------------
def test_3_make_taskaware_dataset_has_task_labels_and_transform_groups():
    raw = torch.utils.data.TensorDataset(torch.ones(4, 2), torch.tensor([0, 1, 0, 1]))
    data = compat.make_taskaware_dataset(
        raw, task_labels=3, transform_groups={"train": (lambda x: x * 2, None), "eval": (lambda x: x, None)},
        initial_transform_group="train",
    )
    x, y, t = data[1]
    assert torch.equal(x, torch.full((2,), 2.0)) and int(y) == 1 and int(t) == 3
    assert torch.equal(data.eval()[1][0], torch.ones(2))
    assert list(data.targets) == [0, 1, 0, 1] and set(data.targets_task_labels) == {3}


# 4 -------------------------------------------------------------------------------------------------------
def test_4_common_dataloader_args_are_the_strategys_loader_arguments():
    args = compat.common_dataloader_args(
        _strategy(), batch_size=4, num_workers=0, shuffle=True, pin_memory=None, persistent_workers=False,
        drop_last=False,
    )
    assert args["batch_size"] == 4 and args["shuffle"] is True and args["drop_last"] is False
    torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(8, 1)), **args)  # DataLoader accepts them


# 5 -------------------------------------------------------------------------------------------------------
def test_5_lwf_distillation_loss_is_the_softened_kl():
    reg = compat.LwFRegularizer(alpha=1.0, temperature=2.0)
    out, prev = torch.randn(5, 4), torch.randn(5, 4)
    expected = F.kl_div(F.log_softmax(out[:, :3] / 2.0, dim=1), F.softmax(prev[:, :3] / 2.0, dim=1),
                        reduction="batchmean")
    torch.testing.assert_close(reg.distillation_loss(out, prev, range(3)), expected)


# 6 -------------------------------------------------------------------------------------------------------
def test_6_lwf_call_weighs_the_unweighted_penalty_by_alpha():
    class Constant(compat.LwFRegularizer):
        def unweighted_penalty(self, out, x, curr_model):
            return torch.tensor(3.0)

    assert float(Constant(alpha=0.5)(torch.zeros(1), torch.zeros(1), None)) == pytest.approx(1.5)
    assert float(Constant(alpha=[0.25, 1.0])(torch.zeros(1), torch.zeros(1), None)) == pytest.approx(0.75)


# 7 -------------------------------------------------------------------------------------------------------
def test_7_experience_hooks_run_after_the_plugins_and_can_skip_training():
    events = []

    class Probe(TICLStrategy):
        skip = False

        def experience_trained(self):
            events.append(("trained", self.current_task))

        def trains_experience(self, experience):
            return not self.skip

    bm = make_benchmark(_tasks())
    plugins = [_Hook("after_training_exp", lambda s: events.append(("plugin", s.current_task))),
               _Hook("after_training_iteration", lambda s: events.append(("step", s.current_task)))]
    strategy = _strategy(cls=Probe, plugins=plugins)
    strategy.train(bm.train_stream[0])
    assert ("step", 0) in events and events[-2:] == [("plugin", 0), ("trained", 0)]
    events.clear()
    strategy.skip = True
    strategy.train(bm.train_stream[1])
    assert events == [("plugin", 1), ("trained", 1)]  # no step, but the experience still ends


# 8 -------------------------------------------------------------------------------------------------------
def test_8_the_clock_is_exactly_its_named_counters():
    clock = Clock()
    assert set(vars(clock)) == set(compat.CLOCK_COUNTERS)
    assert all(isinstance(v, int) for v in vars(clock).values())
    state = {name: k + 1 for k, name in enumerate(compat.CLOCK_COUNTERS)}
    fresh = Clock()
    compat.load_clock_state(fresh, state)
    assert compat.clock_state(fresh) == state
    with pytest.raises(KeyError, match="no counter"):
        compat.load_clock_state(fresh, {"train_epochs_total": 1})


# ------------------------------------------------------------------------- the algorithms the state relies on
def test_replay_reservoir_reproduces_avalanches_draw_for_draw():
    train = make_benchmark(_tasks()).train_stream
    ours, stock = IndexedReservoirBuffer(5), ReservoirSamplingBuffer(5)
    for k in (0, 1):  # a second offer exercises the merge with what is stored
        for buffer in (ours, stock):
            torch.manual_seed(k)
            buffer.update_from_dataset(train[k].dataset)
        torch.testing.assert_close(ours.weights, stock._buffer_weights, rtol=0, atol=0)
    for buffer in (ours, stock):
        buffer.resize(None, 3)
    torch.testing.assert_close(ours.weights, stock._buffer_weights, rtol=0, atol=0)
    assert len(ours.buffer) == len(stock.buffer) == 3
    for k in range(3):
        assert torch.equal(ours.buffer.eval()[k][0], stock.buffer.eval()[k][0])
    # and the recorded indices name the stored samples (offered datasets were whole tasks: indices into them)
    for k in range(3):
        x, _, task = ours.buffer.eval()[k]
        assert torch.equal(x, train[int(task)].dataset.eval()[int(ours.source_indices[k])][0])


def test_agem_memory_update_reproduces_avalanches_draw_for_draw():
    train = make_benchmark(_tasks()).train_stream
    ours, stock = IndexedAGEMPlugin(5, 4), AGEMPlugin(5, 4)
    for k in (0, 1):
        states = []
        for plugin in (ours, stock):
            random.seed(k)
            torch.manual_seed(k)
            plugin.update_memory(train[k].dataset)
            states.append((random.getstate(), torch.get_rng_state()))
        assert states[0][0] == states[1][0] and torch.equal(states[0][1], states[1][1])  # the same draws
    assert [len(b) for b in ours.buffers] == [len(b) for b in stock.buffers] == [5, 5]
    for b_ours, b_stock, (task, kept) in zip(ours.buffers, stock.buffers, ours.memory_index):
        for k in range(len(b_ours)):
            assert torch.equal(b_ours.eval()[k][0], b_stock.eval()[k][0])
            assert torch.equal(b_ours.eval()[k][0], train[task].dataset.eval()[int(kept[k])][0])


def test_si_anchor_equals_new_theta_after_a_task():
    """SI's checkpoint saves the anchors but not ``new_theta``: Avalanche's update_ewc_data makes them equal."""
    strategy = _strategy("si")
    strategy.train(make_benchmark(_tasks()).train_stream[0])
    si = strategy.si
    assert set(si.ewc_data[0]) == set(si.syn_data["new_theta"]) and si.ewc_data[0]
    for name, anchor in si.ewc_data[0].items():
        assert torch.equal(anchor.data, si.syn_data["new_theta"][name].data), name


def test_ewc_state_is_per_experience_dicts_of_param_data():
    strategy = _strategy("ewc")
    bm = make_benchmark(_tasks())
    strategy.train(bm.train_stream[0])
    ewc = strategy.ewc
    assert set(ewc.importances) == set(ewc.saved_params) == {0}
    assert all(hasattr(v, "data") and isinstance(v.data, torch.Tensor) for v in ewc.importances[0].values())
