"""Dataset sources on the real shared data (ESC-10, FSDD; skipped where absent) and on official-layout fixtures."""
from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
from fixtures import make_esc50_fixture, make_fsdd_fixture, make_speechcommands_fixture, shared_data

from audio_ticl.benchmark.datasets import (
    SOURCES,
    ClipSource,
    ESC50Source,
    FSDDSource,
    SpeechCommandsSource,
    UrbanSound8KSource,
    register_source,
)
from audio_ticl.benchmark.datasets.base import SPLITS, select_classes
from audio_ticl.benchmark.datasets.fold_csv import FoldCsvSource
from audio_ticl.benchmark.datasets.speechcommands import COMMAND_WORDS
from audio_ticl.benchmark.errors import ConfigError, DataError

ESC10_BY_TARGET = ["dog", "rooster", "rain", "sea_waves", "crackling_fire", "crying_baby", "sneezing",
                   "clock_tick", "helicopter", "chainsaw"]


def split_counts(source: ClipSource) -> Counter:
    return Counter(clip.split for clip in source.clips())


# -- ESC-50 -----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def esc10() -> Path:
    return shared_data("esc50-subset")


@pytest.fixture(scope="module")
def fsdd() -> Path:
    return shared_data("fsdd")


def test_esc50_subset_official_folds(esc10: Path) -> None:
    source = ESC50Source(esc10)
    clips = source.clips()
    assert len(clips) == 400
    assert source.classes() == ESC10_BY_TARGET
    assert split_counts(source) == {"train": 240, "val": 80, "test": 80}
    assert all(c.path.is_file() and c.path.suffix == ".ogg" and c.key == str(c.path) for c in clips)
    assert Counter(c.label for c in clips) == {name: 40 for name in ESC10_BY_TARGET}
    # a clip's fold is the first field of its file name
    split_of_fold = {"1": "train", "2": "train", "3": "train", "4": "val", "5": "test"}
    assert all(c.split == split_of_fold[c.path.name[0]] for c in clips)
    assert source.feature_defaults.target_frames == 512 and source.feature_defaults.mean == -6.6268077


def test_esc50_category_groups(esc10: Path) -> None:
    assert ESC50Source(esc10).class_groups() == {
        "animals": ["dog", "rooster"],
        "natural": ["rain", "sea_waves", "crackling_fire"],
        "human": ["crying_baby", "sneezing"],
        "domestic": ["clock_tick"],
        "urban": ["helicopter", "chainsaw"],
    }
    subset = ESC50Source(esc10, classes=["chainsaw", "dog", "rooster"])
    assert subset.classes() == ["dog", "rooster", "chainsaw"]  # target-id order
    assert subset.class_groups() == {"animals": ["dog", "rooster"], "urban": ["chainsaw"]}
    assert len(subset.clips()) == 120


def test_esc50_other_fold_protocol(esc10: Path) -> None:
    source = ESC50Source(esc10, train_folds=(1, 2, 3, 5), val_folds=(), test_folds=(4,))
    assert split_counts(source) == {"train": 320, "test": 80}


def test_esc50_wav_fixture(tmp_path: Path) -> None:
    source = ESC50Source(make_esc50_fixture(tmp_path))
    assert source.classes() == ["dog", "rain", "chainsaw"]
    assert source.class_ids() == {"dog": 0, "rain": 10, "chainsaw": 41}
    assert source.class_groups() == {"animals": ["dog"], "natural": ["rain"], "urban": ["chainsaw"]}
    assert split_counts(source) == {"train": 9, "val": 3, "test": 3}
    assert all(c.path.suffix == ".wav" for c in source.clips())


def test_esc50_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere"):
        ESC50Source(tmp_path / "nowhere")
    root = make_esc50_fixture(tmp_path / "esc")
    csv_path = root / "meta" / "esc50.csv"
    with pytest.raises(DataError, match="used by both"):
        ESC50Source(root, train_folds=(1, 2), val_folds=(2,))
    with pytest.raises(DataError, match="1..5"):
        ESC50Source(root, test_folds=(6,))
    with pytest.raises(DataError, match="available: dog, rain, chainsaw"):
        ESC50Source(root, classes=["dog", "cat"])
    (root / "audio" / "2-1020-A-0.wav").unlink()
    with pytest.raises(DataError, match=r"2-1020-A-0.wav: audio file listed in .*esc50.csv \(line \d+, fold 2\)"):
        ESC50Source(root).clips()
    csv_path.write_text(csv_path.read_text().replace(",41,chainsaw,", ",50,chainsaw,"))
    with pytest.raises(DataError, match=r"esc50.csv, line \d+: fold \d / target 50 out of range .*target 0..49"):
        ESC50Source(root)
    csv_path.write_text(csv_path.read_text().replace(",50,chainsaw,", ",0,chainsaw,"))
    with pytest.raises(DataError, match="target 0 is category 'chainsaw', but 'dog' on line 2"):
        ESC50Source(root)
    csv_path.write_text("filename,fold,category\nx.wav,1,dog\n")
    with pytest.raises(DataError, match="target") as err:
        ESC50Source(root)
    assert str(csv_path) in str(err.value)
    csv_path.unlink()
    with pytest.raises(DataError, match="esc50.csv"):
        ESC50Source(root)


# -- Speech Commands ---------------------------------------------------------------------------------------------

def test_speechcommands_fixture_splits(tmp_path: Path) -> None:
    root = make_speechcommands_fixture(tmp_path, ["yes", "no", "up"], speakers=4, takes=2)
    source = SpeechCommandsSource(root)
    assert source.classes() == ["no", "up", "yes"]
    clips = source.clips()
    test_list = (root / "testing_list.txt").read_text().split()
    val_list = (root / "validation_list.txt").read_text().split()
    assert split_counts(source) == {"train": 3 * 2 * 2, "val": len(val_list), "test": len(test_list)}
    by_rel = {f"{c.path.parent.name}/{c.path.name}": c.split for c in clips}
    assert all(by_rel[r] == "test" for r in test_list) and all(by_rel[r] == "val" for r in val_list)
    assert not any("_background_noise_" in str(c.path) for c in clips)
    assert source.feature_defaults.target_frames == 128


def test_speechcommands_word_subset(tmp_path: Path) -> None:
    root = make_speechcommands_fixture(tmp_path, ["yes", "no", "up"])
    source = SpeechCommandsSource(root, words=["yes", "up"])
    assert source.classes() == ["yes", "up"]
    assert {c.label for c in source.clips()} == {"yes", "up"} and len(source.clips()) == 12
    assert split_counts(source) == {"train": 4, "val": 4, "test": 4}
    assert COMMAND_WORDS == ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]


def test_speechcommands_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere"):
        SpeechCommandsSource(tmp_path / "nowhere")
    root = make_speechcommands_fixture(tmp_path / "sc", ["yes", "no"])
    with pytest.raises(DataError, match="'go'; available: no, yes .*<word>/ folder"):
        SpeechCommandsSource(root, words=["yes", "go"])
    with pytest.raises(DataError, match="'yes' requested more than once"):
        SpeechCommandsSource(root, words=["yes", "no", "yes"])
    with pytest.raises(DataError, match="class list is empty"):
        SpeechCommandsSource(root, words=[])
    with pytest.raises(DataError, match="must be a list of class names, got 'yes'"):
        SpeechCommandsSource(root, words="yes")
    victim = (root / "testing_list.txt").read_text().split()[0]
    (root / victim).unlink()
    with pytest.raises(DataError, match="testing_list.txt") as err:
        SpeechCommandsSource(root)
    assert victim in str(err.value)
    (root / "validation_list.txt").unlink()
    with pytest.raises(DataError, match="validation_list.txt"):
        SpeechCommandsSource(root)


# -- FSDD ---------------------------------------------------------------------------------------------------------

def test_fsdd_real_data_official_split(fsdd: Path) -> None:
    source = FSDDSource(fsdd)
    clips = source.clips()
    assert len(clips) == 3000
    assert source.classes() == [str(d) for d in range(10)]
    assert split_counts(source) == {"train": 2400, "val": 300, "test": 300}
    assert all(int(c.path.stem.split("_")[2]) < 5 for c in clips if c.split == "test")
    assert all(c.path.stem.split("_")[0] == c.label for c in clips)
    # the recordings folder itself is accepted too
    assert len(FSDDSource(fsdd / "recordings", val_takes=()).clips()) == 3000


def test_fsdd_train_takes_subset_keeps_official_test_and_val(fsdd: Path) -> None:
    source = FSDDSource(fsdd, train_takes=range(10, 20))
    assert split_counts(source) == {"train": 600, "val": 300, "test": 300}
    assert {int(c.path.stem.split("_")[2]) for c in source.clips() if c.split == "train"} == set(range(10, 20))


def test_fsdd_fixture_split_by_take(tmp_path: Path) -> None:
    root = make_fsdd_fixture(tmp_path)
    source = FSDDSource(root)
    assert source.classes() == ["0", "1", "2"]
    # takes 0, 1 test; 5, 6 val (default val_takes 5-9); 10, 11 train; 3 digits x 2 speakers each
    assert split_counts(source) == {"test": 12, "val": 12, "train": 12}
    assert split_counts(FSDDSource(root, val_takes=(), train_takes=[10])) == {"test": 12, "train": 6}


def test_fsdd_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere"):
        FSDDSource(tmp_path / "nowhere")
    rec = tmp_path / "recordings"
    rec.mkdir()
    with pytest.raises(DataError, match="no FSDD recordings"):
        FSDDSource(tmp_path)
    good = make_fsdd_fixture(tmp_path / "good")
    shutil.copy(good / "recordings" / "0_george_0.wav", rec / "0_george_0.wav")
    shutil.copy(good / "recordings" / "0_george_0.wav", rec / "zero-george.wav")
    with pytest.raises(DataError, match="zero-george.wav"):
        FSDDSource(tmp_path)
    with pytest.raises(DataError, match="test takes"):
        FSDDSource(good, val_takes=range(3, 8))
    with pytest.raises(DataError, match=r"train_takes \[7, 8, 9\]"):
        FSDDSource(good, train_takes=range(7, 12))
    with pytest.raises(DataError, match="train_takes is empty"):
        FSDDSource(good, train_takes=[])


# -- select_classes: the one class check of every source ------------------------------------------------------------

AVAILABLE = ["dog", "rain", "chainsaw"]


def test_select_classes_keeps_canonical_order_unless_asked() -> None:
    assert select_classes(AVAILABLE, None, "root", "X") == AVAILABLE
    assert select_classes(AVAILABLE, ["chainsaw", "dog"], "root", "X") == ["dog", "chainsaw"]
    assert select_classes(AVAILABLE, ("chainsaw", "dog"), "root", "X", keep_order=True) == ["chainsaw", "dog"]


@pytest.mark.parametrize(
    ("wanted", "message"),
    [
        (["dog", "cat", "cat"], r"root: unknown X class\(es\) 'cat'; available: dog, rain, chainsaw!$"),
        (["dog", "dog"], r"root: X class\(es\) 'dog' requested more than once"),
        ([], "root: the X class list is empty; available: dog, rain, chainsaw"),
        ("dog", "root: X classes must be a list of class names, got 'dog'"),
        (3, "root: X classes must be a list of class names, got 3"),
        (["dog", 3], r"root: X class names must be strings, got 3 \(int\)"),
    ],
)
def test_select_classes_errors(wanted, message: str) -> None:
    with pytest.raises(DataError, match=message):
        select_classes(AVAILABLE, wanted, "root", "X", hint="!")
    with pytest.raises(ConfigError, match=message):
        select_classes(AVAILABLE, wanted, "root", "X", hint="!", error=ConfigError)


def test_fold_csv_datasets_share_one_loader() -> None:
    assert issubclass(ESC50Source, FoldCsvSource) and issubclass(UrbanSound8KSource, FoldCsvSource)
    assert ESC50Source.layout.required_columns == ("filename", "fold", "target", "category")
    assert UrbanSound8KSource.layout.required_columns == ("slice_file_name", "fold", "classID", "class")


# -- registry -------------------------------------------------------------------------------------------------------

def test_registry() -> None:
    assert SOURCES["esc50"] is ESC50Source and SOURCES["fsdd"] is FSDDSource
    assert SOURCES["speechcommands"] is SpeechCommandsSource
    assert all(cls.name == name for name, cls in SOURCES.items())
    with pytest.raises(ConfigError):
        register_source("esc50", FSDDSource)
    with pytest.raises(ConfigError):
        register_source("thing", dict)  # type: ignore[arg-type]


def test_every_source_has_a_test_module() -> None:
    """A new source without tests fails here: add it to this table with the test file that covers it."""
    tested = {"esc50": "test_datasets", "speechcommands": "test_datasets", "fsdd": "test_datasets",
              "urbansound8k": "test_urbansound8k", "ave": "test_ave", "synthetic": "test_synthetic",
              "folder": "test_own_data", "csv": "test_own_data"}
    assert set(SOURCES) == set(tested)
    assert all((Path(__file__).parent / f"{module}.py").is_file() for module in tested.values())


def test_every_clip_has_a_known_split(esc10: Path) -> None:
    assert all(c.split in SPLITS for c in ESC50Source(esc10).clips())
