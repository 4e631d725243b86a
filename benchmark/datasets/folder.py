"""Source ``folder``: any labelled sound collection laid out one folder per class.

Two layouts::

    root/<class>/**/<file>              splits drawn: seeded, stratified by class (``fractions``, ``split_seed``),
                                        each group of ``group_pattern`` kept in one split
    root/<split>/<class>/**/<file>      splits given: <split> is train, val and test (also training, validation,
                                        valid, dev, testing; any case); without a val folder, ``val_fraction``
                                        carves one out of train

``split: auto`` (the default) takes the second layout when the root holds a train and a test folder. Class folders
may nest sub-folders freely; a file is audio when its extension is one soundfile reads (``extensions`` narrows
that), other files are skipped and counted. Folders and files whose names start with ``.`` or ``_`` are skipped.
Class names are the folder names as they are, in a natural, case-insensitive order unless ``classes`` lists them
(a subset, in the order that makes the tasks). Checks (every problem listed, see :mod:`.own_data`): one file in two
split folders (same path under its class folder), two names differing only in case, audio outside a class folder,
file names ``group_pattern`` does not match, and everything :func:`.own_data.finish_survey` checks.
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from audio_ticl.benchmark.datasets.base import SPLITS
from audio_ticl.benchmark.datasets.own_data import (
    Entry,
    Survey,
    SurveyedSource,
    audio_suffixes,
    compile_group_pattern,
    finish_survey,
    group_of,
    natural_key,
    split_name,
)
from audio_ticl.benchmark.errors import ConfigError, DataError

__all__ = ["FolderSource", "survey_folder", "SPLIT_MODES"]

#: how ``split`` may be given
SPLIT_MODES = ("auto", "folders", "fractions")


def _visible(path: Path) -> bool:
    return not path.name.startswith((".", "_"))


def survey_folder(
    root: Path,
    split: str = "auto",
    fractions: Mapping[str, float] | None = None,
    split_seed: int = 0,
    val_fraction: float | None = None,
    group_pattern: str | None = None,
    extensions: Sequence[str] | None = None,
    classes: Sequence[str] | None = None,
    target_frames: int | None = None,
    freqm: int | None = None,
    timem: int | None = None,
) -> Survey:
    """Read and check a class-per-folder tree (module docstring); data problems are listed, not raised."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: folder not found (expected <class>/<audio files> or <split>/<class>/<audio files>)")
    if split not in SPLIT_MODES:
        raise ConfigError(f"option 'split' must be one of {', '.join(SPLIT_MODES)}, got {split!r}")
    suffixes = audio_suffixes(extensions)
    pattern = compile_group_pattern(group_pattern)
    base = root.resolve()
    subfolders = sorted((p for p in base.iterdir() if p.is_dir() and _visible(p)), key=lambda p: natural_key(p.name))
    split_folders = {p: split_name(p.name) for p in subfolders if split_name(p.name)}
    given = set(split_folders.values())
    if split == "auto":
        split = "folders" if {"train", "test"} <= given else "fractions"
    if split == "folders" and not {"train", "test"} <= given:
        raise DataError(f"{root}: split 'folders' needs train/ and test/ folders (val/ optional); found "
                        f"{', '.join(p.name for p in subfolders) or 'no folders'}")
    problems: list[str] = []
    scan = _Scan(base, suffixes, pattern, problems)
    if split == "folders":
        ordered = sorted(split_folders, key=lambda p: (SPLITS.index(split_folders[p]), p.name))
        how = "split folders " + " ".join(f"{p.name}/" for p in ordered)
        used: dict[str, Path] = {}
        for folder in sorted(subfolders, key=lambda p: SPLITS.index(split_folders[p]) if p in split_folders else 3):
            name = split_folders.get(folder)
            if name is None:
                problems.append(f"{folder}: not a split folder (expected only train/, val/ and test/ in {root})")
                continue
            if name in used:
                problems.append(f"{used[name]} and {folder}: two folders for the {name} split")
                continue
            used[name] = folder
            scan.loose_audio(folder, "its split folder")
            for class_dir in _class_dirs(folder):
                scan.class_folder(class_dir, name)
    else:
        how = "a seeded stratified split"
        scan.loose_audio(base, "the root")
        for class_dir in subfolders:
            scan.class_folder(class_dir, None)
    _reject_twice(scan.entries, base, 1 if split == "folders" else 0, problems)
    available = sorted(scan.class_where, key=natural_key)
    if not available:
        problems.append(f"{root}: no class folders found (expected <class>/<audio files>"
                        f"{' in each split folder' if split == 'folders' else ''})")
    # clips class by class (in the class order), each class's files in path order, whatever folder they came from
    rank = {label: i for i, label in enumerate(available)}
    scan.entries.sort(key=lambda e: (rank[e.label], e.file.relative_to(scan.class_root[e.label, e.split]).parts))
    return finish_survey(
        name="folder", root=root, entries=scan.entries, problems=problems, how=how, available=available,
        order="natural sort of the class folder names", class_where=scan.class_where, classes=classes,
        fractions=fractions, split_seed=split_seed, val_fraction=val_fraction, target_frames=target_frames,
        freqm=freqm, timem=timem, ignored=scan.ignored,
    )


def _class_dirs(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if p.is_dir() and _visible(p)), key=lambda p: natural_key(p.name))


class _Scan:
    """Collects the entries of class folders, the skipped files and the problems."""

    def __init__(self, base: Path, suffixes: frozenset[str], pattern, problems: list[str]) -> None:
        self.base, self.suffixes, self.pattern, self.problems = base, suffixes, pattern, problems
        self.entries: list[Entry] = []
        self.ignored: list[Path] = []
        #: class -> the folder(s) it comes from, for messages
        self.class_where: dict[str, str] = {}
        #: (class, split) -> the class folder, to order files by their path inside it
        self.class_root: dict[tuple[str, str | None], Path] = {}

    def loose_audio(self, folder: Path, what: str) -> None:
        """Audio files directly in ``folder`` have no class: each is a problem."""
        loose = sorted(p.name for p in folder.iterdir()
                       if p.is_file() and p.suffix.lower() in self.suffixes and _visible(p))
        if loose:
            shown = ", ".join(loose[:3]) + (f" and {len(loose) - 3} more" if len(loose) > 3 else "")
            self.problems.append(f"{folder}: {len(loose)} audio file(s) in {what}, outside any class folder: "
                                 f"{shown} (expected <class>/<file>)")

    def class_folder(self, folder: Path, split: str | None) -> None:
        label = folder.name
        shown = folder.relative_to(self.base).as_posix() + "/"
        known = self.class_where.get(label)
        self.class_where[label] = shown if known is None else f"{known}, {shown}"
        self.class_root[label, split] = folder
        for path in _walk(folder):
            if path.suffix.lower() not in self.suffixes:
                self.ignored.append(path)
                continue
            where = path.relative_to(self.base).as_posix()
            group = None
            if self.pattern is not None:
                group = group_of(self.pattern, path.name)
                if group is None:
                    self.problems.append(f"{where}: the file name does not match group_pattern "
                                         f"{self.pattern.pattern!r}")
            self.entries.append(Entry(file=path, label=label, where=where, split=split, group=group))


def _walk(folder: Path) -> list[Path]:
    """Every visible file under ``folder`` (following folder links once), sorted by path."""
    found: list[Path] = []
    seen: set[str] = set()
    for current, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(current)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs[:] = [d for d in dirs if not d.startswith((".", "_"))]
        found += [Path(current) / f for f in files if not f.startswith((".", "_"))]
    return sorted(found, key=lambda p: p.parts)


def _reject_twice(entries: list[Entry], base: Path, skip: int, problems: list[str]) -> None:
    """One file under two split folders (the same path below its split folder, in any case, or one file reached
    twice through links) is test leakage; two names of one folder differing only in case are one file twice.
    ``skip`` is how many leading folders of a file's path below ``base`` are split folders (0 or 1)."""
    by_name: dict[str, Entry] = {}
    by_file: dict[str, Entry] = {}
    for entry in entries:
        name_key = "/".join(entry.file.relative_to(base).parts[skip:]).casefold()
        real = os.path.realpath(entry.file)
        for index, key in ((by_name, name_key), (by_file, real)):
            first = index.setdefault(key, entry)
            if first is entry:
                continue
            if first.split != entry.split:
                problems.append(f"{first.where} and {entry.where}: one file in two splits ({first.split} and "
                                f"{entry.split}): test leakage")
            elif index is by_name:
                problems.append(f"{first.where} and {entry.where}: names that differ only in case (one recording "
                                "twice?); remove one")
            else:
                problems.append(f"{first.where} and {entry.where}: one file reached twice (a link?); remove one")
            break


class FolderSource(SurveyedSource):
    """A class-per-folder collection (module docstring). Options: ``split`` (auto / folders / fractions),
    ``fractions`` ({train, val, test} shares, default 0.8 / 0.1 / 0.1), ``split_seed`` (0), ``val_fraction``,
    ``group_pattern``, ``extensions``, ``classes``, ``target_frames``, ``freqm``, ``timem``."""

    name = "folder"

    survey_of = staticmethod(survey_folder)
