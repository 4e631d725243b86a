"""Cumulative and joint training draw every sample of the union exactly once per epoch (a plain shuffled pass),
with any number of tasks and any batch size; Avalanche's task-balanced, oversampling loader is an option."""
from collections import Counter

import pytest
import torch
from test_baselines import _Hook, _net, _strategy

from audio_ticl.benchmark.scenarios import FeatureSplit, TaskData, make_benchmark
from audio_ticl.strategies.plugins import BatchLimitPlugin

SIZES = (3, 4, 5, 3, 6)  # training clips per task: unequal, so oversampling would show


pytestmark = pytest.mark.usefixtures("one_thread")


def _identifiable_tasks(sizes=SIZES):
    """Every clip is constant, its value a unique id; with mean 0 / std 1 the AST normalisation halves it, and
    SpecAugment is off (freqm = timem = 0), so a mini-batch tells which clips it holds."""
    tasks, next_id = [], 1
    for i, n in enumerate(sizes):
        splits = {}
        for split in ("train", "val", "test"):
            ids = torch.arange(next_id, next_id + n, dtype=torch.float32)
            next_id += n
            splits[split] = FeatureSplit(ids.view(n, 1, 1).expand(n, 32, 128).clone(), torch.arange(n) % 2)
        tasks.append(TaskData(i, f"t{i}", "ids", ["0", "1"], splits, 0.0, 1.0, 0, 0))
    return tasks


def _train_ids(task):
    return [int(v) for v in task.splits["train"].features[:, 0, 0].tolist()]


def _record_batches(name, batch_size, epochs=2, extra=(), seed=0, **options):
    """Train ``name`` over the identifiable tasks; {task: [per-epoch Counter of (task label, clip id)]} and the
    per-epoch list of mini-batches of the last task."""
    tasks = _identifiable_tasks()
    bm = make_benchmark(tasks)
    seen, batches = {}, {}

    def epoch_start(strategy):
        seen.setdefault(strategy.current_task, []).append(Counter())
        batches.setdefault(strategy.current_task, []).append([])

    def record(strategy):
        ids = torch.round(strategy.mb_x[:, 0, 0] * 2).long().tolist()
        pairs = list(zip(strategy.mb_task_id.tolist(), ids))
        seen[strategy.current_task][-1].update(pairs)
        batches[strategy.current_task][-1].append(pairs)

    torch.manual_seed(seed)
    hooks = [*extra, _Hook("before_training_epoch", epoch_start), _Hook("before_training_iteration", record)]
    strategy = _strategy(name, _net(), bm, hooks, train_mb_size=batch_size, train_epochs=epochs, **options)
    for experience in bm.train_stream:
        strategy.train(experience)
    return tasks, seen, batches, strategy


def _union(tasks, upto):
    return Counter((t.id, i) for t in tasks[: upto + 1] for i in _train_ids(t))


@pytest.mark.parametrize("batch_size", [2, 8])
def test_cumulative_draws_every_union_sample_exactly_once_per_epoch(batch_size):
    tasks, seen, _, strategy = _record_batches("cumulative", batch_size)
    assert sorted(seen) == list(range(len(tasks)))
    for task, epochs in seen.items():
        assert len(epochs) == 2
        for counts in epochs:
            assert counts == _union(tasks, task), (task, batch_size)
    assert strategy.validates_on_seen_tasks


@pytest.mark.parametrize("batch_size", [2, 8])
def test_joint_draws_every_sample_of_all_tasks_exactly_once_per_epoch(batch_size):
    tasks, seen, _, _ = _record_batches("joint", batch_size)
    assert sorted(seen) == [len(tasks) - 1]  # deferred: only the last call trains
    for counts in seen[len(tasks) - 1]:
        assert counts == _union(tasks, len(tasks) - 1)


def test_the_order_is_shuffled_each_epoch_and_set_by_the_seed():
    _, _, first, _ = _record_batches("cumulative", 2, seed=0)
    _, _, again, _ = _record_batches("cumulative", 2, seed=0)
    _, _, other, _ = _record_batches("cumulative", 2, seed=1)
    last = len(SIZES) - 1
    assert first[last] == again[last]  # deterministic under the run's seed
    assert first[last] != other[last]
    assert first[last][0] != first[last][1]  # a fresh order every epoch


def test_max_batches_subset_is_drawn_once_per_epoch():
    limit = BatchLimitPlugin(max_batches=3, seed=0)
    tasks, seen, _, strategy = _record_batches("cumulative", 2, extra=[limit])
    for task, epochs in seen.items():
        union = _union(tasks, task)
        for counts in epochs:
            assert sum(counts.values()) == min(6, sum(union.values()))
            assert max(counts.values()) == 1 and set(counts) <= set(union)
        assert epochs[0] == epochs[1]  # the same subset in every epoch of the task


def test_task_balanced_option_restores_avalanches_balanced_oversampling_loader():
    tasks, seen, batches, _ = _record_batches("cumulative", 8, task_balanced=True)
    last = len(tasks) - 1
    counts = seen[last][0]
    assert set(counts) == set(_union(tasks, last))
    assert max(counts.values()) > 1  # smaller tasks are oversampled to the largest one's length
    for batch in batches[last][0]:  # and every mini-batch holds every task
        assert {t for t, _ in batch} == set(range(len(tasks)))
    with pytest.raises(AssertionError):  # Avalanche's balanced loader needs batch >= number of tasks
        _record_batches("cumulative", 2, task_balanced=True)
