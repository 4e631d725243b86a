"""The standard CL baselines (EWC, online EWC, SI, LwF, replay, A-GEM, cumulative, joint, linear probe) on a tiny
random task-incremental scenario: they run end to end, and each one's defining property holds."""
import copy
import logging
import warnings

import pytest
import torch
from avalanche.core import SupervisedPlugin
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin
from avalanche.training.storage_policy import ClassBalancedBuffer

from audio_ticl.benchmark.scenarios import FeatureSplit, TaskData, make_benchmark
from audio_ticl.models import TaskIncrementalModel, create_model, create_pet
from audio_ticl.strategies import StrategyError, get_strategy, make_optimizer_factory
from audio_ticl.strategies.plugins import BestValidationPlugin, evaluate_accuracy
from audio_ticl.strategies.replay import TaskClassBalancedBuffer

pytestmark = pytest.mark.usefixtures("one_thread")


CLASSES = (2, 2, 3)  # classes per task; ids restart at 0 in each task
N = 8  # clips per split


def _tasks(classes=CLASSES):
    tasks = []
    for i, c in enumerate(classes):
        g = torch.Generator().manual_seed(100 + i)
        splits = {
            s: FeatureSplit(torch.randn(N, 32, 128, generator=g), torch.arange(N) % c)
            for s in ("train", "val", "test")
        }
        tasks.append(TaskData(i, f"t{i}", "random", [str(k) for k in range(c)], splits, 0.0, 1.0, 0, 0))
    return tasks


def _net(pet=False):
    backbone = create_model("ast_custom", input_frames=32, embed_dim=16, depth=1, num_heads=2, fstride=16, tstride=16)
    return TaskIncrementalModel(backbone, create_pet("convpass", dim_first_task=4, dim=4) if pet else None)


def _strategy(name, net, bm, plugins=(), train_mb_size=4, train_epochs=1, lr=1e-3, **options):
    validation = BestValidationPlugin([e.dataset.eval() for e in bm.valid_stream], batch_size=8)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No loggers specified")
        evaluator = EvaluationPlugin(accuracy_metrics(experience=True), loggers=[])
    return get_strategy(name)(
        model=net, optimizer_factory=make_optimizer_factory("adam", lr, 0.0, 0.9), train_mb_size=train_mb_size,
        train_epochs=train_epochs, eval_mb_size=8, device="cpu", plugins=[validation, *plugins], evaluator=evaluator,
        **options,
    )


def _run(name, pet=False, plugins=(), **options):
    """Train task by task as the runner does, check the accuracy rows R[i][j] (j <= i); return (strategy, net).

    Every test below goes through here, so each one also checks that its strategy trains (its trainable
    parameters change on every task it trains on; joint trains on the last call only) and that Avalanche's
    accuracy for each seen task is the suite's own evaluation of the same test set."""
    torch.manual_seed(0)
    tasks = _tasks()
    bm = make_benchmark(tasks)
    net = _net(pet)
    before = {}  # the weights once the task's head/PET modules exist, before any update

    def snapshot(strategy):
        before.clear()
        before.update({k: v.clone() for k, v in net.state_dict().items()})

    strategy = _strategy(name, net, bm, [_Hook("before_training_exp", snapshot), *plugins], **options)
    R = []
    for i in range(len(tasks)):
        strategy.train(bm.train_stream[i])
        changed = [k for k, v in net.state_dict().items() if not torch.equal(v, before[k])]
        trains_now = name != "joint" or i == len(tasks) - 1
        assert bool(changed) == trains_now, (name, i, changed)
        res = strategy.eval(bm.test_stream[: i + 1])
        R.append([res[f"Top1_Acc_Exp/eval_phase/test_stream/Task{j:03d}/Exp{j:03d}"] for j in range(i + 1)])
        for j in range(i + 1):
            own = evaluate_accuracy(strategy.model, bm.test_stream[j].dataset.eval(), 8, "cpu")[0]
            assert R[i][j] == pytest.approx(own, abs=1e-9), (name, i, j)
    assert [len(row) for row in R] == [1, 2, 3]
    assert net.task_ids == [0, 1, 2] and strategy.strategy_name == name
    return strategy, net


class _Hook(SupervisedPlugin):
    """Calls ``fn(strategy)`` at one callback."""

    def __init__(self, callback, fn):
        super().__init__()
        setattr(self, callback, lambda strategy, **kwargs: fn(strategy))


# strategies (and PET compositions) that no property test below runs already
BASELINES = [
    ("online_ewc", True, {"ewc_lambda": 10.0, "decay_factor": 0.5}),  # PET: new params mid-order (the fix)
    ("si", False, {"si_lambda": 1.0, "eps": 0.1}),
    ("replay", True, {"mem_size": 10, "task_balanced_dataloader": True}),
]


def test_every_baseline_is_registered():
    from audio_ticl.strategies import STRATEGIES

    names = {"ewc", "online_ewc", "si", "lwf", "replay", "agem", "cumulative", "joint", "linear_probe"}
    assert names <= set(STRATEGIES)


@pytest.mark.parametrize("name,pet,options", BASELINES, ids=[f"{n}{'+pet' if p else ''}" for n, p, _ in BASELINES])
def test_baseline_trains_and_evaluates(name, pet, options):
    _run(name, pet, **options)


def test_ewc_penalty_is_zero_at_the_anchor_and_grows_away_from_it():
    seen = []

    def check(strategy):
        if strategy.current_task == 1 and not seen:  # task 1's first step: weights are still task 0's result
            with torch.no_grad():
                seen.append(float(strategy.ewc.penalty(strategy)))
                p = strategy.net.backbone_parameters()[0]
                p.add_(0.1)
                seen.append(float(strategy.ewc.penalty(strategy)))
                p.sub_(0.1)

    _run("ewc", plugins=[_Hook("before_training_iteration", check)], ewc_lambda=10.0)
    assert seen[0] == 0.0 and seen[1] > 0.0


def test_replay_memory_is_balanced_over_task_class_pairs_within_mem_size():
    bm = make_benchmark(_tasks())
    buffer, stock = TaskClassBalancedBuffer(10), ClassBalancedBuffer(10)
    for i, exp in enumerate(bm.train_stream):
        buffer.update_from_dataset(exp.dataset)
        stock.update_from_dataset(exp.dataset)
        sizes = buffer.group_sizes()
        pairs = {(t, c) for t in range(i + 1) for c in range(CLASSES[t])}
        assert set(sizes) == pairs
        assert len(buffer.buffer) == sum(sizes.values()) <= 10
        assert max(sizes.values()) - min(sizes.values()) <= 1
        for (t, c), group in buffer.buffer_groups.items():
            assert set(group.buffer.targets_task_labels) == {t} and set(group.buffer.targets) == {c}
    # Avalanche's own buffer keys by raw class id, so task 0's and task 1's "class 0" share one group
    assert sorted(stock.buffer_groups) == [0, 1, 2]

    strategy, _ = _run("replay", mem_size=10)
    sizes = strategy.buffer.group_sizes()
    assert len(sizes) == sum(CLASSES) and sum(sizes.values()) <= 10 and max(sizes.values()) - min(sizes.values()) <= 1


def test_lwf_targets_come_from_the_model_before_the_task():
    states, checks = {}, []

    def record(strategy):  # end of each task, after the runner's model selection
        states[strategy.current_task] = copy.deepcopy(strategy.net.state_dict())

    def check(strategy):  # end of task 1's epoch: the live model has moved, the targets must not
        if strategy.current_task != 1:
            return
        lwf = strategy.lwf_plugin.lwf
        assert lwf.prev_tasks == [0]
        before = _net()
        before.add_task(0, 2)
        before.add_task(1, 2)
        before.load_state_dict({**before.state_dict(), **states[0]})
        before.eval()
        x = torch.randn(3, 32, 128)
        targets = lwf.targets(x)[0]
        torch.testing.assert_close(targets, before.forward_task(x, 0), rtol=0, atol=0)
        live = strategy.net
        assert any(not torch.equal(live.state_dict()[k], v) for k, v in states[0].items()), "model did not train"
        with torch.no_grad():
            for p in live.parameters():
                p.add_(1.0)
        torch.testing.assert_close(lwf.targets(x)[0], targets, rtol=0, atol=0)
        with torch.no_grad():
            for p in live.parameters():
                p.sub_(1.0)
        checks.append(True)

    _run("lwf", plugins=[_Hook("after_training_exp", record), _Hook("after_training_epoch", check)])
    assert checks == [True]


def test_lwf_distillation_is_zero_when_the_student_equals_the_teacher():
    losses = []

    def check(strategy):
        if strategy.current_task == 2 and not losses:
            net = strategy.net
            net.eval()
            x = torch.randn(4, 32, 128)
            losses.append(float(strategy.lwf_plugin.lwf.distillation(x, net)))
            net.train()
            assert strategy.lwf_plugin.lwf.prev_tasks == [0, 1]

    _run("lwf", True, plugins=[_Hook("before_training_iteration", check)], alpha=[0.5, 1.0])
    assert losses == [pytest.approx(0.0, abs=1e-7)]


def _flat_grad(model):
    """Every parameter's gradient, flattened in ``named_parameters`` order with zeros for None (A-GEM's layout)."""
    return torch.cat([
        p.grad.detach().reshape(-1) if p.grad is not None else torch.zeros(p.numel()) for p in model.parameters()
    ])


def _memory_loss(model, batch, direction=None, step=0.0):
    """Cross-entropy on the memory batch A-GEM used, in float64, at the weights moved by ``-step * direction``."""
    moved = copy.deepcopy(model).double()
    if direction is not None:
        with torch.no_grad():
            offset = 0
            for p in moved.parameters():
                p -= step * direction[offset : offset + p.numel()].view_as(p).double()
                offset += p.numel()
    x, y, t = batch[0], batch[1], batch[-1]
    moved.train()  # A-GEM computes its reference gradient in train mode
    return float(torch.nn.functional.cross_entropy(moved(x.double(), t), y))


def test_agem_projects_conflicting_gradients_so_that_the_memory_loss_does_not_rise():
    """Task 1 has task 0's clips with the opposite labels, and its head starts as a copy of task 0's: the current
    gradient then surely conflicts with the memory's. When it does (g . g_ref < 0 before the projection), the
    projected gradient has g . g_ref >= 0, and a tiny step along -g_proj leaves the memory loss unchanged to first
    order, whereas the same step along -g raises it."""
    clips = torch.randn(N, 32, 128, generator=torch.Generator().manual_seed(3))
    labels = torch.arange(N) % 2
    tasks = [
        TaskData(i, f"t{i}", "random", ["0", "1"],
                 {s: FeatureSplit(clips.clone(), lab.clone()) for s in ("train", "val", "test")}, 0.0, 1.0, 0, 0)
        for i, lab in enumerate((labels, 1 - labels))
    ]
    bm = make_benchmark(tasks)
    torch.manual_seed(0)
    net = _net()
    state = {"conflicts": 0, "checked": 0, "steps": 0}

    def copy_head(strategy):
        if strategy.current_task == 1 and strategy.clock.train_exp_epochs == 0:
            with torch.no_grad():
                for dst, src in zip(net.heads["1"].parameters(), net.heads["0"].parameters()):
                    dst.copy_(src)

    def before_projection(strategy):  # runs before AGEMPlugin.after_backward: the raw gradient
        if strategy.current_task == 1:
            state["g"] = _flat_grad(strategy.model)
            state["dot"] = float(torch.dot(state["g"], strategy.agem.reference_gradients))

    def after_projection(strategy):  # before_update: AGEMPlugin.after_backward has projected p.grad in place
        if strategy.current_task != 1:
            return
        state["steps"] += 1
        g, g_ref = state["g"], strategy.agem.reference_gradients
        g_proj = _flat_grad(strategy.model)
        scale = float(g.norm() * g_ref.norm())
        assert float(torch.dot(g_proj, g_ref)) >= -1e-5 * scale
        if state["dot"] >= 0:
            assert torch.equal(g_proj, g)  # no conflict, no change
            return
        state["conflicts"] += 1
        expected = g - torch.dot(g, g_ref) / torch.dot(g_ref, g_ref) * g_ref
        torch.testing.assert_close(g_proj, expected, rtol=1e-5, atol=1e-7)
        eps = 1e-6
        base = _memory_loss(strategy.model, state["memory"])
        rise_raw = _memory_loss(strategy.model, state["memory"], g / g.norm(), eps) - base
        rise_proj = _memory_loss(strategy.model, state["memory"], g_proj / g_proj.norm(), eps) - base
        assert rise_raw > 0  # the unprojected step would increase the memory loss
        assert rise_proj <= 1e-3 * rise_raw, (rise_proj, rise_raw)
        state["checked"] += 1

    hooks = [
        _Hook("before_training_epoch", copy_head), _Hook("after_backward", before_projection),
        _Hook("before_update", after_projection),
    ]
    strategy = _strategy("agem", net, bm, hooks, train_mb_size=N, train_epochs=3, patterns_per_exp=N, sample_size=N)
    sample = strategy.agem.sample_from_memory

    def recorded():  # the memory batch each reference gradient is computed on
        state["memory"] = sample()
        return state["memory"]

    strategy.agem.sample_from_memory = recorded
    for experience in bm.train_stream:
        strategy.train(experience)
    assert len(strategy.agem.buffers) == 2 and all(len(b) == N for b in strategy.agem.buffers)
    assert state["steps"] == 3 and state["conflicts"] >= 1 and state["checked"] == state["conflicts"]


def test_cumulative_trains_on_all_tasks_so_far_and_joint_only_once_on_everything():
    sizes = {}

    def record(strategy):
        sizes.setdefault(strategy.strategy_name, []).append(len(strategy.adapted_dataset))

    _run("cumulative", plugins=[_Hook("before_training_exp", record)])
    assert sizes["cumulative"] == [N, 2 * N, 3 * N]

    trained = []
    trained_on = _Hook("after_training_iteration", lambda s: trained.append(s.current_task))
    _run("joint", True, plugins=[_Hook("before_training_exp", record), trained_on])
    assert sizes["joint"][-1] == 3 * N
    assert set(trained) == {2}  # nothing trains before the last task's call


def test_linear_probe_trains_only_the_current_head():
    snapshots = {}

    def record(strategy):
        trainable = {id(p) for p in strategy.net.parameters() if p.requires_grad}
        assert trainable == {id(p) for p in strategy.net.heads[str(strategy.current_task)].parameters()}
        snapshots[strategy.current_task] = copy.deepcopy(strategy.net.state_dict())

    torch.manual_seed(0)
    initial = _net().state_dict()
    _, net = _run("linear_probe", plugins=[_Hook("after_training_exp", record)])
    final = net.state_dict()
    for k, v in initial.items():  # backbone untouched
        assert torch.equal(final[k], v), k
    for t in (0, 1):  # earlier heads untouched by later tasks
        for k, v in snapshots[t].items():
            if k.startswith(f"heads.{t}."):
                assert torch.equal(final[k], v), k


def test_linear_probe_refuses_a_pet_method():
    with pytest.raises(StrategyError, match="linear_probe"):
        _strategy("linear_probe", _net(pet=True), make_benchmark(_tasks()))


def test_stateful_strategy_warns_when_it_resumes_without_its_state(caplog):
    bm = make_benchmark(_tasks())
    net = _net()
    _strategy("ewc", net, bm).train(bm.train_stream[0])
    with caplog.at_level(logging.WARNING, logger="ticl"):
        _strategy("ewc", net, bm).train(bm.train_stream[1])  # as `ticl run --resume` does: a fresh strategy
    assert "without its state from task(s) [0]" in caplog.text


def test_si_importances_are_not_clamped_to_avalanches_constant():
    """Avalanche clamps SI importances at 0.001, which made SI identical to fine-tuning; ours keeps them whole
    (the paper's omega), and the optional clamp still works."""
    strategy, _ = _run("si", si_lambda=1.0)
    importances = torch.cat([p.data.flatten() for p in strategy.si.ewc_data[1].values()])
    assert importances.max() > 1e-3
    clamped, _ = _run("si", si_lambda=1.0, clip_to=1e-3)
    assert torch.cat([p.data.flatten() for p in clamped.si.ewc_data[1].values()]).max() <= 1e-3


def test_joint_chooses_its_epoch_on_every_tasks_validation_split():
    """Joint is an upper bound over all tasks, so its epoch is judged on all of their validation splits; other
    strategies are judged on the current task's."""
    for name, tasks_judged in (("joint", [0, 1, 2]), ("finetune", [2])):
        strategy, net = _run(name)
        validation = next(p for p in strategy.plugins if isinstance(p, BestValidationPlugin))
        accs = [evaluate_accuracy(strategy.model, validation.val_datasets[t], 8, "cpu")[0] for t in tasks_judged]
        assert validation.history[2][-1] == pytest.approx(sum(accs) / len(accs)), name
