"""The AVE source (official lists, extracted audio) and its errors."""
from pathlib import Path

import pytest
from fixtures import AVE_FIXTURE_CLASSES, make_ave_fixture

from audio_ticl.benchmark.audio.cache import FeatureCache, extract_features
from audio_ticl.benchmark.audio.features import FbankSettings
from audio_ticl.benchmark.datasets import SOURCES, AVESource
from audio_ticl.benchmark.errors import DataError


def test_ave_splits_follow_the_official_lists(tmp_path: Path) -> None:
    root = make_ave_fixture(tmp_path / "AVE_Dataset")
    source = AVESource(tmp_path)  # the parent folder is accepted too
    assert SOURCES["ave"] is AVESource
    assert source.classes() == sorted(AVE_FIXTURE_CLASSES)
    clips = source.clips()
    counts = {split: sum(c.split == split for c in clips) for split in ("train", "val", "test")}
    assert counts == {"train": 6, "val": 3, "test": 3}
    test_ids = {line.split("&")[1] for line in (root / "testSet.txt").read_text().splitlines()}
    assert {c.path.stem for c in clips if c.split == "test"} == test_ids
    cache = FeatureCache(tmp_path / "cache")
    batch = extract_features(clips[:2], FbankSettings(target_frames=64), cache, progress=False)
    assert tuple(batch.features.shape) == (2, 64, 128)


def test_ave_class_subset(tmp_path: Path) -> None:
    make_ave_fixture(tmp_path)
    source = AVESource(tmp_path, classes=["Dog"])
    assert source.classes() == ["Dog"]
    assert {c.label for c in source.clips()} == {"Dog"}
    with pytest.raises(DataError, match=r"unknown AVE class\(es\) 'Cat'; available: Church bell, Dog, Male speech"):
        AVESource(tmp_path, classes=["Cat"])
    with pytest.raises(DataError, match="must be a list of class names, got 'Dog'"):
        AVESource(tmp_path, classes="Dog")  # not the categories 'D', 'o', 'g'
    assert AVESource(tmp_path, classes=["Dog", "Church bell"]).classes() == ["Church bell", "Dog"]  # sorted


def test_ave_errors_name_the_file_and_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="AVE root folder not found"):
        AVESource(tmp_path / "nowhere")
    tmp_path.joinpath("empty").mkdir()
    with pytest.raises(DataError, match="not an AVE folder"):
        AVESource(tmp_path / "empty")

    root = make_ave_fixture(tmp_path / "no-audio", extract_audio=False)
    with pytest.raises(DataError, match="ffmpeg"):
        AVESource(root).clips()

    root = make_ave_fixture(tmp_path / "missing-wav")
    victim = sorted((root / "audio").glob("*.wav"))[0]
    victim.unlink()
    with pytest.raises(DataError, match=f"{victim.stem}.wav.*not found.*ffmpeg"):
        AVESource(root).clips()

    root = make_ave_fixture(tmp_path / "bad-line")
    (root / "valSet.txt").write_text("Dog only-one-field\n")
    with pytest.raises(DataError, match="valSet.txt:1: expected 'Category&VideoID"):
        AVESource(root)

    root = make_ave_fixture(tmp_path / "overlap")
    first_train = (root / "trainSet.txt").read_text().splitlines()[0]
    (root / "testSet.txt").write_text(first_train + "\n")
    with pytest.raises(DataError, match="in both trainSet.txt:1 and testSet.txt:1"):
        AVESource(root)

    root = make_ave_fixture(tmp_path / "no-list")
    (root / "testSet.txt").unlink()
    with pytest.raises(DataError, match="testSet.txt: AVE split list not found"):
        AVESource(root)
