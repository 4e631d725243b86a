"""UrbanSound8K on a generated official-layout fixture: fold splits, class ids, features, and bad-input errors."""
from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest
import soundfile as sf
from fixtures import make_urbansound8k_fixture

from audio_ticl.benchmark.audio.cache import extract_features
from audio_ticl.benchmark.audio.features import FbankSettings
from audio_ticl.benchmark.config import load_config
from audio_ticl.benchmark.datasets import SOURCES, UrbanSound8KSource
from audio_ticl.benchmark.datasets.urbansound8k import URBANSOUND8K_DEFAULTS
from audio_ticl.benchmark.errors import ConfigError, DataError
from audio_ticl.benchmark.scenarios import build_tasks, make_source

CLASSES = ["air_conditioner", "dog_bark", "gun_shot"]


@pytest.fixture(scope="module")
def us8k(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only fixture shared by the tests that do not damage it: ``<tmp>/UrbanSound8K``."""
    return make_urbansound8k_fixture(tmp_path_factory.mktemp("us8k") / "UrbanSound8K")


@pytest.fixture()
def us8k_copy(tmp_path: Path) -> Path:
    """A private fixture for tests that break it."""
    return make_urbansound8k_fixture(tmp_path / "UrbanSound8K", folds=(1, 2, 3))


def fold_of(clip) -> int:
    return int(clip.path.parent.name.removeprefix("fold"))


def rewrite_csv(root: Path, edit) -> Path:
    """Apply ``edit(rows)`` to the csv's rows (a list of dicts) and write it back with the same columns."""
    csv_path = root / "metadata" / "UrbanSound8K.csv"
    with csv_path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns, rows = list(reader.fieldnames or []), list(reader)
    edited = edit(rows)
    rows = rows if edited is None else edited
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return csv_path


# -- splits and classes -------------------------------------------------------------------------------------------

def test_default_split_is_folds_1_to_8_train_9_val_10_test(us8k: Path) -> None:
    source = UrbanSound8KSource(us8k)
    clips = source.clips()
    assert Counter(c.split for c in clips) == {"train": 24, "val": 3, "test": 3}
    expected = {**{f: "train" for f in range(1, 9)}, 9: "val", 10: "test"}
    assert all(c.split == expected[fold_of(c)] for c in clips)
    assert all(c.path.is_file() and c.path.is_absolute() and c.key == str(c.path) for c in clips)
    # the class is the csv's, and the file name's second field is its classID
    assert all(int(c.path.name.split("-")[1]) == source.class_ids()[c.label] for c in clips)
    assert source.class_groups() == {}


def test_classes_in_class_id_order_not_csv_order(us8k: Path) -> None:
    with (us8k / "metadata" / "UrbanSound8K.csv").open() as handle:
        first_listed = next(csv.DictReader(handle))["class"]
    assert first_listed == "gun_shot"  # the fixture's csv lists the highest classID first
    source = UrbanSound8KSource(us8k)
    assert source.classes() == CLASSES
    assert source.class_ids() == {"air_conditioner": 0, "dog_bark": 3, "gun_shot": 6}
    subset = UrbanSound8KSource(us8k, classes=["gun_shot", "air_conditioner"])
    assert subset.classes() == ["air_conditioner", "gun_shot"]
    assert {c.label for c in subset.clips()} == {"air_conditioner", "gun_shot"} and len(subset.clips()) == 20


def test_root_may_be_the_dataset_folder_or_its_parent(us8k: Path) -> None:
    direct = UrbanSound8KSource(us8k).clips()
    assert UrbanSound8KSource(us8k.parent).clips() == direct
    assert UrbanSound8KSource(us8k.parent).root == us8k


def test_other_fold_protocols(us8k: Path) -> None:
    source = UrbanSound8KSource(us8k, train_folds=[2, 3], val_folds=[], test_folds=[1])
    assert Counter(c.split for c in source.clips()) == {"train": 6, "test": 3}
    assert {fold_of(c) for c in source.clips()} == {1, 2, 3}  # unlisted folds are left out


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"train_folds": [1, 2], "val_folds": [2]}, "fold 2 is used by both train_folds and val_folds"),
        ({"test_folds": [10, 9]}, "fold 9 is used by both val_folds and test_folds"),
        ({"test_folds": [11]}, r"fold 11 in test_folds is not one of 1\.\.10"),
        ({"train_folds": [0]}, r"fold 0 in train_folds is not one of 1\.\.10"),
        ({"val_folds": ["9"]}, r"fold '9' in val_folds is not one of 1\.\.10"),
        ({"val_folds": 9}, "val_folds must be a list of fold numbers"),
        ({"classes": ["dog_bark", "siren"]},
         "unknown UrbanSound8K class.*'siren'.*available: air_conditioner, dog_bark, gun_shot"),
        ({"classes": "dog_bark"}, "must be a list of class names"),
    ],
)
def test_option_errors(us8k: Path, options: dict, message: str) -> None:
    with pytest.raises(DataError, match=message):
        UrbanSound8KSource(us8k, **options)


def test_feature_defaults_are_the_published_constants(us8k: Path) -> None:
    defaults = UrbanSound8KSource(us8k).feature_defaults
    assert (defaults.mean, defaults.std, defaults.target_frames) == (-4.451961, 3.9357858, 400)
    assert defaults is URBANSOUND8K_DEFAULTS


# -- features -----------------------------------------------------------------------------------------------------

def test_mixed_formats_load_through_the_feature_pipeline(us8k: Path) -> None:
    clips = UrbanSound8KSource(us8k, train_folds=[1, 2], val_folds=[], test_folds=[]).clips()
    formats = {(sf.info(str(c.path)).samplerate, sf.info(str(c.path)).subtype, sf.info(str(c.path)).channels)
               for c in clips}
    assert len(formats) == 4  # 8-48 kHz, 8/16/24-bit and float, mono and stereo
    batch = extract_features(clips, FbankSettings(target_frames=400), None, progress=False, pool_min_misses=10**9)
    assert batch.features.shape == (6, 400, 128)
    # 0.3 s at 16 kHz is 28 frames: the rest is zero padding, and the content is finite and not silent
    assert batch.features[:, 28:].abs().sum() == 0
    assert batch.features[:, :28].isfinite().all() and batch.features[:, :28].std() > 0


def test_a_config_builds_tasks_with_the_dataset_constants(us8k: Path) -> None:
    cfg = load_config("esc50-cpu", overrides=[
        "data.source=urbansound8k", f"data.root={us8k.parent}", "data.options={classes: [dog_bark, gun_shot]}",
        "features.target_frames=null", "scenario.classes_per_task=1", "scenario.class_order=canonical",
    ])
    tasks, report = build_tasks(cfg, progress=False)
    assert [t.classes for t in tasks] == [["dog_bark"], ["gun_shot"]]
    assert report.clips == 20
    task = tasks[0]
    assert (task.mean, task.std, task.freqm, task.timem) == (-4.451961, 3.9357858, 24, 75)
    assert {s: tuple(task.splits[s].features.shape) for s in task.splits} == {
        "train": (8, 400, 128), "val": (1, 400, 128), "test": (1, 400, 128)
    }


def test_registry_and_config_errors(us8k: Path) -> None:
    assert SOURCES["urbansound8k"] is UrbanSound8KSource and UrbanSound8KSource.name == "urbansound8k"
    assert make_source("urbansound8k", str(us8k), {"test_folds": [10]}, "data").classes() == CLASSES
    with pytest.raises(ConfigError, match="does not fit source 'urbansound8k'.*folds"):
        make_source("urbansound8k", str(us8k), {"folds": [1]}, "data")
    with pytest.raises(ConfigError, match="needs a root folder"):
        make_source("urbansound8k", None, {}, "data")


# -- bad input ----------------------------------------------------------------------------------------------------

def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nowhere: UrbanSound8K root folder not found.*metadata/UrbanSound8K\.csv"):
        UrbanSound8KSource(tmp_path / "nowhere")


def test_missing_metadata_csv(us8k_copy: Path) -> None:
    (us8k_copy / "metadata" / "UrbanSound8K.csv").unlink()
    with pytest.raises(DataError, match="UrbanSound8K metadata not found") as err:
        UrbanSound8KSource(us8k_copy)
    assert str(us8k_copy / "metadata" / "UrbanSound8K.csv") in str(err.value)
    # a folder with neither metadata/ nor UrbanSound8K/ in it names the csv it looked for
    with pytest.raises(DataError, match="UrbanSound8K metadata not found"):
        UrbanSound8KSource(us8k_copy / "audio")


def test_missing_columns(us8k_copy: Path) -> None:
    csv_path = us8k_copy / "metadata" / "UrbanSound8K.csv"
    csv_path.write_text("slice_file_name,fsID,fold,class\nx.wav,1,1,dog_bark\n")
    with pytest.raises(DataError, match=r"missing column\(s\) classID \(expected at least slice_file_name, fold, "
                                        r"classID, class; found slice_file_name, fsID, fold, class\)") as err:
        UrbanSound8KSource(us8k_copy)
    assert str(csv_path) in str(err.value)
    csv_path.write_text("")
    with pytest.raises(DataError, match="found none"):
        UrbanSound8KSource(us8k_copy)


def test_missing_audio_file(us8k_copy: Path) -> None:
    victim = next((us8k_copy / "audio" / "fold2").glob("*.wav"))
    victim.unlink()
    source = UrbanSound8KSource(us8k_copy, train_folds=[1], val_folds=[], test_folds=[])
    assert len(source.clips()) == 3  # a fold that is not used is not checked
    with pytest.raises(DataError, match=f"{victim.name}: audio file listed in .*UrbanSound8K.csv .*fold 2") as err:
        UrbanSound8KSource(us8k_copy, train_folds=[1, 2]).clips()
    assert str(victim) in str(err.value) and f"audio/fold2/{victim.name}" in str(err.value)


def test_class_and_class_id_must_map_one_to_one(us8k_copy: Path) -> None:
    def relabel_id(rows: list[dict]) -> None:
        rows[-1]["classID"] = "5"  # one air_conditioner row (the last by file name) gets another id

    csv_path = rewrite_csv(us8k_copy, relabel_id)
    with pytest.raises(DataError, match=r"line \d+: class 'air_conditioner' has classID 5, but classID 0 on line"):
        UrbanSound8KSource(us8k_copy)

    def restore_and_rename(rows: list[dict]) -> None:
        rows[-1]["classID"] = "0"
        rows[-1]["class"] = "aircon"

    rewrite_csv(us8k_copy, restore_and_rename)
    with pytest.raises(DataError, match=r"classID 0 is class 'aircon', but 'air_conditioner' on line") as err:
        UrbanSound8KSource(us8k_copy)
    assert str(csv_path) in str(err.value)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("fold", "11", r"fold 11 / classID \d+ out of range"),
        ("fold", "one", "expected integer fold and classID"),
        ("classID", "", "expected integer fold and classID"),
        ("class", " ", "empty slice_file_name or class"),
        ("slice_file_name", "fold1/a.wav", "slice_file_name .fold1/a.wav. must be a bare file name"),
    ],
)
def test_bad_csv_values(us8k_copy: Path, field: str, value: str, message: str) -> None:
    def corrupt(rows: list[dict]) -> None:
        rows[1][field] = value

    rewrite_csv(us8k_copy, corrupt)
    with pytest.raises(DataError, match=r"UrbanSound8K\.csv, line 3: " + message):
        UrbanSound8KSource(us8k_copy)


def test_empty_csv_is_an_error(us8k_copy: Path) -> None:
    rewrite_csv(us8k_copy, lambda rows: [])
    with pytest.raises(DataError, match="no clips listed"):
        UrbanSound8KSource(us8k_copy)
