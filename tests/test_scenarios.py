"""Class splits and the Avalanche benchmark built from tasks."""
import pytest
import torch

from audio_ticl.benchmark.config import ScenarioConfig, load_config
from audio_ticl.benchmark.datasets.base import Clip, ClipSource, FeatureDefaults
from audio_ticl.benchmark.errors import ConfigError
from audio_ticl.benchmark.scenarios import FeatureSplit, TaskData, make_benchmark, plan_class_split


class FakeSource(ClipSource):
    name = "fake"

    def __init__(self, classes, groups=None):
        self._classes = classes
        self._groups = groups or {}

    @property
    def feature_defaults(self):
        return FeatureDefaults(mean=0.0, std=1.0, target_frames=16, freqm=0, timem=0)

    def classes(self):
        return list(self._classes)

    def clips(self):
        return [Clip(key=f"{c}-{s}", label=c, split=s) for c in self._classes for s in ("train", "val", "test")]

    def class_groups(self):
        return self._groups


CLASSES = [f"c{i}" for i in range(10)]


def test_seeded_split_is_a_partition_and_depends_on_the_seed():
    scenario = ScenarioConfig(n_tasks=5, classes_per_task=2, class_order="seeded", order_seed=None)
    plan0 = plan_class_split(FakeSource(CLASSES), scenario, seed=0)
    plan1 = plan_class_split(FakeSource(CLASSES), scenario, seed=1)
    assert len(plan0) == 5 and all(len(classes) == 2 for _, classes in plan0)
    assert sorted(c for _, classes in plan0 for c in classes) == sorted(CLASSES)
    assert plan0 == plan_class_split(FakeSource(CLASSES), scenario, seed=0)
    assert plan0 != plan1


def test_canonical_split_keeps_dataset_order():
    scenario = ScenarioConfig(n_tasks=2, classes_per_task=3, class_order="canonical")
    plan = plan_class_split(FakeSource(CLASSES), scenario, 0)
    assert [classes for _, classes in plan] == [["c0", "c1", "c2"], ["c3", "c4", "c5"]]


def test_n_tasks_null_uses_every_class():
    plan = plan_class_split(FakeSource(CLASSES), ScenarioConfig(n_tasks=None, classes_per_task=3), 0)
    assert len(plan) == 3  # 10 // 3; the leftover class is not silently merged into a task


def test_too_many_tasks_is_an_error_naming_the_classes():
    with pytest.raises(ConfigError, match="6 tasks of 2 classes.*10 classes"):
        plan_class_split(FakeSource(CLASSES), ScenarioConfig(n_tasks=6, classes_per_task=2), 0)


def test_groups_and_explicit_orders():
    groups = {"low": ["c0", "c1"], "high": ["c8", "c9", "c7"]}
    plan = plan_class_split(FakeSource(CLASSES, groups), ScenarioConfig(n_tasks=None, class_order="groups"), 0)
    assert plan == [("low", ["c0", "c1"]), ("high", ["c8", "c9", "c7"])]
    explicit = ScenarioConfig(n_tasks=None, class_order="explicit", groups=[["c3"], ["c4", "c5"]])
    assert [c for _, c in plan_class_split(FakeSource(CLASSES), explicit, 0)] == [["c3"], ["c4", "c5"]]
    with pytest.raises(ConfigError, match="not in source"):
        plan_class_split(FakeSource(CLASSES), ScenarioConfig(class_order="explicit", groups=[["zz"]]), 0)
    with pytest.raises(ConfigError, match="defines no class groups"):
        plan_class_split(FakeSource(CLASSES), ScenarioConfig(class_order="groups"), 0)


def _task(task_id, n_classes, n=4):
    splits = {
        s: FeatureSplit(torch.randn(n * n_classes, 16, 8), torch.arange(n_classes).repeat(n))
        for s in ("train", "val", "test")
    }
    return TaskData(task_id, f"t{task_id}", "fake", [f"k{i}" for i in range(n_classes)], splits, 0.0, 1.0, 2, 2)


def test_benchmark_has_task_labels_and_local_class_ids():
    bm = make_benchmark([_task(0, 2), _task(1, 3)])
    assert set(bm.streams) == {"train", "valid", "test"}
    for stream in (bm.train_stream, bm.valid_stream, bm.test_stream):
        assert [exp.task_labels for exp in stream] == [[0], [1]]
    assert bm.train_stream[1].classes_in_this_experience == {0, 1, 2}
    x, y, t = bm.test_stream[1].dataset[0]
    assert x.shape == (16, 8) and t == 1


def test_specaugment_only_on_the_training_split():
    task = _task(0, 2)
    task.freqm, task.timem = 8, 16
    torch.manual_seed(0)
    train_x = torch.stack([task.dataset("train")[i][0] for i in range(8)])
    test_x = torch.stack([task.dataset("test")[i][0] for i in range(8)])
    # normalised with mean 0, std 1: x / 2; masked entries become exactly 0 in the training split only
    assert torch.equal(test_x, task.splits["test"].features[:8] / 2)
    assert not torch.equal(train_x, task.splits["train"].features[:8] / 2)


def test_esc50_preset_splits_the_subset_into_five_tasks():
    from fixtures import shared_data

    from audio_ticl.benchmark.scenarios import make_source

    esc10 = shared_data("esc50-subset")
    cfg = load_config("esc50-cpu", overrides=[f"data.root={esc10}"])
    source = make_source(cfg.data.source, cfg.data.root, cfg.data.options, "data")
    plan = plan_class_split(source, cfg.scenario, cfg.seed)
    assert len(plan) == 5 and sorted(c for _, cs in plan for c in cs) == sorted(source.classes())
