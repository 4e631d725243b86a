"""EWC's Fisher is the per-sample diagonal Fisher of Kirkpatrick et al. 2017, not Avalanche's squared mean-batch
gradient: checked against an explicit one-sample-at-a-time loop, for the empirical and the true Fisher."""
import warnings

import pytest
import torch
import torch.nn.functional as F
from avalanche.training.plugins import EWCPlugin

from audio_ticl.benchmark.scenarios import FeatureSplit, TaskData, make_benchmark
from audio_ticl.models import TaskIncrementalModel, create_model
from audio_ticl.strategies import StrategyError
from audio_ticl.strategies.ewc import TaskAwareEWCPlugin
from audio_ticl.strategies.model_adapter import AvalancheTaskModel

pytestmark = pytest.mark.usefixtures("one_thread")


def _setup(n=16, classes=3, task=0):
    """A tiny two-task model (task ``task``'s head trains, one backbone tensor frozen) and task ``task``'s
    training data, with SpecAugment on (it must be off in the Fisher pass: the plugin gets ``.eval()``)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(7)
    tasks = []
    for i in range(task + 1):
        splits = {s: FeatureSplit(torch.randn(n, 32, 128, generator=g), torch.arange(n) % classes)
                  for s in ("train", "val", "test")}
        tasks.append(TaskData(i, f"t{i}", "random", [str(k) for k in range(classes)], splits, 0.0, 1.0, 8, 8))
    backbone = create_model("ast_custom", input_frames=32, embed_dim=16, depth=1, num_heads=2, fstride=16, tstride=16)
    net = TaskIncrementalModel(backbone)
    for i in range(task + 1):
        net.add_task(i, classes)
    model = AvalancheTaskModel(net)
    frozen = net.backbone_parameters()[0]
    frozen.requires_grad_(False)
    for t in range(task):  # earlier heads are frozen, as fine-tuning leaves them
        for p in net.task_parameters(t):
            p.requires_grad_(False)
    return model, make_benchmark(tasks).train_stream[task].dataset


def _loop_fisher(model, dataset, labels):
    """Explicit per-sample Fisher: one backward per clip, gradients squared, then averaged."""
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    total = {n: torch.zeros_like(p) for n, p in params.items()}
    model.eval()
    for i in range(len(dataset)):
        x, _, t = dataset[i]
        model.zero_grad()
        logp = -F.cross_entropy(model(x.unsqueeze(0), int(t)), torch.tensor([labels[i]]))
        logp.backward()
        for n, p in params.items():
            total[n] += p.grad.detach() ** 2
    model.zero_grad()
    return {n: v / len(dataset) for n, v in total.items()}


def _importances(plugin, model, dataset, batch_size=8):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optimizer = torch.optim.SGD(model.parameters(), lr=0.0)  # Avalanche's version zeroes grads through it
        imps = plugin.compute_importances(model, torch.nn.CrossEntropyLoss(), optimizer, dataset, "cpu", batch_size)
    return {n: imp.data for n, imp in imps.items()}


def test_empirical_fisher_equals_a_per_sample_loop_and_only_covers_trained_parameters():
    model, train = _setup(task=1)
    data = train.eval()
    model.train()
    ours = _importances(TaskAwareEWCPlugin(1.0, fisher="empirical", fisher_chunk=3), model, data)
    assert model.training and model.net.backbone.training  # the model's mode is restored
    assert set(ours) == {n for n, p in model.named_parameters() if p.requires_grad}
    assert not any(n.startswith("net.heads.0.") for n in ours)  # task 0's frozen head gets no importance
    expected = _loop_fisher(model, data, [int(y) for y in data.targets])
    for n in expected:
        torch.testing.assert_close(ours[n], expected[n], rtol=1e-4, atol=1e-10, msg=n)
    assert sum(float(v.sum()) for v in ours.values()) > 0


def test_true_fisher_samples_labels_from_the_model_deterministically_and_matches_a_loop():
    model, train = _setup(task=1)
    data = train.eval()
    plugin = TaskAwareEWCPlugin(1.0, fisher="true", fisher_chunk=5, fisher_seed=3)
    ours = _importances(plugin, model, data)
    # the documented draw: one uniform per clip in dataset order from Generator(fisher_seed + task)
    u = torch.rand(len(data), generator=torch.Generator().manual_seed(3 + 1))
    model.eval()
    labels = []
    with torch.no_grad():
        for i in range(len(data)):
            x, _, t = data[i]
            cdf = torch.softmax(model(x.unsqueeze(0), int(t)), dim=-1)[0].cumsum(0)
            labels.append(min(int(torch.searchsorted(cdf, u[i : i + 1], right=True)), cdf.numel() - 1))
    assert labels != [int(y) for y in data.targets]  # the true Fisher is not the empirical one here
    expected = _loop_fisher(model, data, labels)
    for n in expected:
        torch.testing.assert_close(ours[n], expected[n], rtol=1e-4, atol=1e-10, msg=n)
    again = _importances(TaskAwareEWCPlugin(1.0, fisher="true", fisher_chunk=16, fisher_seed=3), model, data)
    for n in ours:  # deterministic, and independent of the chunk size
        torch.testing.assert_close(again[n], ours[n], rtol=1e-5, atol=1e-12)


def test_fisher_is_not_avalanches_squared_mean_batch_gradient():
    """Avalanche squares the gradient of each batch's mean loss: per-sample gradients cancel in the mean, so at
    batch 8 it is several times smaller than the Fisher (about 8x for uncorrelated per-sample gradients)."""
    model, train = _setup(n=32)
    data = train.eval()
    ours = _importances(TaskAwareEWCPlugin(1.0, fisher="empirical"), model, data)
    stock = _importances(EWCPlugin(1.0), model, data, batch_size=8)
    ratio = sum(float(ours[n].sum()) for n in ours) / sum(float(stock[n].sum()) for n in ours)
    assert ratio > 4.0, ratio
    # and the stock value is exactly that smaller quantity: the mean over batches of (mean-batch gradient)^2
    model.eval()
    batches = torch.utils.data.DataLoader(data, batch_size=8, collate_fn=data.collate_fn)
    sq = {n: torch.zeros_like(p) for n, p in model.named_parameters()}
    for x, y, t in batches:
        model.zero_grad()
        F.cross_entropy(model(x, int(t[0])), y).backward()
        for n, p in model.named_parameters():
            if p.grad is not None:
                sq[n] += p.grad ** 2
    for n in ours:
        torch.testing.assert_close(stock[n], sq[n] / len(batches), rtol=1e-4, atol=1e-10)


def test_fisher_pass_ignores_spec_augment_and_the_global_rng():
    """The strategy hands the plugin ``adapted_dataset.eval()``: with SpecAugment on in train mode the result
    would change from call to call; the pass itself draws nothing from torch's global RNG."""
    model, train = _setup()
    plugin = TaskAwareEWCPlugin(1.0)
    torch.manual_seed(5)
    a = _importances(plugin, model, train.eval())
    after = torch.rand(1)
    torch.manual_seed(5)
    b = _importances(plugin, model, train.eval())
    assert torch.equal(torch.rand(1), after)
    for n in a:
        assert torch.equal(a[n], b[n])
    augmented = _importances(plugin, model, train.train())
    assert any(not torch.allclose(augmented[n], a[n]) for n in a)


def test_fisher_option_is_checked():
    with pytest.raises(StrategyError, match="fisher"):
        TaskAwareEWCPlugin(1.0, fisher="exact")
