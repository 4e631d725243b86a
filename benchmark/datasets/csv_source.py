"""Source ``csv``: any labelled sound collection listed in a csv (or tsv) file, one row per clip.

``root`` is the csv file, or a folder holding it (``csv`` names it there; by default the folder's only ``.csv`` /
``.tsv``). Audio paths in the csv are relative to the csv's folder (or to ``audio_dir``, itself relative to the
csv's folder); absolute paths are taken as they are. The columns are named by options:

- ``path_column`` (default ``path``) and ``label_column`` (``label``): required;
- the split, one of: ``split_column`` (default ``split`` when the csv has that column; values train / val / test,
  also training, validation, valid, dev, testing, any case), ``fold_column`` with ``train_folds`` / ``val_folds`` /
  ``test_folds`` (integer folds, as ESC-50's and UrbanSound8K's csvs; rows of other folds are unused), or neither:
  a seeded split stratified by class (``fractions``, ``split_seed``);
- optional: ``group_column`` (e.g. a speaker or recording id; a group never spans two splits; ``group_pattern``
  instead parses it from the file name), ``start_column`` / ``end_column`` (seconds: the clip is that segment of
  the file, as UrbanSound8K's slices are cut from recordings; an empty cell means the file's start / end),
  ``channel_column`` (0-based channel index; empty: all channels averaged), ``id_column`` (an integer id per class
  that fixes the class order, as ESC-50's ``target``).

The delimiter is a tab for ``.tsv`` / ``.tab`` files and a comma otherwise (``delimiter`` overrides it); Excel's
byte-order mark is dropped. Checks (every problem listed, see :mod:`.own_data`): empty cells, malformed folds,
times and channels, unknown split names, missing files, a row listed twice (the same file and segment), one file
in two splits, classes whose ids disagree, and everything :func:`.own_data.finish_survey` checks.
"""
from __future__ import annotations

import csv as csv_module
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from audio_ticl.benchmark.datasets.base import (
    METADATA_ENCODING,
    SPLITS,
    file_key,
    listed_file,
)
from audio_ticl.benchmark.datasets.own_data import (
    Entry,
    Survey,
    SurveyedSource,
    compile_group_pattern,
    finish_survey,
    group_of,
    natural_key,
    split_name,
)
from audio_ticl.benchmark.errors import ConfigError, DataError

__all__ = ["CsvSource", "survey_csv"]

TAB_SUFFIXES = (".tsv", ".tab")


def survey_csv(
    root: Path,
    csv: str | None = None,
    delimiter: str | None = None,
    audio_dir: str | None = None,
    path_column: str = "path",
    label_column: str = "label",
    split_column: str | None = None,
    fold_column: str | None = None,
    train_folds: Sequence[int] | None = None,
    val_folds: Sequence[int] | None = None,
    test_folds: Sequence[int] | None = None,
    id_column: str | None = None,
    group_column: str | None = None,
    group_pattern: str | None = None,
    start_column: str | None = None,
    end_column: str | None = None,
    channel_column: str | None = None,
    fractions: Mapping[str, float] | None = None,
    split_seed: int = 0,
    val_fraction: float | None = None,
    classes: Sequence[str] | None = None,
    target_frames: int | None = None,
    freqm: int | None = None,
    timem: int | None = None,
) -> Survey:
    """Read and check a clip list (module docstring); data problems are listed, not raised."""
    csv_path = _find_csv(Path(root).expanduser(), csv)
    delimiter = _delimiter(csv_path, delimiter)
    base = csv_path.parent.resolve()
    if audio_dir is not None:
        if not isinstance(audio_dir, str) or not audio_dir:
            raise ConfigError(f"option 'audio_dir' must be a folder (relative to the csv's folder), got {audio_dir!r}")
        base = (base / Path(audio_dir).expanduser()).resolve()
        if not base.is_dir():
            raise DataError(f"{base}: audio_dir not found (option 'audio_dir' {audio_dir!r}, taken in "
                            f"{csv_path.parent})")
    if group_column is not None and group_pattern is not None:
        raise ConfigError("options 'group_column' and 'group_pattern' both give groups: set one of them")
    pattern = compile_group_pattern(group_pattern)
    header, rows = _read(csv_path, delimiter)
    columns = {"path_column": path_column, "label_column": label_column, "fold_column": fold_column,
               "id_column": id_column, "group_column": group_column, "start_column": start_column,
               "end_column": end_column, "channel_column": channel_column}
    folds = _split_of_fold(fold_column, train_folds, val_folds, test_folds)
    if fold_column is not None and split_column is not None:
        raise ConfigError("options 'split_column' and 'fold_column' both give the split: set one of them")
    if fold_column is None and split_column is None and "split" in header:
        split_column = "split"
    columns["split_column"] = split_column
    for option, column in columns.items():
        if column is not None and (not isinstance(column, str) or column not in header):
            raise DataError(f"{csv_path}: no column {column!r} (option '{option}'); its columns: "
                            f"{', '.join(header) or 'none'}")
    if fold_column is not None:
        how = (f"csv column {fold_column!r} (train folds {_listing(train_folds)}; val {_listing(val_folds or [])}; "
               f"test {_listing(test_folds)}; other folds unused)")
    elif split_column is not None:
        how = f"csv column {split_column!r}"
    else:
        how = "a seeded stratified split"

    if not rows:
        raise DataError(f"{csv_path}: no clips listed")
    problems: list[str] = []
    entries: list[Entry] = []
    listed: dict[tuple, tuple[str, str]] = {}
    ids: dict[str, tuple[int, str]] = {}
    labels: dict[int, tuple[str, str]] = {}
    first_line: dict[str, str] = {}
    name = csv_path.name
    for line, row in rows:
        at = f"{name}, line {line}"
        cell = {key: (row.get(column) or "").strip() if column else "" for key, column in columns.items()}
        path_text, label = cell["path_column"], cell["label_column"]
        if not path_text or not label:
            problems.append(f"{at}: empty {path_column if not path_text else label_column}")
            continue
        file = listed_file(base / Path(path_text.replace("\\", "/")))
        split: str | None = None
        if fold_column is not None:
            fold = _integer(cell["fold_column"], fold_column, at, problems)
            if fold is None:
                continue
            split = folds.get(fold, f"unused (fold {fold})")
        elif split_column is not None:
            split = split_name(cell["split_column"])
            if split is None:
                problems.append(f"{at}: {split_column} {cell['split_column']!r} is not train, val or test")
                continue
        start = _seconds(cell["start_column"], start_column, at, problems)
        end = _seconds(cell["end_column"], end_column, at, problems)
        channel = None
        if cell["channel_column"]:
            channel = _integer(cell["channel_column"], channel_column, at, problems)
            if channel is None:
                continue
        if start is False or end is False:
            continue
        if start is not None and end is not None and end <= start:
            problems.append(f"{at}: {end_column} {end:g} s is not after {start_column} {start:g} s")
            continue
        group = cell["group_column"] or None
        if pattern is not None:
            group = group_of(pattern, file.name)
            if group is None:
                problems.append(f"{at}: the file name {file.name!r} does not match group_pattern {pattern.pattern!r}")
                continue
        if id_column is not None:
            class_id = _integer(cell["id_column"], id_column, at, problems)
            if class_id is None:
                continue
            _check_id(label, class_id, at, ids, labels, id_column, label_column, problems)
        first_line.setdefault(label, f"first listed on line {line}")
        key = (file_key(file.as_posix()), start, end, channel)
        if key in listed:
            first_at, first_split = listed[key]
            why = (f"{first_split} and {split} both hold it: test leakage" if first_split != split
                   else "it would count twice")
            problems.append(f"{at}: lists the same clip as {first_at} ({file.name}{_segment(start, end, channel)}); "
                            f"{why}")
            continue
        listed[key] = (at, str(split))
        entries.append(Entry(file=file, label=label, where=at, split=split, group=group, start=start, end=end,
                             channel=channel))
    if id_column is not None:
        available = sorted(ids, key=lambda label: (ids[label][0], natural_key(label)))
        order = f"by the csv column {id_column!r}"
    else:  # every class listed, also one only in unused folds (an empty class if selected)
        available = sorted({e.label for e in entries}, key=natural_key)
        order = "natural sort of the class names"
    if split_column is None and fold_column is None:
        used = entries
    else:
        used = [e for e in entries if e.split in SPLITS]  # unused folds take no part in drawing or checks
    survey = finish_survey(
        name="csv", root=csv_path, entries=used, problems=problems, how=how, available=available, order=order,
        class_where=first_line, classes=classes, fractions=fractions, split_seed=split_seed,
        val_fraction=val_fraction, target_frames=target_frames, freqm=freqm, timem=timem,
    )
    read = [column for column in columns.values() if column is not None]
    unused = [column for column in header if column not in read]
    survey.notes.append(f"csv columns read: {', '.join(read)}; not read: {', '.join(unused) or 'none'} (the "
                        "*_column options name the group, start, end, channel and id columns)")
    return survey


def _find_csv(root: Path, name: str | None) -> Path:
    """The csv: ``root`` itself, or ``name`` in the folder ``root``, or the folder's only csv / tsv."""
    if root.is_file():
        if name is not None:
            raise ConfigError(f"option 'csv' names a file in the root folder, but the root {root} is a file already")
        return root
    if not root.is_dir():
        raise DataError(f"{root}: not found (expected a csv / tsv file, or a folder holding one)")
    if name is not None:
        if not isinstance(name, str) or not name:
            raise ConfigError(f"option 'csv' must be a file name, got {name!r}")
        path = root / Path(name).expanduser()
        if not path.is_file():
            raise DataError(f"{path}: csv not found (option 'csv' {name!r} in {root})")
        return path
    found = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in (".csv", *TAB_SUFFIXES))
    if len(found) != 1:
        names = ", ".join(p.name for p in found) or "none"
        raise DataError(f"{root}: expected one csv / tsv file in it, found {names}; name one with the option 'csv' "
                        "(or pass the file as the root)")
    return found[0]


def _delimiter(path: Path, delimiter: str | None) -> str:
    if delimiter is None:
        return "\t" if path.suffix.lower() in TAB_SUFFIXES else ","
    if not isinstance(delimiter, str) or len(delimiter) != 1:
        raise ConfigError(f"option 'delimiter' must be one character (e.g. ',' or '\\t'), got {delimiter!r}")
    return delimiter


def _read(path: Path, delimiter: str) -> tuple[list[str], list[tuple[int, dict[str, str]]]]:
    """The header's column names (stripped) and ``(line, row)`` of each non-blank row."""
    try:
        with path.open(newline="", encoding=METADATA_ENCODING) as handle:
            reader = csv_module.reader(handle, delimiter=delimiter)
            header = [name.strip() for name in next(reader, [])]
            rows = []
            for record in reader:
                if not any(cell.strip() for cell in record):
                    continue
                rows.append((reader.line_num, dict(zip(header, record))))
    except (OSError, UnicodeDecodeError, csv_module.Error) as err:
        raise DataError(f"{path}: cannot read the csv ({err})") from err
    return header, rows


def _split_of_fold(fold_column: str | None, train: Iterable[int] | None, val: Iterable[int] | None,
                   test: Iterable[int] | None) -> dict[int, str]:
    """``{fold: split}``; folds are integers and feed one split each."""
    given = {"train": train, "val": val, "test": test}
    if fold_column is None:
        named = [f"{split}_folds" for split, folds in given.items() if folds is not None]
        if named:
            raise ConfigError(f"option(s) {', '.join(named)} need 'fold_column': the csv column of the folds")
        return {}
    if train is None or test is None:
        raise ConfigError("option 'fold_column' needs 'train_folds' and 'test_folds' ('val_folds' or 'val_fraction' "
                          "for validation)")
    mapping: dict[int, str] = {}
    for split, folds in given.items():
        if folds is None:
            continue
        if isinstance(folds, (str, bytes, int)) or not isinstance(folds, Iterable):
            raise ConfigError(f"option '{split}_folds' must be a list of fold numbers, got {folds!r}")
        for fold in folds:
            if isinstance(fold, bool) or not isinstance(fold, int):
                raise ConfigError(f"option '{split}_folds': fold {fold!r} is not an integer")
            if fold in mapping:
                raise ConfigError(f"fold {fold} is in both {mapping[fold]}_folds and {split}_folds (folds must be "
                                  "disjoint)")
            mapping[fold] = split
    return mapping


def _listing(folds: Iterable[int] | None) -> str:
    folds = list(folds or [])
    return ", ".join(map(str, folds)) if folds else "none"


def _integer(text: str, column: str | None, at: str, problems: list[str]) -> int | None:
    try:
        value = int(text)
    except ValueError:
        problems.append(f"{at}: {column} {text!r} is not an integer")
        return None
    if value < 0:
        problems.append(f"{at}: {column} {value} is negative")
        return None
    return value


def _seconds(text: str, column: str | None, at: str, problems: list[str]) -> float | None | bool:
    """Seconds in a time cell; None for an empty cell; False (after noting the problem) for a bad one."""
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        problems.append(f"{at}: {column} {text!r} is not a time in seconds")
        return False
    if not value >= 0 or value == float("inf"):
        problems.append(f"{at}: {column} {text!r} is not a time in seconds >= 0")
        return False
    return value


def _check_id(label: str, class_id: int, at: str, ids: dict, labels: dict, id_column: str, label_column: str,
              problems: list[str]) -> None:
    """One id per class and one class per id, as ESC-50's target and category."""
    known_id, id_at = ids.setdefault(label, (class_id, at))
    known_label, label_at = labels.setdefault(class_id, (label, at))
    if known_id != class_id:
        problems.append(f"{at}: {label_column} {label!r} has {id_column} {class_id}, but {known_id} on {id_at}")
    elif known_label != label:
        problems.append(f"{at}: {id_column} {class_id} is {label_column} {label!r}, but {known_label!r} on {label_at}")


def _segment(start: float | None, end: float | None, channel: int | None) -> str:
    parts = []
    if start is not None or end is not None:
        parts.append(f"{start or 0:g}-{'end' if end is None else f'{end:g}'} s")
    if channel is not None:
        parts.append(f"channel {channel}")
    return f" [{', '.join(parts)}]" if parts else ""


class CsvSource(SurveyedSource):
    """A collection listed in a csv / tsv (module docstring); options are those of :func:`survey_csv`."""

    name = "csv"

    survey_of = staticmethod(survey_csv)
