"""Dataset sources on the real shared data (ESC-10, FSDD) and on generated official-layout fixtures."""
from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest

from audio_ticl.benchmark.datasets import SOURCES, ClipSource, ESC50Source, FSDDSource, SpeechCommandsSource, register_source
from audio_ticl.benchmark.datasets.base import SPLITS
from audio_ticl.benchmark.datasets.speechcommands import COMMAND_WORDS
from audio_ticl.benchmark.errors import ConfigError, DataError
from fixtures import ESC50_SUBSET, FSDD_ROOT, make_esc50_fixture, make_speechcommands_fixture

ESC10_BY_TARGET = ["dog", "rooster", "rain", "sea_waves", "crackling_fire", "crying_baby", "sneezing",
                   "clock_tick", "helicopter", "chainsaw"]


def split_counts(source: ClipSource) -> Counter:
    return Counter(clip.split for clip in source.clips())


# -- ESC-50 -----------------------------------------------------------------------------------------------------

def test_esc50_subset_official_folds() -> None:
    source = ESC50Source(ESC50_SUBSET)
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


def test_esc50_category_groups() -> None:
    assert ESC50Source(ESC50_SUBSET).class_groups() == {
        "animals": ["dog", "rooster"],
        "natural": ["rain", "sea_waves", "crackling_fire"],
        "human": ["crying_baby", "sneezing"],
        "domestic": ["clock_tick"],
        "urban": ["helicopter", "chainsaw"],
    }
    subset = ESC50Source(ESC50_SUBSET, classes=["chainsaw", "dog", "rooster"])
    assert subset.classes() == ["dog", "rooster", "chainsaw"]  # target-id order
    assert subset.class_groups() == {"animals": ["dog", "rooster"], "urban": ["chainsaw"]}
    assert len(subset.clips()) == 120


def test_esc50_other_fold_protocol() -> None:
    source = ESC50Source(ESC50_SUBSET, train_folds=(1, 2, 3, 5), val_folds=(), test_folds=(4,))
    assert split_counts(source) == {"train": 320, "test": 80}


def test_esc50_wav_fixture(tmp_path: Path) -> None:
    source = ESC50Source(make_esc50_fixture(tmp_path))
    assert source.classes() == ["dog", "rain", "chainsaw"]
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
    with pytest.raises(DataError, match="2-1020-A-0.wav"):
        ESC50Source(root).clips()
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
    with pytest.raises(DataError, match="'go'.*available words: no, yes"):
        SpeechCommandsSource(root, words=["yes", "go"])
    victim = (root / "testing_list.txt").read_text().split()[0]
    (root / victim).unlink()
    with pytest.raises(DataError, match="testing_list.txt") as err:
        SpeechCommandsSource(root)
    assert victim in str(err.value)
    (root / "validation_list.txt").unlink()
    with pytest.raises(DataError, match="validation_list.txt"):
        SpeechCommandsSource(root)


# -- FSDD ---------------------------------------------------------------------------------------------------------

def test_fsdd_real_data_official_split() -> None:
    source = FSDDSource(FSDD_ROOT)
    clips = source.clips()
    assert len(clips) == 3000
    assert source.classes() == [str(d) for d in range(10)]
    assert split_counts(source) == {"train": 2400, "val": 300, "test": 300}
    assert all(int(c.path.stem.split("_")[2]) < 5 for c in clips if c.split == "test")
    assert all(c.path.stem.split("_")[0] == c.label for c in clips)
    # the recordings folder itself is accepted too
    assert len(FSDDSource(FSDD_ROOT / "recordings", val_takes=()).clips()) == 3000


def test_fsdd_train_takes_subset_keeps_official_test_and_val() -> None:
    source = FSDDSource(FSDD_ROOT, train_takes=range(10, 20))
    assert split_counts(source) == {"train": 600, "val": 300, "test": 300}
    assert {int(c.path.stem.split("_")[2]) for c in source.clips() if c.split == "train"} == set(range(10, 20))


def test_fsdd_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nowhere"):
        FSDDSource(tmp_path / "nowhere")
    rec = tmp_path / "recordings"
    rec.mkdir()
    with pytest.raises(DataError, match="no FSDD recordings"):
        FSDDSource(tmp_path)
    shutil.copy(FSDD_ROOT / "recordings" / "0_george_0.wav", rec / "0_george_0.wav")
    shutil.copy(FSDD_ROOT / "recordings" / "0_george_0.wav", rec / "zero-george.wav")
    with pytest.raises(DataError, match="zero-george.wav"):
        FSDDSource(tmp_path)
    with pytest.raises(DataError, match="test takes"):
        FSDDSource(FSDD_ROOT, val_takes=range(3, 8))
    with pytest.raises(DataError, match=r"train_takes \[7, 8, 9\]"):
        FSDDSource(FSDD_ROOT, train_takes=range(7, 12))
    with pytest.raises(DataError, match="train_takes is empty"):
        FSDDSource(FSDD_ROOT, train_takes=[])


# -- registry -------------------------------------------------------------------------------------------------------

def test_registry() -> None:
    assert SOURCES["esc50"] is ESC50Source and SOURCES["fsdd"] is FSDDSource
    assert SOURCES["speechcommands"] is SpeechCommandsSource
    assert all(cls.name == name for name, cls in SOURCES.items())
    with pytest.raises(ConfigError):
        register_source("esc50", FSDDSource)
    with pytest.raises(ConfigError):
        register_source("thing", dict)  # type: ignore[arg-type]


def test_every_clip_has_a_known_split() -> None:
    assert all(c.split in SPLITS for c in ESC50Source(ESC50_SUBSET).clips())
