"""Metadata as it arrives in practice: Excel's byte-order mark, ``.WAV`` extensions, and files listed twice (in
one split, or in two: test leakage), on official-layout fixtures of every file-based source."""
from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import pytest
from fixtures import (
    make_ave_fixture,
    make_esc50_fixture,
    make_fsdd_fixture,
    make_speechcommands_fixture,
    make_urbansound8k_fixture,
)

from audio_ticl.benchmark.datasets import AVESource, ESC50Source, FSDDSource, SpeechCommandsSource, UrbanSound8KSource
from audio_ticl.benchmark.datasets.base import ClipSource
from audio_ticl.benchmark.errors import DataError

BOM = b"\xef\xbb\xbf"


def add_bom(path: Path) -> None:
    """Rewrite a text file as Excel saves "CSV UTF-8": with a byte-order mark first."""
    path.write_bytes(BOM + path.read_bytes())


def append_line(path: Path, line: str) -> int:
    """Append ``line`` to a text file; returns its 1-based line number."""
    lines = path.read_text().splitlines()
    path.write_text("\n".join([*lines, line]) + "\n")
    return len(lines) + 1


def splits_of(source: ClipSource) -> dict[str, str]:
    return {clip.path.name: clip.split for clip in source.clips()}


# -- ESC-50 and UrbanSound8K (one metadata csv) -------------------------------------------------------------------

@pytest.fixture()
def esc50(tmp_path: Path) -> Path:
    return make_esc50_fixture(tmp_path / "esc50", seconds=0.05)


def test_esc50_csv_with_byte_order_mark_is_read(esc50: Path) -> None:
    expected = splits_of(ESC50Source(esc50))
    add_bom(esc50 / "meta" / "esc50.csv")
    assert splits_of(ESC50Source(esc50)) == expected


def test_urbansound8k_csv_with_byte_order_mark_is_read(tmp_path: Path) -> None:
    root = make_urbansound8k_fixture(tmp_path / "UrbanSound8K", folds=(1, 9, 10), seconds=0.05)
    expected = splits_of(UrbanSound8KSource(root))
    add_bom(root / "metadata" / "UrbanSound8K.csv")
    assert splits_of(UrbanSound8KSource(root)) == expected


def test_esc50_upper_case_extension_on_disk_is_found(esc50: Path) -> None:
    (esc50 / "audio" / "5-1050-A-0.wav").rename(esc50 / "audio" / "5-1050-A-0.WAV")
    assert splits_of(ESC50Source(esc50))["5-1050-A-0.WAV"] == "test"


def test_esc50_row_listed_twice_in_one_fold_is_rejected(esc50: Path) -> None:
    csv_path = esc50 / "meta" / "esc50.csv"
    first = csv_path.read_text().splitlines()[1]
    assert first.startswith("1-1010-A-0.wav,1,")
    line = append_line(csv_path, first)
    with pytest.raises(DataError, match=rf"esc50\.csv: 1-1010-A-0\.wav is in both line 2 and line {line}: fold 1 "
                                        r"\(train\) would hold it twice"):
        ESC50Source(esc50)


def test_esc50_file_in_a_train_fold_and_the_test_fold_is_rejected(esc50: Path) -> None:
    csv_path = esc50 / "meta" / "esc50.csv"
    line = append_line(csv_path, "1-1010-A-0.WAV,5,0,dog,True,1010,A")  # the extension's case does not matter
    with pytest.raises(DataError, match=rf"esc50\.csv: 1-1010-A-0\.wav is in both line 2 and line {line}: fold 1 "
                                        r"\(train\) and fold 5 \(test\) both hold it: test leakage"):
        ESC50Source(esc50)


def test_urbansound8k_slice_in_two_folds_is_rejected(tmp_path: Path) -> None:
    root = make_urbansound8k_fixture(tmp_path / "UrbanSound8K", folds=(1, 10), seconds=0.05)
    csv_path = root / "metadata" / "UrbanSound8K.csv"
    rows = csv_path.read_text().splitlines()
    number, row = next((n, r) for n, r in enumerate(rows, start=1) if ",1,0,air_conditioner" in r)
    name = row.split(",")[0]
    line = append_line(csv_path, row.replace(",1,0,air_conditioner", ",10,0,air_conditioner"))
    with pytest.raises(DataError, match=rf"UrbanSound8K\.csv: {name} is in both line {number} and line {line}: "
                                        r"fold 1 \(train\) and fold 10 \(test\) both hold it: test leakage"):
        UrbanSound8KSource(root)


# -- Speech Commands (validation_list.txt / testing_list.txt) ---------------------------------------------------

@pytest.fixture()
def speech(tmp_path: Path) -> Path:
    return make_speechcommands_fixture(tmp_path / "sc", ["yes", "no"], speakers=3, takes=1)


def test_speechcommands_lists_with_byte_order_mark_keep_their_first_entry(speech: Path) -> None:
    """Read as plain UTF-8, the mark glues itself to the first entry's word, and that test clip trains."""
    first = (speech / "testing_list.txt").read_text().splitlines()[0]
    add_bom(speech / "testing_list.txt")
    add_bom(speech / "validation_list.txt")
    clips = {f"{c.label}/{c.path.name}": c.split for c in SpeechCommandsSource(speech).clips()}
    assert clips[first] == "test"
    assert Counter(clips.values()) == {"train": 2, "val": 2, "test": 2}


def test_speechcommands_upper_case_extensions_are_found_and_keep_their_split(speech: Path) -> None:
    listed = (speech / "testing_list.txt").read_text().splitlines()[0]  # e.g. yes/<speaker>_nohash_0.wav
    (speech / listed).rename((speech / listed).with_suffix(".WAV"))
    clips = {f"{c.label}/{c.path.name}": c.split for c in SpeechCommandsSource(speech).clips()}
    assert clips[listed.removesuffix(".wav") + ".WAV"] == "test"
    assert len(clips) == 6


def test_speechcommands_clip_in_both_lists_is_rejected_naming_both_lines(speech: Path) -> None:
    entry = (speech / "testing_list.txt").read_text().splitlines()[1]
    line = append_line(speech / "validation_list.txt", entry)
    with pytest.raises(DataError, match=rf"{entry} is in both validation_list\.txt, line {line} and "
                                        r"testing_list\.txt, line 2: the validation split and the test split both "
                                        r"hold it: test leakage"):
        SpeechCommandsSource(speech)


def test_speechcommands_clip_twice_in_one_list_is_rejected(speech: Path) -> None:
    entry = (speech / "testing_list.txt").read_text().splitlines()[0]
    line = append_line(speech / "testing_list.txt", entry)
    with pytest.raises(DataError, match=rf"{entry} is in both testing_list\.txt, line 1 and testing_list\.txt, "
                                        rf"line {line}: the test split would hold it twice"):
        SpeechCommandsSource(speech)


# -- FSDD (split by file name) ----------------------------------------------------------------------------------

@pytest.fixture()
def fsdd(tmp_path: Path) -> Path:
    return make_fsdd_fixture(tmp_path / "fsdd", digits=(0, 1), speakers=("george",), takes=(0, 5, 10), seconds=0.05)


def test_fsdd_upper_case_extension_is_found(fsdd: Path) -> None:
    recordings = fsdd / "recordings"
    (recordings / "0_george_0.wav").rename(recordings / "0_george_0.WAV")
    assert splits_of(FSDDSource(fsdd)) == {
        "0_george_0.WAV": "test", "0_george_5.wav": "val", "0_george_10.wav": "train",
        "1_george_0.wav": "test", "1_george_5.wav": "val", "1_george_10.wav": "train",
    }


def test_fsdd_recording_found_twice_is_rejected_naming_both_files(fsdd: Path) -> None:
    recordings = fsdd / "recordings"
    shutil.copy(recordings / "0_george_10.wav", recordings / "0_george_010.wav")
    with pytest.raises(DataError, match=r"recordings: FSDD recording 0_george_10 is in both 0_george_010\.wav and "
                                        r"0_george_10\.wav: the train split would hold it twice"):
        FSDDSource(fsdd)


def test_fsdd_names_equal_but_for_case_are_rejected(fsdd: Path) -> None:
    recordings = fsdd / "recordings"
    shutil.copy(recordings / "1_george_5.wav", recordings / "1_george_5.WAV")
    with pytest.raises(DataError, match=r"recordings: 1_george_5\.WAV and 1_george_5\.wav differ only in case"):
        FSDDSource(fsdd)


# -- AVE (trainSet.txt / valSet.txt / testSet.txt) --------------------------------------------------------------

@pytest.fixture()
def ave(tmp_path: Path) -> Path:
    return make_ave_fixture(tmp_path / "AVE_Dataset", classes=("Dog", "Church bell"), seconds=0.05)


def test_ave_lists_with_byte_order_mark_and_upper_case_audio(ave: Path) -> None:
    expected = splits_of(AVESource(ave))
    for name in ("trainSet.txt", "valSet.txt", "testSet.txt"):
        add_bom(ave / name)
    first = sorted((ave / "audio").iterdir())[0]
    first.rename(first.with_suffix(".WAV"))
    got = splits_of(AVESource(ave))
    assert got.pop(first.stem + ".WAV") == expected.pop(first.name)
    assert got == expected


def test_ave_video_twice_in_one_list_is_rejected(ave: Path) -> None:
    entry = (ave / "trainSet.txt").read_text().splitlines()[0]
    line = append_line(ave / "trainSet.txt", entry)
    video = entry.split("&")[1]
    with pytest.raises(DataError, match=rf"AVE video {video} is in both trainSet\.txt:1 and trainSet\.txt:{line}: "
                                        r"the train split would hold it twice"):
        AVESource(ave)


def test_ave_video_in_train_and_test_is_rejected(ave: Path) -> None:
    entry = (ave / "trainSet.txt").read_text().splitlines()[1]
    line = append_line(ave / "testSet.txt", entry)
    video = entry.split("&")[1]
    with pytest.raises(DataError, match=rf"AVE video {video} is in both trainSet\.txt:2 and testSet\.txt:{line}: "
                                        r"the train split and the test split both hold it: test leakage"):
        AVESource(ave)
