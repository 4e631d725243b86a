"""Task checkpoints: the explicit schema, ``weights_only`` loading, RNG round trips, and per strategy: a strategy
rebuilt from its saved state continues exactly as the one that saved it."""
import copy
import io
import random

import numpy as np
import pytest
import torch
from test_baselines import _net, _strategy, _tasks

from audio_ticl.benchmark.checkpoint import FORMAT_VERSION, Checkpoint, Checkpointer, RNGStates, RunProgress
from audio_ticl.benchmark.errors import CheckpointError
from audio_ticl.benchmark.run_folder import check_resumed_config
from audio_ticl.benchmark.scenarios import make_benchmark
from audio_ticl.strategies.state import RestoreContext, check_plain

pytestmark = pytest.mark.usefixtures("one_thread")


def _weights_only_roundtrip(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _draws():
    return torch.rand(3), random.random(), float(np.random.rand())


def test_rng_states_survive_a_weights_only_file():
    torch.manual_seed(3), random.seed(3), np.random.seed(3)
    np.random.randn()  # leaves a cached Gaussian in NumPy's legacy state
    saved = RNGStates.capture()
    expected = _draws()
    data = _weights_only_roundtrip(saved.to_dict())
    _draws()
    RNGStates(torch=data["torch"], python=tuple(data["python"]), numpy=data["numpy"]).restore()
    again = _draws()
    assert torch.equal(again[0], expected[0]) and again[1:] == expected[1:]


def test_checkpointer_writes_the_schema_and_reads_it_back(tmp_path):
    net = _net()
    net.add_task(0, 2)
    progress = RunProgress(R=[[0.5]], correct=[["01"]], val_history={"0": [0.5]})
    checkpoint = Checkpoint.capture(net, [(0, 2)], progress, {"clock": {"train_exp_counter": 1}}, {"seed": 0})
    checkpoints = Checkpointer(tmp_path)
    path = checkpoints.save(0, checkpoint)
    assert path.name == "task_00.pt" and checkpoints.latest() == path
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {"format_version", "model", "tasks", "progress", "strategy", "rng", "config"}
    assert raw["format_version"] == FORMAT_VERSION
    _, back = checkpoints.load_latest()
    assert back.tasks == [(0, 2)] and back.progress == progress and back.strategy == checkpoint.strategy
    fresh = _net()
    back.restore_model(fresh, torch.device("cpu"))
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in fresh.state_dict().items())
    check_resumed_config(back.config, {"seed": 0}, "here")
    with pytest.raises(CheckpointError, match=r"here was written under another config, which differs at seed \(0"):
        check_resumed_config(back.config, {"seed": 1}, "here")


def test_an_old_pickled_checkpoint_is_a_clear_error(tmp_path):
    from avalanche.training.utils import ParamData

    folder = tmp_path / "checkpoints"
    folder.mkdir()
    old = {"importances": {0: {"w": ParamData("imp_w", init_tensor=torch.zeros(2))}}}  # the old format's pickles
    torch.save({"net": {}, "strategy": {"ewc": old}}, folder / "task_00.pt")
    with pytest.raises(CheckpointError, match="without --resume"):
        Checkpointer(tmp_path).load_latest()
    torch.save({"net": {}, "tasks": []}, folder / "task_00.pt")  # plain, but no format version
    with pytest.raises(CheckpointError, match="no format version"):
        Checkpointer(tmp_path).load_latest()


def test_a_strategy_state_that_is_not_plain_is_refused_with_its_path(tmp_path):
    check_plain({"a": [torch.zeros(1), 1, "x", None, {"b": (1.5, True)}]})
    with pytest.raises(TypeError, match=r"state\['ewc'\]\['plugin'\]"):
        check_plain({"ewc": {"plugin": object()}})
    net = _net()
    checkpoint = Checkpoint.capture(net, [], RunProgress(), {"x": object()}, {})
    with pytest.raises(TypeError, match="strategy state"):
        Checkpointer(tmp_path).save(0, checkpoint)


STATEFUL = [
    ("ewc", False, {"ewc_lambda": 50.0}),
    ("online_ewc", True, {"ewc_lambda": 50.0, "decay_factor": 0.5}),
    ("si", False, {"si_lambda": 1.0}),
    ("replay", True, {"mem_size": 5}),
    ("replay", False, {"mem_size": 7, "task_balanced_dataloader": True}),
    ("agem", False, {"patterns_per_exp": 5, "sample_size": 4}),
    ("lwf", False, {}),
    ("finetune", False, {}),
]


@pytest.mark.parametrize("name,pet,options", STATEFUL, ids=[f"{n}{'+pet' if p else ''}" for n, p, _ in STATEFUL])
def test_a_restored_strategy_continues_exactly(name, pet, options):
    """Train tasks 0-1, save the state through a weights_only file, rebuild the strategy on a copy of the model,
    restore, then train task 2 on both from the same RNG state: the weights must agree to the last bit."""
    torch.manual_seed(0)
    random.seed(0)
    bm = make_benchmark(_tasks())
    net = _net(pet)
    original = _strategy(name, net, bm, **options)
    for k in (0, 1):
        original.train(bm.train_stream[k])
    state = _weights_only_roundtrip(original.cl_state())
    check_plain(state)
    resumed_net = copy.deepcopy(net)
    resumed = _strategy(name, resumed_net, bm, **options)
    datasets = {k: bm.train_stream[k].dataset for k in (0, 1)}
    resumed.load_cl_state(state, RestoreContext(torch.device("cpu"), (0, 1), datasets))
    assert resumed.method_state_bytes() == original.method_state_bytes()
    assert resumed.cl_state().keys() == original.cl_state().keys()
    rng = (torch.get_rng_state(), random.getstate(), np.random.get_state())
    original.train(bm.train_stream[2])
    torch.set_rng_state(rng[0]), random.setstate(rng[1]), np.random.set_state(rng[2])
    resumed.train(bm.train_stream[2])
    after, expected = resumed_net.state_dict(), net.state_dict()
    assert after.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(after[key], value), (name, key)
