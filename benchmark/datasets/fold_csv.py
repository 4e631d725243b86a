"""The shared loader of datasets described by one metadata csv with a fold column and a class column.

ESC-50 (``meta/esc50.csv``: filename, fold, target, category) and UrbanSound8K (``metadata/UrbanSound8K.csv``:
slice_file_name, fold, classID, class) have the same shape: one row per clip, an official fold per row, a class name
with a numeric id that fixes the canonical class order. :class:`FoldCsvSource` reads and checks that csv, splits by
fold and selects classes; a subclass gives its :class:`FoldCsvLayout` and says where a row's audio lives.
"""
from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from audio_ticl.benchmark.datasets.base import (
    METADATA_ENCODING,
    Clip,
    ClipSource,
    file_key,
    listed_file,
    reject_listed_twice,
    select_classes,
)
from audio_ticl.benchmark.datasets.folds import split_of_fold
from audio_ticl.benchmark.errors import DataError

__all__ = ["FoldCsvLayout", "FoldCsvSource", "FoldRow", "class_ids_by_name", "read_fold_csv"]


@dataclass(frozen=True)
class FoldCsvLayout:
    """The official names of one fold-csv dataset: its csv, its columns and its folds."""

    #: the dataset's name in messages, e.g. "ESC-50"
    dataset: str
    #: the metadata csv, relative to the dataset root
    csv_relpath: Path
    filename_column: str
    id_column: str
    class_column: str
    folds: range
    #: the largest valid class id (ESC-50: 49), or None for any non-negative id
    max_class_id: int | None = None
    #: what a root folder holds, for the "root folder not found" message
    root_hint: str = ""
    fold_column: str = "fold"

    @property
    def required_columns(self) -> tuple[str, ...]:
        return (self.filename_column, self.fold_column, self.id_column, self.class_column)

    @property
    def id_range(self) -> str:
        return f"0..{self.max_class_id}" if self.max_class_id is not None else ">= 0"


@dataclass(frozen=True)
class FoldRow:
    """One clip of the csv: its file name, official fold, class id and class name, and its csv line."""

    filename: str
    fold: int
    class_id: int
    name: str
    line: int


def read_fold_csv(
    csv_path: Path, layout: FoldCsvLayout, check_row: Callable[[FoldRow], None] | None = None
) -> list[FoldRow]:
    """Every row of the metadata csv, checked: the columns exist, fold and id are in range, nothing is empty. A
    byte-order mark (Excel's UTF-8 csv) is dropped rather than read into the first column's name.

    ``check_row`` adds a dataset's own rules; it sees each row in turn, so the first bad line is the one reported.
    """
    if not csv_path.is_file():
        raise DataError(
            f"{csv_path}: {layout.dataset} metadata not found (expected the official {layout.csv_relpath.as_posix()})"
        )
    try:
        with csv_path.open(newline="", encoding=METADATA_ENCODING) as handle:
            reader = csv.DictReader(handle)
            found = [name.strip() for name in reader.fieldnames or []]
            missing = [c for c in layout.required_columns if c not in found]
            if missing:
                raise DataError(
                    f"{csv_path}: missing column(s) {', '.join(missing)} (expected at least "
                    f"{', '.join(layout.required_columns)}; found {', '.join(found) or 'none'})"
                )
            reader.fieldnames = found
            rows = []
            for line, record in enumerate(reader, start=2):
                rows.append(_parse_row(record, line, csv_path, layout))
                if check_row is not None:
                    check_row(rows[-1])
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{csv_path}: cannot read the {layout.dataset} metadata ({err})") from err
    if not rows:
        raise DataError(f"{csv_path}: no clips listed")
    return rows


def _parse_row(record: dict, line: int, csv_path: Path, layout: FoldCsvLayout) -> FoldRow:
    fname, fold, cid, cname = layout.required_columns
    try:
        row = FoldRow(record[fname].strip(), int(record[fold]), int(record[cid]), record[cname].strip(), line)
    except (TypeError, ValueError, AttributeError) as err:
        raise DataError(f"{csv_path}, line {line}: expected integer {fold} and {cid} ({err})") from err
    max_id = layout.max_class_id
    if row.fold not in layout.folds or row.class_id < 0 or (max_id is not None and row.class_id > max_id):
        lo, hi = layout.folds[0], layout.folds[-1]
        raise DataError(
            f"{csv_path}, line {line}: {fold} {row.fold} / {cid} {row.class_id} out of range "
            f"(expected {fold} {lo}..{hi} and {cid} {layout.id_range})"
        )
    if not row.filename or not row.name:
        raise DataError(f"{csv_path}, line {line}: empty {fname} or {cname}")
    return row


def class_ids_by_name(rows: list[FoldRow], csv_path: Path, layout: FoldCsvLayout) -> dict[str, int]:
    """``class name -> class id``, checked one to one, sorted by id (the dataset's canonical order)."""
    cid, cname = layout.id_column, layout.class_column
    ids: dict[str, tuple[int, int]] = {}
    names: dict[int, tuple[str, int]] = {}
    for row in rows:
        known_id, id_line = ids.setdefault(row.name, (row.class_id, row.line))
        known_name, name_line = names.setdefault(row.class_id, (row.name, row.line))
        if known_id != row.class_id:
            raise DataError(
                f"{csv_path}, line {row.line}: {cname} {row.name!r} has {cid} {row.class_id}, but "
                f"{cid} {known_id} on line {id_line} (expected one {cid} per {cname})"
            )
        if known_name != row.name:
            raise DataError(
                f"{csv_path}, line {row.line}: {cid} {row.class_id} is {cname} {row.name!r}, but "
                f"{known_name!r} on line {name_line} (expected one {cname} per {cid})"
            )
    return {name: class_id for name, (class_id, _) in sorted(ids.items(), key=lambda item: item[1][0])}


class FoldCsvSource(ClipSource):
    """Clips of a fold-csv dataset split by official fold; ``classes`` optionally keeps some classes (by name).

    A subclass sets :attr:`layout` and :meth:`audio_path`, and may override :meth:`dataset_root` (where the
    dataset folder is, given the user's root) and :meth:`check_row` (extra per-row rules).
    """

    layout: FoldCsvLayout

    def __init__(
        self,
        root: Path,
        train_folds: Iterable[int],
        val_folds: Iterable[int],
        test_folds: Iterable[int],
        classes: Sequence[str] | None = None,
    ) -> None:
        layout = self.layout
        self.root = self.dataset_root(Path(root))
        self.csv_path = self.root / layout.csv_relpath
        self.audio_dir = self.root / "audio"
        self.split_of_fold = split_of_fold(
            layout.dataset, self.root, {"train": train_folds, "val": val_folds, "test": test_folds}, layout.folds
        )
        self._rows = read_fold_csv(self.csv_path, layout, self.check_row)
        self._check_listed_once(self._rows)
        self._class_ids = class_ids_by_name(self._rows, self.csv_path, layout)
        self._classes = select_classes(list(self._class_ids), classes, self.csv_path, layout.dataset)

    def _check_listed_once(self, rows: list[FoldRow]) -> None:
        """Each file on one row: a file in two folds is in two splits (now, or in another cross-validation round)."""
        fold = self.layout.fold_column
        reject_listed_twice(
            ((file_key(row.filename), f"line {row.line}",
              f"{fold} {row.fold} ({self.split_of_fold.get(row.fold, 'unused')})") for row in rows),
            f"{self.csv_path}: ",
        )

    def dataset_root(self, root: Path) -> Path:
        """The dataset folder for the ``root`` the user gave (by default ``root`` itself, which must exist)."""
        if not root.is_dir():
            raise DataError(f"{root}: {self.layout.dataset} root folder not found ({self.layout.root_hint})")
        return root

    def check_row(self, row: FoldRow) -> None:
        """Dataset-specific rules for one csv row (none by default); raise a DataError naming the csv line."""

    def audio_path(self, audio_dir: Path, row: FoldRow) -> Path:
        """Where the audio of ``row`` lives under ``audio_dir`` (the resolved ``audio/`` folder)."""
        raise NotImplementedError

    def classes(self) -> list[str]:
        return list(self._classes)

    def class_ids(self) -> dict[str, int]:
        """The official id of each selected class (class name -> id), in id order."""
        return {name: self._class_ids[name] for name in self._classes}

    def clips(self) -> list[Clip]:
        selected = set(self._classes)
        audio_dir = self.audio_dir.resolve()
        clips = []
        for row in self._rows:
            split = self.split_of_fold.get(row.fold)
            if split is None or row.name not in selected:
                continue
            path = listed_file(self.audio_path(audio_dir, row))
            if not path.is_file():
                raise DataError(
                    f"{path}: audio file listed in {self.csv_path} (line {row.line}, fold {row.fold}) not found "
                    f"(expected audio/{path.relative_to(audio_dir).as_posix()})"
                )
            clips.append(Clip(key=str(path), label=row.name, split=split, path=path))
        return clips
