"""SI's path integral uses the task loss's gradient only, follows the epoch the runner keeps, and its c is the
paper's c (Zenke et al. 2017)."""
import types
import warnings

import pytest
import torch
from avalanche.evaluation.metrics import accuracy_metrics
from avalanche.training.plugins import EvaluationPlugin, SynapticIntelligencePlugin
from test_baselines import _Hook, _net, _tasks

import audio_ticl.strategies.plugins as runner_plugins
from audio_ticl.benchmark.scenarios import make_benchmark
from audio_ticl.strategies import get_strategy, make_optimizer_factory
from audio_ticl.strategies.plugins import BestValidationPlugin
from audio_ticl.strategies.si import CopyingSIPlugin

pytestmark = pytest.mark.usefixtures("one_thread")


def _si(bm, epochs, plugins=(), select=True, **options):
    torch.manual_seed(0)
    net = _net()
    validation = BestValidationPlugin([e.dataset.eval() for e in bm.valid_stream], batch_size=8, enabled=select)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No loggers specified")
        evaluator = EvaluationPlugin(accuracy_metrics(experience=True), loggers=[])
    strategy = get_strategy("si")(
        model=net, optimizer_factory=make_optimizer_factory("adam", 1e-2, 0.0, 0.9), train_mb_size=4,
        train_epochs=epochs, eval_mb_size=8, device="cpu", plugins=[validation, *plugins], evaluator=evaluator,
        **options,
    )
    return strategy


def _trainable(strategy):
    allowed = SynapticIntelligencePlugin.allowed_parameters(strategy.model, strategy.si.excluded_parameters)
    return [(n, p) for n, p in allowed]


def test_path_integral_uses_the_task_loss_gradient_not_the_penalty_gradient():
    """On task 1 with a large c the penalty's gradient is large; the path integral must be sum g_task * dtheta,
    with g_task the gradient of the task loss alone (computed here before SI adds its penalty to the loss)."""
    bm = make_benchmark(_tasks())
    state = {}

    def start(strategy):
        state.update(hand={}, leaky={}, checked=0)

    def before_iteration(strategy):
        state["before"] = {n: p.detach().flatten().clone() for n, p in _trainable(strategy)}

    def before_backward(strategy):  # runner-side plugins run before SI's: strategy.loss is the task loss here
        params = _trainable(strategy)
        grads = torch.autograd.grad(strategy.loss, [p for _, p in params], retain_graph=True, allow_unused=True)
        state["g_task"] = {
            n: (g if g is not None else torch.zeros_like(p)).flatten().clone() for (n, p), g in zip(params, grads)
        }

    def after_iteration(strategy):
        for n, p in _trainable(strategy):
            step = p.detach().flatten() - state["before"][n]
            state["hand"][n] = state["hand"].get(n, 0) + state["g_task"][n] * step
            state["leaky"][n] = state["leaky"].get(n, 0) + p.grad.flatten() * step  # what Avalanche booked

    def check(strategy):
        if strategy.current_task != 1:
            return
        trajectory = strategy.si.syn_data["trajectory"]
        for n, hand in state["hand"].items():
            scale = float(hand.abs().max()) + 1e-12
            torch.testing.assert_close(trajectory[n].data, hand, rtol=1e-4, atol=1e-4 * scale, msg=n)
        leak = max(float((state["leaky"][n] - state["hand"][n]).abs().max()) for n in state["hand"])
        size = max(float(h.abs().max()) for h in state["hand"].values())
        assert leak > 0.1 * size, (leak, size)  # the penalty's gradient matters: the comparison can fail
        state["checked"] += 1

    hooks = [
        _Hook("before_training_exp", start), _Hook("before_training_iteration", before_iteration),
        _Hook("before_backward", before_backward), _Hook("after_training_iteration", after_iteration),
        _Hook("after_training_epoch", check),
    ]
    strategy = _si(bm, epochs=2, plugins=hooks, si_lambda=1e4)
    for i in range(2):
        strategy.train(bm.train_stream[i])
    assert state["checked"] == 2
    imp = torch.cat([v.data for v in strategy.si.ewc_data[1].values()])
    assert float(imp.abs().max()) > 0


def test_importance_is_the_path_integral_up_to_the_epoch_validation_keeps(monkeypatch):
    """Validation picks epoch 0 of 3: the importances (and anchors) equal those of a run stopped after epoch 0."""
    scores = iter([])

    def scripted(model, dataset, batch_size, device):  # the runner's selection, with scripted validation scores
        return types.SimpleNamespace(accuracy=next(scores), loss=0.0, correct=torch.zeros(0), seconds=0.0)

    monkeypatch.setattr(runner_plugins, "evaluate", scripted)
    bm = make_benchmark(_tasks())
    running = {}

    def record(strategy):  # the running path integral over all epochs, before SI replaces it by the kept one
        running["trajectory"] = {n: v.data.clone() for n, v in strategy.si.syn_data["trajectory"].items()}

    scores = iter([0.9, 0.5, 0.1])
    three = _si(bm, epochs=3, plugins=[_Hook("after_training_exp", record)])
    three.train(bm.train_stream[0])
    validation = next(p for p in three.plugins if isinstance(p, BestValidationPlugin))
    assert validation.best_epoch[0] == 0 and len(validation.history[0]) == 3

    scores = iter([0.9])
    one = _si(bm, epochs=1)
    one.train(bm.train_stream[0])

    for n, value in one.si.ewc_data[1].items():
        torch.testing.assert_close(three.si.ewc_data[1][n].data, value.data, rtol=1e-6, atol=0, msg=n)
        torch.testing.assert_close(three.si.ewc_data[0][n].data, one.si.ewc_data[0][n].data, rtol=0, atol=0)
    # the later epochs did move the path integral: without the snapshot the importances would differ
    assert any(
        not torch.allclose(running["trajectory"][n], one.si.syn_data["trajectory"][n].data)
        for n in running["trajectory"]
    )


def test_without_selection_every_epoch_counts(monkeypatch):
    monkeypatch.setattr(
        runner_plugins, "evaluate",
        lambda *a: types.SimpleNamespace(accuracy=0.5, loss=0.0, correct=torch.zeros(0), seconds=0.0),
    )
    bm = make_benchmark(_tasks())
    running = {}

    def record(strategy):
        running.update({n: v.data.clone() for n, v in strategy.si.syn_data["trajectory"].items()})

    strategy = _si(bm, epochs=2, select=False, plugins=[_Hook("after_training_exp", record)])
    strategy.train(bm.train_stream[0])
    for n, traj in strategy.si.syn_data["trajectory"].items():
        assert torch.equal(traj.data, running[n])


def test_defaults_come_from_the_paper_and_c_is_the_papers_c():
    bm = make_benchmark(_tasks())
    si = _si(bm, epochs=1).si
    assert si.c == [0.1] and si.eps == 0.1 and si.clip_to == float("inf")
    # Avalanche's penalty (lambda / 2) sum Omega (theta - anchor)^2 with lambda = 2c is the paper's
    # c sum Omega (...)^2,
    # and its gradient is the closed form the path integral subtracts: lambda * Omega * (theta - anchor)
    plugin = CopyingSIPlugin(si_lambda=0.3, eps=0.1)
    model = torch.nn.Linear(3, 2)
    omega, anchor = {}, {}
    for n, p in model.named_parameters():
        omega[n] = torch.rand(p.numel())
        anchor[n] = torch.randn(p.numel())
        plugin.ewc_data[0][n] = types.SimpleNamespace(data=anchor[n])
        plugin.ewc_data[1][n] = types.SimpleNamespace(data=omega[n])
    loss = SynapticIntelligencePlugin.compute_ewc_loss(model, plugin.ewc_data, set(), "cpu", lambd=plugin.si_lambda[0])
    paper = sum(0.3 * (omega[n] * (p.flatten() - anchor[n]) ** 2).sum() for n, p in model.named_parameters())
    torch.testing.assert_close(loss, paper)
    loss.backward()
    for n, p in model.named_parameters():
        expected = plugin.si_lambda[0] * omega[n] * (p.detach().flatten() - anchor[n])
        torch.testing.assert_close(p.grad.flatten(), expected)
