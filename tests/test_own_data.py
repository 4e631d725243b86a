"""Your own data: the ``folder`` and ``csv`` sources on generated fixtures (nested folders, mixed formats and sample
rates, a grouping regex, segment crops), every validation problem they name, ``ticl datasets inspect``, the
normalisation statistics computed on the training split, a run end to end on each shape, and the official FSDD
and ESC-50 splits reproduced exactly through them."""
from __future__ import annotations

import csv
import json
import os
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from fixtures import (
    OWN_CSV_COLUMNS,
    OWN_DATA_SPEAKERS,
    make_csv_fixture,
    make_esc50_fixture,
    make_folder_fixture,
    make_fsdd_fixture,
    tone,
    write_wav,
)

from audio_ticl.benchmark.audio.cache import clip_identity, extract_features
from audio_ticl.benchmark.audio.features import FbankSettings, feature_stats
from audio_ticl.benchmark.cli import main
from audio_ticl.benchmark.config import load_config
from audio_ticl.benchmark.datasets import SOURCES, CsvSource, ESC50Source, FolderSource, FSDDSource
from audio_ticl.benchmark.datasets.csv_source import survey_csv
from audio_ticl.benchmark.datasets.esc50 import ESC50_DEFAULTS
from audio_ticl.benchmark.datasets.folder import survey_folder
from audio_ticl.benchmark.datasets.fsdd import FSDD_DEFAULTS
from audio_ticl.benchmark.datasets.inspect import inspect_data, parse_options
from audio_ticl.benchmark.datasets.own_data import natural_key
from audio_ticl.benchmark.errors import ConfigError, DataError, OptionError
from audio_ticl.benchmark.scenarios import build_tasks, make_source

CLASSES = ["bird", "cat", "dog"]
BY_SPEAKER = r"^(?P<group>[a-z]+)_"
#: the csv fixture's optional columns, named
CSV_COLUMNS = {"start_column": "start", "end_column": "end", "channel_column": "channel"}


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A read-only class-per-folder tree shared by the tests that do not damage it."""
    return make_folder_fixture(tmp_path_factory.mktemp("own") / "tree")


@pytest.fixture(scope="module")
def split_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_folder_fixture(tmp_path_factory.mktemp("own") / "split_tree", split_folders=True)


@pytest.fixture(scope="module")
def clip_list(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_csv_fixture(tmp_path_factory.mktemp("own") / "csv")


def problems(survey) -> str:
    return "\n".join(survey.problems)


def rewrite(csv_path: Path, edit) -> Path:
    """Apply ``edit(rows)`` (a list of dicts; it may return a new list) and write the csv back."""
    with csv_path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        columns, rows = list(reader.fieldnames or []), list(reader)
    edited = edit(rows)
    rows = rows if edited is None else edited
    with csv_path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return csv_path


# -- folder: layouts, splits, classes -----------------------------------------------------------------------------

def test_registry_and_options_errors(tree: Path) -> None:
    assert SOURCES["folder"] is FolderSource and SOURCES["csv"] is CsvSource
    with pytest.raises(ConfigError, match=r"does not fit source 'folder': unknown option\(s\) 'bogus'; its options: "
                                          r"split, fractions"):
        make_source("folder", str(tree), {"bogus": 1}, "data")
    with pytest.raises(ConfigError, match="option 'split' must be one of auto, folders, fractions"):
        FolderSource(tree, split="random")
    with pytest.raises(ConfigError, match="must sum to 1"):
        FolderSource(tree, fractions={"train": 0.5, "val": 0.1, "test": 0.1})
    with pytest.raises(ConfigError, match="'fractions.val' must be a share between 0 and 1"):
        FolderSource(tree, fractions={"train": 0.9, "val": 0, "test": 0.1})
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        FolderSource(tree, group_pattern="(")
    with pytest.raises(DataError, match="folder not found"):
        FolderSource(tree / "missing")


def test_nested_folders_of_mixed_formats_and_rates_make_one_class_each(tree: Path) -> None:
    survey = survey_folder(tree)
    assert survey.problems == []
    assert survey.classes == CLASSES and survey.how.startswith("a seeded stratified split")
    assert len(survey.entries) == 24  # 3 classes x 4 speakers x 2 takes
    assert {e.file.suffix for e in survey.entries} == {".wav", ".flac", ".ogg"}
    assert {info.sample_rate for info in survey.info.values()} == {8000, 16000, 22050, 44100}
    assert {info.channels for info in survey.info.values()} == {1, 2}
    assert any("session1" in e.where for e in survey.entries)  # nested sub-folders are part of their class
    assert sorted(p.name for p in survey.ignored) == ["notes.txt"] * 3  # not audio: skipped, counted
    # per class: 8 clips, 0.8 / 0.1 / 0.1 -> 6 / 1 / 1, exactly
    counts = Counter((e.label, e.split) for e in survey.entries)
    assert all(counts[label, "train"] == 6 and counts[label, "val"] == 1 and counts[label, "test"] == 1
               for label in CLASSES)
    # clips class by class, each class's files in path order
    assert [e.label for e in survey.entries] == sorted((e.label for e in survey.entries), key=CLASSES.index)
    # the features of every format decode
    clips = FolderSource(tree).clips()
    batch = extract_features(clips, FbankSettings(target_frames=40), None, progress=False)
    assert batch.features.shape == (24, 40, 128) and bool(torch.isfinite(batch.features).all())


def test_drawn_split_is_seeded_and_does_not_depend_on_the_class_selection(tree: Path) -> None:
    def splits(**options):
        return {e.where: e.split for e in survey_folder(tree, **options).entries}

    assert splits() == splits(split_seed=0)
    assert splits() != splits(split_seed=1)
    subset = splits(classes=["dog", "bird"])
    assert subset == {where: split for where, split in splits().items() if not where.startswith("cat/")}
    shares = splits(fractions={"train": 0.5, "val": 0.25, "test": 0.25})
    assert Counter(shares.values()) == {"train": 12, "val": 6, "test": 6}


def test_a_grouping_regex_keeps_each_group_in_one_split(tree: Path) -> None:
    survey = survey_folder(tree, group_pattern=BY_SPEAKER)
    assert survey.problems == []
    by_group: dict[str, set[str]] = {}
    for entry in survey.entries:
        by_group.setdefault(entry.group, set()).add(entry.split)
    assert set(by_group) == set(OWN_DATA_SPEAKERS)
    assert all(len(splits) == 1 for splits in by_group.values())
    # four speakers over three splits: every split gets one, and every class clips in each
    assert sorted(s for splits in by_group.values() for s in splits) == ["test", "train", "train", "val"]
    assert "each group in one split" in survey.how


def test_split_folders_give_the_splits_and_val_fraction_carves_val_out_of_train(split_tree: Path,
                                                                                tmp_path: Path) -> None:
    survey = survey_folder(split_tree)
    assert survey.problems == [] and survey.how == "split folders train/ val/ test/"
    assert all(e.split == OWN_DATA_SPEAKERS[e.file.name.split("_")[0]] for e in survey.entries)
    assert survey_folder(split_tree, split="fractions").classes == ["test", "train", "val"]  # as asked: classes
    no_val = shutil.copytree(split_tree, tmp_path / "no_val")
    shutil.rmtree(no_val / "val")
    assert "no val split" in problems(survey_folder(no_val))
    carved = survey_folder(no_val, val_fraction=0.25)
    assert carved.problems == [] and "val carved out of train (val_fraction 0.25" in carved.how
    counts = Counter((e.label, e.split) for e in carved.entries)
    assert all(counts[c, "train"] == 3 and counts[c, "val"] == 1 and counts[c, "test"] == 2 for c in CLASSES)
    with pytest.raises(ConfigError, match="'val_fraction' carves a val split out of train where there is none"):
        survey_folder(split_tree, val_fraction=0.2)


def test_classes_option_selects_and_orders_and_names_are_sorted_naturally(tree: Path, tmp_path: Path) -> None:
    source = FolderSource(tree, classes=["dog", "bird"])
    assert source.classes() == ["dog", "bird"] and {c.label for c in source.clips()} == {"dog", "bird"}
    with pytest.raises(DataError, match=r"unknown folder class\(es\) 'cow'; available: bird, cat, dog"):
        FolderSource(tree, classes=["cow"])
    assert sorted(["class10", "Class2", "class1", "b"], key=natural_key) == ["b", "class1", "Class2", "class10"]


def test_features_default_to_the_longest_clip_and_ast_esc50_mask_widths(tree: Path) -> None:
    survey = survey_folder(tree)
    # 0.3 s clips -> 28 frames of 10 ms; time mask 96 of 512 frames scaled: round(96 * 28 / 512) = 5
    defaults = FolderSource(tree).feature_defaults
    assert (defaults.mean, defaults.std, defaults.target_frames, defaults.freqm, defaults.timem) == (None, None, 28,
                                                                                                      24, 5)
    assert "the longest clip, 0.30 s" in survey.frames_from
    defaults = FolderSource(tree, target_frames=512, freqm=10, timem=0).feature_defaults
    assert (defaults.target_frames, defaults.freqm, defaults.timem) == (512, 10, 0)
    assert FolderSource(tree, target_frames=256).feature_defaults.timem == 48


# -- folder: every problem, named ---------------------------------------------------------------------------------

def test_folder_problems_are_all_listed_and_named(tmp_path: Path) -> None:
    root = make_folder_fixture(tmp_path / "tree", split_folders=True)
    shutil.copy(root / "train" / "bird" / "ann_0.wav", root / "test" / "bird" / "ann_0.wav")  # in two splits
    shutil.copy(root / "train" / "cat" / "ann_0.wav", root / "train" / "cat" / "ANN_0.WAV")  # case twin
    (root / "train" / "cow").mkdir()  # an empty class
    shutil.rmtree(root / "test" / "dog")  # dog: no test clips
    (root / "train" / "bird" / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")  # unreadable
    write_wav(root / "val" / "loose.wav", tone(0.3, 16000), 16000)  # outside any class folder
    (root / "extra").mkdir()
    survey = survey_folder(root)
    text = problems(survey)
    assert ("train/bird/ann_0.wav and test/bird/ann_0.wav: one file in two splits (train and test): test leakage"
            in text)
    assert "train/cat/ANN_0.WAV and train/cat/ann_0.wav: names that differ only in case" in text
    assert "class 'cow' (train/cow/) is empty: no clips in train, val or test" in text
    assert "class 'dog' (train/dog/, val/dog/) has no test clips" in text
    assert f"{root / 'train' / 'bird' / 'broken.wav'}: unreadable audio (" in text
    assert "1 audio file(s) in its split folder, outside any class folder: loose.wav" in text
    assert f"{root / 'extra'}: not a split folder" in text
    assert len(survey.problems) == 7
    with pytest.raises(DataError, match=r"7 problem\(s\) in the folder data:\n  - "):
        FolderSource(root)


def test_a_group_in_two_split_folders_and_unmatched_names_are_problems(split_tree: Path, tmp_path: Path) -> None:
    text = problems(survey_folder(split_tree, group_pattern=r"^(?P<group>[a-c])[a-z]+_"))
    # ann and bob (train) are group 'a' and 'b'; cid (val) is 'c'; dan matches nothing
    assert "test/bird/dan_0.ogg: the file name does not match group_pattern" in text
    root = shutil.copytree(split_tree, tmp_path / "t")
    shutil.move(root / "test" / "cat" / "dan_0.ogg", root / "train" / "cat" / "dan_0.ogg")
    text = problems(survey_folder(root, group_pattern=BY_SPEAKER))
    assert "group 'dan' is in 2 splits (e.g. train: train/cat/dan_0.ogg; test: test/bird/dan_0.ogg" in text


def test_an_empty_tree_and_a_missing_split_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert "no class folders found" in problems(survey_folder(tmp_path / "empty"))
    (tmp_path / "empty" / "train").mkdir()
    with pytest.raises(DataError, match="split 'folders' needs train/ and test/ folders"):
        survey_folder(tmp_path / "empty", split="folders")


# -- csv: columns, splits, segments -------------------------------------------------------------------------------

def test_csv_segments_and_channels_are_cropped_and_cached_apart(clip_list: Path) -> None:
    survey = survey_csv(clip_list, **CSV_COLUMNS)
    assert survey.problems == [] and survey.how == "csv column 'split'"
    assert survey.classes == CLASSES and len(survey.entries) == 36
    assert Counter(e.split for e in survey.entries) == {"train": 18, "val": 9, "test": 9}
    assert "not read: speaker" in survey.notes[0]
    clips = CsvSource(clip_list, **CSV_COLUMNS).clips()
    first, second, whole = clips[:3]
    assert first.path is None and second.path is None and whole.path is not None  # segments render, files decode
    samples, rate = first.render()
    assert rate == 22050 and samples.shape == (int(round(0.5 * 22050)),)
    full, _ = sf.read(str(survey.entries[0].file), dtype="float32", always_2d=True)
    np.testing.assert_array_equal(samples, full[: samples.shape[0], 0])
    rest, _ = second.render()
    np.testing.assert_array_equal(rest, full[int(round(0.5 * 22050)):, 1])
    assert len({clip_identity(c) for c in clips}) == len(clips)  # the crop and channel are part of the cache key
    assert "start=0.0:end=0.5:channel=0" in first.key
    # the longest clip is a segment: 0.5 s to the end of the 1.2 s recording, 0.7 s -> 68 frames
    assert survey.target_frames == 68
    batch = extract_features(clips, FbankSettings(target_frames=68), None, progress=False)
    assert bool(torch.isfinite(batch.features).all())


def test_a_segment_of_a_cut_off_file_is_refused_naming_it(tmp_path: Path) -> None:
    from audio_ticl.benchmark.datasets.own_data import Segment

    path = write_wav(tmp_path / "long.wav", tone(1.0, 16000, channels=2), 16000)
    assert Segment(path, 0.2, 0.4, 1)()[0].shape == (3200,)
    path.write_bytes(path.read_bytes()[: 44 + 4 * 8000])  # half of the frames its header declares
    with pytest.raises(DataError, match=rf"{path}: truncated: its header declares 16000 frames"):
        Segment(path, 0.1, 0.2, None)()


def test_csv_folds_id_column_tsv_bom_and_audio_dir(tmp_path: Path) -> None:
    esc = make_esc50_fixture(tmp_path / "esc")
    meta = esc / "meta" / "esc50.csv"
    options = {"path_column": "filename", "label_column": "category", "fold_column": "fold", "train_folds": [1, 2, 3],
               "val_folds": [4], "test_folds": [5], "id_column": "target", "audio_dir": "../audio"}
    survey = survey_csv(meta, **options)
    assert survey.problems == [] and survey.classes == ["dog", "rain", "chainsaw"]  # target order, not names'
    assert Counter(e.split for e in survey.entries) == {"train": 9, "val": 3, "test": 3}
    assert "class 'dog' (first listed on line 2) has no test clips" in problems(
        survey_csv(meta, **{**options, "test_folds": []}))  # folds left out are unused
    rain_in_fold_3 = shutil.copy(meta, tmp_path / "esc" / "meta" / "rain.csv")
    rewrite(rain_in_fold_3, lambda rows: [{**r, "fold": "3"} if r["category"] == "rain" else r for r in rows])
    text = problems(survey_csv(rain_in_fold_3, **{**options, "train_folds": [1, 2]}))
    assert "class 'rain' (first listed on line 3) is empty: no clips in train, val or test" in text
    tsv = tmp_path / "esc.tsv"
    tsv.write_bytes(b"\xef\xbb\xbf" + meta.read_text().replace(",", "\t").encode())
    survey = survey_csv(tsv, **{**options, "audio_dir": "esc/audio"})
    assert survey.problems == [] and len(survey.entries) == 15
    with pytest.raises(ConfigError, match="'fold_column' needs 'train_folds' and 'test_folds'"):
        survey_csv(meta, fold_column="fold")
    with pytest.raises(ConfigError, match="fold 4 is in both train_folds and val_folds"):
        survey_csv(meta, **{**options, "train_folds": [1, 4]})
    with pytest.raises(DataError, match=r"no column 'label' \(option 'label_column'\); its columns: filename, fold"):
        survey_csv(meta, path_column="filename")


def test_csv_without_a_split_column_draws_one_keeping_segments_of_a_file_together(clip_list: Path,
                                                                                tmp_path: Path) -> None:
    drawn = tmp_path / "drawn.csv"
    with clip_list.open() as src, drawn.open("w") as dst:
        reader = csv.DictReader(src)
        writer = csv.DictWriter(dst, fieldnames=[c for c in OWN_CSV_COLUMNS if c != "split"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(reader)
    (tmp_path / "audio").symlink_to(clip_list.parent / "audio")
    survey = survey_csv(drawn, **CSV_COLUMNS)
    assert survey.problems == [] and survey.how.startswith("a seeded stratified split")
    by_file: dict[Path, set[str]] = {}
    for entry in survey.entries:
        by_file.setdefault(entry.file, set()).add(entry.split)
    assert all(len(splits) == 1 for splits in by_file.values())  # a recording's segments share a split
    grouped = survey_csv(drawn, **CSV_COLUMNS, group_column="speaker")
    by_speaker: dict[str, set[str]] = {}
    for entry in grouped.entries:
        by_speaker.setdefault(entry.group, set()).add(entry.split)
    assert grouped.problems == [] and all(len(splits) == 1 for splits in by_speaker.values())


# -- csv: every problem, named ------------------------------------------------------------------------------------

def _bad_rows(rows: list[dict]) -> list[dict]:
    """Rows 0-11 are bird's (lines 2-13), 12-23 cat's (lines 14-25): per speaker two segments and a short file."""
    rows[0]["path"] = "audio/bird/nobody.wav"  # line 2: missing file
    rows.append(dict(rows[3]))  # line 38: duplicate row (same split)
    rows.append({**rows[6], "split": "test"})  # line 39: the same clip in val and test
    rows[9]["split"] = "holdout"  # line 11: unknown split
    rows[12]["end"] = "0"  # line 14: end before start
    rows[13]["start"] = "9"  # line 15: starts past the end of the 1.2 s file
    rows[15]["channel"] = "3"  # line 17: a stereo file has no channel 3
    rows[16]["channel"] = "left"  # line 18: not an integer
    rows[18]["label"] = ""  # line 20: empty label
    rows.append({**rows[20], "start": "0.1", "end": "0.2", "split": "train"})  # line 40: a val file's segment
    return rows


def test_csv_problems_are_all_listed_and_named(tmp_path: Path) -> None:
    path = rewrite(make_csv_fixture(tmp_path / "csv"), _bad_rows)
    audio = tmp_path / "csv" / "audio"
    (audio / "dog" / "ann_short.flac").write_bytes(b"fLaC broken")  # unreadable
    survey = survey_csv(path, **CSV_COLUMNS)
    text = problems(survey)
    expected = [
        f"clips.csv, line 2: {audio / 'bird' / 'nobody.wav'} not found",
        "clips.csv, line 38: lists the same clip as clips.csv, line 5 (bob.wav [0-0.5 s, channel 0]); it would "
        "count twice",
        "clips.csv, line 39: lists the same clip as clips.csv, line 8 (cid.wav [0-0.5 s, channel 0]); val and test "
        "both hold it: test leakage",
        "clips.csv, line 11: split 'holdout' is not train, val or test",
        "clips.csv, line 14: end 0 s is not after start 0 s",
        "clips.csv, line 15: ann.wav: the segment starts at 9 s, but the file lasts 1.200 s",
        "clips.csv, line 17: bob.wav: channel 3 (0-based) asked for, but the file has 2 channel(s)",
        "clips.csv, line 18: channel 'left' is not an integer",
        "clips.csv, line 20: empty label",
        f"{audio / 'cat' / 'cid_short.flac'}: one file in two splits (val: clips.csv, line 22; train: clips.csv, "
        "line 40): test leakage",
        f"{audio / 'dog' / 'ann_short.flac'}: unreadable audio (",
    ]
    for message in expected:
        assert message in text, message
    assert len(survey.problems) == len(expected)
    with pytest.raises(DataError, match=rf"{len(expected)} problem\(s\) in the csv data"):
        CsvSource(path, **CSV_COLUMNS)


def test_csv_group_in_two_splits_class_ids_that_disagree_and_an_empty_split(tmp_path: Path) -> None:
    path = make_csv_fixture(tmp_path / "csv")
    rewrite(path, lambda rows: [{**r, "speaker": "ann"} if r["speaker"] == "dan" and r["label"] == "cat" else r
                                for r in rows])
    assert ("group 'ann' is in 2 splits (e.g. train: clips.csv, line 2; test: clips.csv, line 23)"
            in problems(survey_csv(path, **CSV_COLUMNS, group_column="speaker")))
    with_ids = tmp_path / "csv" / "ids.csv"
    with path.open() as src, with_ids.open("w") as dst:
        lines = src.read().splitlines()
        ids = {"bird": 3, "cat": 1, "dog": 2}
        dst.write(lines[0] + ",id\n")
        for n, line in enumerate(lines[1:]):
            label = line.split(",")[1]
            dst.write(f"{line},{ids[label] if n != 20 else 3}\n")
    text = problems(survey_csv(with_ids, **CSV_COLUMNS, id_column="id"))
    assert text == "ids.csv, line 22: label 'cat' has id 3, but 1 on ids.csv, line 14"
    rewrite(path, lambda rows: [r for r in rows if not (r["label"] == "dog" and r["split"] == "val")])
    assert "class 'dog' (first listed on line 26) has no val clips" in problems(survey_csv(path, **CSV_COLUMNS))


def test_csv_root_may_be_its_folder(tmp_path: Path) -> None:
    path = make_csv_fixture(tmp_path / "csv")
    assert survey_csv(tmp_path / "csv", **CSV_COLUMNS).root == path
    shutil.copy(path, tmp_path / "csv" / "other.tsv")
    with pytest.raises(DataError, match="expected one csv / tsv file in it, found clips.csv, other.tsv"):
        survey_csv(tmp_path / "csv")
    assert survey_csv(tmp_path / "csv", csv="clips.csv", **CSV_COLUMNS).problems == []


# -- ticl datasets inspect ----------------------------------------------------------------------------------------

def test_inspect_prints_classes_counts_lengths_rates_and_exits_0(tree: Path, capsys) -> None:
    argv = ["datasets", "inspect", "--source", "folder", "--root", str(tree), "-o", f"group_pattern={BY_SPEAKER}"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "classes (3, natural sort of the class folder names): bird, cat, dog" in out
    assert "bird        4       2       2" in out  # by speaker: ann and bob train, one val, one test
    assert "sample rates: " in out and "8000 Hz: 6 files" in out and "44100 Hz: 6 files" in out
    assert "train clip lengths: min 0.30 s" in out and "skipped: 3 files that are not audio" in out
    assert "target_frames 28 (the longest clip, 0.30 s)" in out and "problems: none" in out


def test_inspect_lists_every_problem_and_exits_2(tmp_path: Path, capsys) -> None:
    path = rewrite(make_csv_fixture(tmp_path / "csv"), _bad_rows)
    argv = ["datasets", "inspect", "--source", "csv", "--root", str(path)]
    for key, value in CSV_COLUMNS.items():
        argv += ["--option", f"{key}={value}"]
    assert main(argv) == 2
    out = capsys.readouterr().out
    assert "problems (10): a run refuses this data until they are fixed" in out  # all but the unreadable file
    assert out.count("\n  - ") == 10
    assert main(["datasets", "inspect", "--source", "csv", "--root", str(path), "-o", "colour=1"]) == 2
    assert "unknown option(s) 'colour'" in capsys.readouterr().err
    with pytest.raises(OptionError, match="--option expects KEY=VALUE"):
        parse_options(["novalue"])
    assert parse_options(["train_folds=[1, 2]", "group_pattern=^(x)"]) == {"train_folds": [1, 2],
                                                                         "group_pattern": "^(x)"}
    with pytest.raises(ConfigError, match="own-data sources folder, csv"):
        inspect_data("esc50", tmp_path)


# -- normalisation statistics -------------------------------------------------------------------------------------

def _config(root: Path, source: str, *overrides: str, options: str = "{}"):
    return load_config("smoke", overrides=[
        f"data.source={source}", f"data.root={root}", f"data.options={options}", "scenario.n_tasks=1",
        "scenario.classes_per_task=3", "scenario.class_order=canonical", "features.target_frames=40", *overrides,
    ])


def test_statistics_are_computed_on_the_training_split_cached_and_reported(tree: Path, tmp_path: Path) -> None:
    cfg = _config(tree, "folder", f"features.cache_dir={tmp_path / 'cache'}")
    tasks, report = build_tasks(cfg, progress=False)
    (task,) = tasks
    train = [c for c in FolderSource(tree).clips() if c.split == "train"]
    expected = feature_stats(extract_features(train, FbankSettings(target_frames=40), None, progress=False).features)
    assert (task.mean, task.std) == pytest.approx(expected)
    (record,) = report.normalisation
    assert record["from"] == "computed on the training split (no published constants)"
    assert record["train_clips"] == 18 and record["cached"] is False
    stats = list((tmp_path / "cache" / "stats").glob("*.json"))
    assert len(stats) == 1 and json.loads(stats[0].read_text())["clips"] == 18
    again, report = build_tasks(cfg, progress=False)
    assert report.normalisation[0]["cached"] is True and (again[0].mean, again[0].std) == (task.mean, task.std)
    # val alone (as a hyperparameter search never builds test, a check may build only val): still train statistics
    only_val, report = build_tasks(cfg, progress=False, splits=("val",))
    assert (only_val[0].mean, only_val[0].std) == (task.mean, task.std) and report.normalisation[0]["cached"]
    # a changed training file computes them afresh
    first = train[0].path
    os.utime(first, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns + 10**9))
    assert build_tasks(cfg, progress=False)[1].normalisation[0]["cached"] is False
    fixed, report = build_tasks(_config(tree, "folder", "features.mean=-3.0", "features.std=2.0",
                                        f"features.cache_dir={tmp_path / 'cache'}"), progress=False)
    assert (fixed[0].mean, fixed[0].std) == (-3.0, 2.0)
    assert report.normalisation == [{"source": "folder", "from": "features.mean / features.std (config)",
                                     "mean": -3.0, "std": 2.0}]


# -- end to end ----------------------------------------------------------------------------------------------------

def _run(tmp_path: Path, root: Path, source: str, options: str) -> dict:
    out = tmp_path / "run"
    argv = ["run", "--preset", "smoke", "--out", str(out), "--no-progress", "--data-root", str(root)]
    for item in (f"data.source={source}", f"data.options={options}", "scenario.n_tasks=1",
                 "scenario.classes_per_task=2", "features.target_frames=40", "model.init=random",
                 "methods=[{name: finetune, strategy: finetune, mixer: gsa}]"):
        argv += ["--set", item]
    assert main(argv) == 0
    return json.loads((out / "finetune" / "summary.json").read_text())


@pytest.mark.usefixtures("one_thread")
def test_a_run_end_to_end_on_a_class_folder_tree(tree: Path, tmp_path: Path) -> None:
    summary = _run(tmp_path, tree, "folder", f"{{group_pattern: '{BY_SPEAKER}'}}")
    (task,) = summary["tasks"]
    assert task["source"] == "folder" and len(task["classes"]) == 2
    # by speaker: two of the four go to train, one to val, one to test; 2 classes x 2 takes each
    assert (task["n_train"], task["n_val"], task["n_test"]) == (8, 4, 4)
    (record,) = summary["data"]["normalisation"]
    assert record["from"].startswith("computed on the training split")
    assert len(summary["accuracy_matrix"]) == 1


@pytest.mark.usefixtures("one_thread")
def test_a_run_end_to_end_on_a_csv_with_segments(clip_list: Path, tmp_path: Path) -> None:
    options = "{start_column: start, end_column: end, channel_column: channel, group_column: speaker}"
    summary = _run(tmp_path, clip_list, "csv", options)
    (task,) = summary["tasks"]
    assert task["source"] == "csv" and (task["n_train"], task["n_val"], task["n_test"]) == (12, 6, 6)
    assert summary["data"]["normalisation"][0]["train_clips"] == 12


# -- the official splits, reproduced ------------------------------------------------------------------------------

def _same_tasks(official, own) -> None:
    assert len(official) == len(own)
    for a, b in zip(official, own):
        assert (a.name, a.classes, a.mean, a.std, a.freqm, a.timem) == (b.name, b.classes, b.mean, b.std, b.freqm,
                                                                         b.timem)
        for split in a.splits:
            assert torch.equal(a.splits[split].features, b.splits[split].features), (a.name, split)
            assert torch.equal(a.splits[split].labels, b.splits[split].labels), (a.name, split)


def test_fsdd_as_a_class_folder_tree_gives_the_official_tasks(tmp_path: Path) -> None:
    fsdd = make_fsdd_fixture(tmp_path / "fsdd", digits=(0, 1, 2, 3))
    tree = tmp_path / "tree"
    for path in sorted((fsdd / "recordings").iterdir()):
        digit, _, take = path.stem.split("_")
        split = "test" if int(take) < 5 else "val" if int(take) < 10 else "train"
        (tree / split / digit).mkdir(parents=True, exist_ok=True)
        (tree / split / digit / path.name).symlink_to(path)
    common = ["scenario.classes_per_task=2", "scenario.n_tasks=2", "scenario.class_order=seeded"]
    official = load_config("fsdd-cpu", overrides=[f"data.root={fsdd}", *common])
    own = load_config("fsdd-cpu", overrides=[
        f"data.root={tree}", "data.source=folder", "data.options={split: folders}", *common,
        f"features.mean={FSDD_DEFAULTS.mean}", f"features.std={FSDD_DEFAULTS.std}",
        f"features.freqm={FSDD_DEFAULTS.freqm}", f"features.timem={FSDD_DEFAULTS.timem}"])
    assert FolderSource(tree).classes() == FSDDSource(fsdd).classes()
    _same_tasks(build_tasks(official, progress=False)[0], build_tasks(own, progress=False)[0])


def test_esc50_as_a_csv_gives_the_official_tasks(tmp_path: Path) -> None:
    esc = make_esc50_fixture(tmp_path / "esc", classes=((0, "dog"), (1, "rooster"), (10, "rain"), (41, "chainsaw")))
    listing = tmp_path / "esc.csv"
    with (esc / "meta" / "esc50.csv").open(newline="") as src, listing.open("w", newline="") as dst:
        writer = csv.writer(dst)
        writer.writerow(["path", "label", "fold", "target"])
        for row in csv.DictReader(src):
            writer.writerow([esc / "audio" / row["filename"], row["category"], row["fold"], row["target"]])
    options = "{fold_column: fold, train_folds: [1, 2, 3], val_folds: [4], test_folds: [5], id_column: target}"
    common = ["scenario.n_tasks=2", "features.target_frames=64"]
    official = load_config("esc50-cpu", overrides=[f"data.root={esc}", *common])
    own = load_config("esc50-cpu", overrides=[
        f"data.root={listing}", "data.source=csv", f"data.options={options}", *common,
        f"features.mean={ESC50_DEFAULTS.mean}", f"features.std={ESC50_DEFAULTS.std}",
        f"features.freqm={ESC50_DEFAULTS.freqm}", f"features.timem={ESC50_DEFAULTS.timem}"])
    assert CsvSource(listing, fold_column="fold", train_folds=[1, 2, 3], val_folds=[4], test_folds=[5],
                     id_column="target").classes() == ESC50Source(esc).classes()
    _same_tasks(build_tasks(official, progress=False)[0], build_tasks(own, progress=False)[0])
