"""The evaluation protocol: one evaluation path, best-epoch selection and restore, the untrained-head probe,
validation-only tuning, provenance, per-task memory and the method-state storage column."""
import copy
import json
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from avalanche.core import SupervisedPlugin
from avalanche.training.plugins import EvaluationPlugin

from audio_ticl.benchmark.config import load_config
from audio_ticl.benchmark.results import provenance
from audio_ticl.benchmark.runner import run, run_method, untrained_head_evaluation
from audio_ticl.benchmark.scenarios import FeatureSplit, TaskData, build_tasks, make_benchmark
from audio_ticl.models import TaskIncrementalModel, create_model
from audio_ticl.strategies import get_strategy, make_optimizer_factory
from audio_ticl.strategies.plugins import BestValidationPlugin, evaluate

pytestmark = pytest.mark.usefixtures("one_thread")


def _tasks(n_tasks=2, n=8):
    tasks = []
    for i in range(n_tasks):
        g = torch.Generator().manual_seed(10 + i)
        splits = {
            s: FeatureSplit(torch.randn(n, 32, 128, generator=g), torch.arange(n) % 2)
            for s in ("train", "val", "test")
        }
        tasks.append(TaskData(i, f"t{i}", "random", ["a", "b"], splits, 0.0, 1.0, 0, 0))
    return tasks


def _net():
    backbone = create_model("ast_custom", input_frames=32, embed_dim=16, depth=1, num_heads=2, fstride=16, tstride=16)
    return TaskIncrementalModel(backbone)


class _Hook(SupervisedPlugin):
    def __init__(self, callback, fn):
        super().__init__()
        setattr(self, callback, lambda strategy, **kwargs: fn(strategy))


def _strategy(name, net, bm, plugins=(), epochs=1, **options):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="No loggers specified")
        evaluator = EvaluationPlugin(loggers=[])
    return get_strategy(name)(
        model=net, optimizer_factory=make_optimizer_factory("adam", 1e-2, 0.0, 0.9), train_mb_size=4,
        train_epochs=epochs, eval_mb_size=8, device="cpu", plugins=list(plugins), evaluator=evaluator, **options,
    )


# ------------------------------------------------------------------------------------------ evaluation
def test_evaluate_gives_accuracy_loss_and_per_clip_outcomes_of_one_pass():
    torch.manual_seed(0)
    net = _net()
    net.add_task(0, 2)
    bm = make_benchmark(_tasks(1))
    dataset = bm.test_stream[0].dataset.eval()
    result = evaluate(net, dataset, 3, "cpu")
    x = torch.stack([dataset[i][0] for i in range(len(dataset))])
    y = torch.tensor([dataset[i][1] for i in range(len(dataset))])
    with torch.no_grad():
        net.eval()
        logits = net(x, 0)
    assert torch.equal(result.correct, logits.argmax(1) == y)
    assert result.accuracy == int((logits.argmax(1) == y).sum()) / len(y)
    assert result.loss == pytest.approx(float(torch.nn.functional.cross_entropy(logits, y)), rel=1e-5)
    assert result.correct_string() == "".join("1" if c else "0" for c in (logits.argmax(1) == y).tolist())


def test_untrained_head_probe_leaves_the_model_and_the_rng_untouched():
    torch.manual_seed(0)
    net = _net()
    net.add_task(0, 2)
    tasks = _tasks(2)
    bm = make_benchmark(tasks)
    before = copy.deepcopy(net.state_dict())
    rng = torch.get_rng_state()
    first = untrained_head_evaluation(net, tasks[1], bm.test_stream[1].dataset.eval(), 0, 8, "cpu")
    assert torch.equal(torch.get_rng_state(), rng), "the probe consumed global random numbers"
    assert net.task_ids == [0] and set(net.state_dict()) == set(before)
    assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())
    again = untrained_head_evaluation(net, tasks[1], bm.test_stream[1].dataset.eval(), 0, 8, "cpu")
    assert torch.equal(first.correct, again.correct)  # seeded: the same probe every time


# ------------------------------------------------------------------------------------ epoch selection
class _ScriptedValidation(BestValidationPlugin):
    """Validation scores read from a script instead of measured, so the chosen epoch is known in advance."""

    def __init__(self, val_datasets, scores):
        super().__init__(val_datasets, batch_size=8)
        self.scores = list(scores)

    def after_training_epoch(self, strategy, *args, **kwargs):
        import audio_ticl.strategies.plugins as plugins

        acc, loss = self.scores.pop(0)
        real = plugins.evaluate
        plugins.evaluate = lambda *a, **k: plugins.Evaluation(acc, loss, torch.zeros(1, dtype=torch.bool), 0.0)
        try:
            super().after_training_epoch(strategy)
        finally:
            plugins.evaluate = real


@pytest.mark.parametrize(
    "scores,expected",
    [
        ([(0.5, 1.0), (0.9, 1.0), (0.7, 1.0)], 1),  # the best accuracy wins
        ([(1.0, 0.9), (1.0, 0.3), (1.0, 0.6)], 1),  # a tie in accuracy goes to the lower loss
        ([(1.0, 0.5), (1.0, 0.5), (0.5, 0.1)], 1),  # a full tie goes to the later epoch, never the earliest
    ],
)
def test_best_epoch_is_chosen_on_validation_and_its_weights_are_restored(scores, expected):
    torch.manual_seed(0)
    tasks = _tasks(1)
    bm = make_benchmark(tasks)
    net = _net()
    snapshots = []
    validation = _ScriptedValidation([e.dataset.eval() for e in bm.valid_stream], scores)
    record = _Hook("after_training_epoch", lambda s: snapshots.append(copy.deepcopy(s.net.state_dict())))
    strategy = _strategy("finetune", net, bm, [validation, record], epochs=3)
    strategy.train(bm.train_stream[0])
    assert validation.best_epoch[0] == expected
    kept = net.state_dict()
    assert all(torch.equal(kept[k], v) for k, v in snapshots[expected].items())
    assert any(not torch.equal(kept[k], v) for k, v in snapshots[-1].items()), "the last epoch was kept"


# --------------------------------------------------------------------------------------- whole runs
@pytest.fixture(scope="module")
def smoke_cfg():
    return load_config("smoke", overrides=["scenario.n_tasks=2"])


def test_accuracy_matrix_and_per_clip_outcomes_agree(tmp_path, smoke_cfg):
    tasks, _ = build_tasks(smoke_cfg, progress=False)
    result = run_method(smoke_cfg, smoke_cfg.methods[2], tasks, tmp_path / "m", progress=False)
    s = result.summary
    for i, row in enumerate(s.accuracy_matrix):
        for j, acc in enumerate(row):
            cells = s.correct[i][j]
            assert len(cells) == s.tasks[j].n_test and acc == cells.count("1") / len(cells)
    assert s.plasticity == pytest.approx(np.mean(np.diag(s.accuracy_matrix)))
    assert [p.samples_per_epoch for p in s.per_task] == [[t.n_train] for t in s.tasks]
    assert all(p.peak_memory_kind == "process_peak_rss_during_task" for p in s.per_task)


def test_cumulative_records_every_union_sample_once_per_epoch(tmp_path, smoke_cfg):
    cfg = load_config("smoke", overrides=["scenario.n_tasks=3", "train.epochs=2", "train.batch_size=2"])
    cfg.methods = [m for m in cfg.methods if m.name == "finetune"]
    cfg.methods[0].strategy, cfg.methods[0].name = "cumulative", "cumulative"
    tasks, _ = build_tasks(cfg, progress=False)
    s = run_method(cfg, cfg.methods[0], tasks, tmp_path / "c", progress=False).summary
    n = [t.n_train for t in s.tasks]
    assert [p.samples_per_epoch for p in s.per_task] == [[sum(n[: i + 1])] * 2 for i in range(3)]


def test_joint_reports_no_forgetting_bwt_or_plasticity(tmp_path, smoke_cfg):
    cfg = copy.deepcopy(smoke_cfg)
    cfg.methods = [copy.deepcopy(cfg.methods[2])]
    cfg.methods[0].strategy, cfg.methods[0].name = "joint", "joint"
    tasks, _ = build_tasks(cfg, progress=False)
    s = run_method(cfg, cfg.methods[0], tasks, tmp_path / "j", progress=False).summary
    assert s.avg_forgetting is None and s.bwt is None and s.plasticity is None
    assert s.avg_accuracy == pytest.approx(np.mean(s.accuracy_matrix[-1]))


def test_class_order_is_shared_across_seeds_unless_asked_otherwise():
    from audio_ticl.benchmark.scenarios import make_source, plan_class_split

    cfg = load_config("smoke", overrides=["scenario.class_order=seeded"])
    source = make_source(cfg.data.source, cfg.data.root, cfg.data.options, "data")
    assert plan_class_split(source, cfg.scenario, 0) == plan_class_split(source, cfg.scenario, 1)
    cfg.scenario.order_seed = None
    plans = {tuple(c for _, cs in plan_class_split(source, cfg.scenario, s) for c in cs) for s in range(4)}
    assert len(plans) > 1


# ------------------------------------------------------------------------------------------ tuning
def test_search_reads_validation_only_and_fixes_the_chosen_values(tmp_path, monkeypatch):
    import audio_ticl.benchmark.scenarios as scenarios

    seen_splits = []
    real = scenarios.extract_features

    def recording(clips, *args, **kwargs):
        seen_splits.append({c.split for c in clips})
        return real(clips, *args, **kwargs)

    monkeypatch.setattr(scenarios, "extract_features", recording)
    import audio_ticl.benchmark.runner as runner

    real_run_method = runner.run_method
    search_calls = []

    def spy(cfg, method, tasks, folder, *args, **kwargs):
        search_calls.append((kwargs.get("eval_split", "test"), [set(t.splits) for t in tasks], len(seen_splits)))
        return real_run_method(cfg, method, tasks, folder, *args, **kwargs)

    monkeypatch.setattr(runner, "run_method", spy)
    cfg = load_config("smoke", overrides=[
        "scenario.n_tasks=3", "tuning.protocol=first_tasks", "tuning.tasks=2", "tuning.budget=2",
        "methods.finetune.search={train.lr: [1.0e-5, 1.0e-2, 3.0e-3]}",
    ])
    cfg.methods = [m for m in cfg.methods if m.name == "finetune"]
    results, _ = run(cfg, tmp_path / "run", progress=False)
    trials = [c for c in search_calls if c[0] == "val"]
    assert len(trials) == 2  # a 3-point grid cut to the budget
    assert all(splits == [{"train", "val"}] * 2 for _, splits, _ in trials)  # first 2 tasks, no test split
    searched = trials[-1][2]  # feature extractions before the last trial ran: the search's own
    assert searched >= 1 and all("test" not in s for s in seen_splits[:searched]), "a test clip was read in the search"
    assert any("test" in s for s in seen_splits[searched:])  # the reported run reads them
    record = json.loads((tmp_path / "run" / "tuning" / "finetune" / "search.json").read_text())
    assert [t["values"]["train.lr"] for t in record["trials"]] == [
        v for v in (1.0e-5, 1.0e-2, 3.0e-3) if v in [t["values"]["train.lr"] for t in record["trials"]]
    ]
    best = max(record["trials"], key=lambda t: t["score"])
    assert record["chosen"] == best["values"]
    summary = results[0].summary
    assert summary.hyperparameters["source"] == "search"
    assert summary.hyperparameters["train"]["lr"] == record["chosen"]["train.lr"]


def test_bad_search_keys_are_config_errors():
    from audio_ticl.benchmark.errors import ConfigError

    with pytest.raises(ConfigError, match="methods.2.search.lr"):
        load_config("smoke", overrides=["methods.finetune.search={lr: [1]}"])
    with pytest.raises(ConfigError, match="unknown train key 'lrr'"):
        load_config("smoke", overrides=["methods.finetune.search={train.lrr: [1]}"])
    with pytest.raises(ConfigError, match="non-empty list"):
        load_config("smoke", overrides=["methods.finetune.search={train.lr: 0.1}"])
    with pytest.raises(ConfigError, match="tuning.protocol"):
        load_config("smoke", overrides=["tuning.protocol=test_set"])


# ---------------------------------------------------------------------------------------- provenance
def test_provenance_marks_a_dirty_tree_and_keeps_its_diff(tmp_path):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("config", "user.email", "t@t")
    git("config", "user.name", "t")
    (tmp_path / "benchmark").mkdir()
    (tmp_path / "benchmark" / "a.py").write_text("x = 1\n")
    git("add", ".")
    git("commit", "-qm", "c")
    clean = provenance(tmp_path)
    assert not clean.dirty and "+" not in clean.commit and clean.diff == ""
    provenance.cache_clear()
    (tmp_path / "benchmark" / "a.py").write_text("x = 2\n")
    dirty = provenance(tmp_path)
    assert dirty.dirty and dirty.commit == clean.commit + "+dirty" and "+x = 2" in dirty.diff
    provenance.cache_clear()
    (tmp_path / "benchmark" / "a.py").write_text("x = 1\n")
    (tmp_path / "benchmark" / "new.py").write_text("y = 1\n")
    untracked = provenance(tmp_path)
    assert untracked.dirty and "benchmark/new.py" in untracked.diff
    provenance.cache_clear()


# ---------------------------------------------------------------------------------- memory and storage
def test_cpu_peak_memory_is_per_span_and_sees_torch_allocations():
    # in a fresh interpreter: a long test session's allocator may hold freed, still-resident memory that a new
    # tensor reuses without raising the RSS, which would hide the span's peak for reasons unrelated to PeakMemory
    code = """
import torch
from audio_ticl.benchmark import metrics as M
memory = M.PeakMemory(torch.device("cpu"))
assert memory.kind == "process_peak_rss_during_task", memory.kind
memory.start()
big = torch.ones(64 * 2**20 // 4)  # 64 MiB
big += 1
with_big = memory.peak_mb()
del big
memory.start()
print(with_big - memory.peak_mb())
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout.strip().splitlines()[-1]) > 50


def test_method_state_bytes_count_ewc_importances_and_replay_memory():
    torch.manual_seed(0)
    tasks = _tasks(2)
    bm = make_benchmark(tasks)
    ewc = _strategy("ewc", _net(), bm)
    ewc.train(bm.train_stream[0])
    shared = sum(p.numel() * 4 for p in ewc.net.parameters())  # after task 0 every parameter trained
    assert ewc.method_state_bytes() == 2 * shared  # one importance and one anchor per parameter
    replay = _strategy("replay", _net(), bm, mem_size=6)
    replay.train(bm.train_stream[0])
    assert replay.method_state_bytes() == 6 * 32 * 128 * 4 + 4 * 6  # six stored clips (float32) + their weights
    si = _strategy("si", _net(), bm)
    si.train(bm.train_stream[0])
    assert si.method_state_bytes() == 2 * shared  # anchor + Omega; the per-step buffers are not storage
    agem = _strategy("agem", _net(), bm, patterns_per_exp=5, sample_size=4)
    agem.train(bm.train_stream[0])
    assert agem.method_state_bytes() == 5 * 32 * 128 * 4  # its memory, not its reference gradient
    assert _strategy("finetune", _net(), bm).method_state_bytes() == 0
