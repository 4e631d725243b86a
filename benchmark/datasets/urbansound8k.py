"""UrbanSound8K in the official layout: ``metadata/UrbanSound8K.csv`` + ``audio/fold<N>/<slice_file_name>``.

Splits are by the official folds (1..10). The dataset's authors pre-sorted the slices so that every slice cut from
one Freesound recording lies in one fold; mixing folds (or shuffling clips across them) leaks recordings between
train and test and inflates accuracy, so this source only ever splits by fold. The paper's protocol is 10-fold
cross-validation; the default here is one fixed split (folds 1-8 train, 9 val, 10 test), so its numbers are not
comparable to 10-fold averages. File names, sample rates (8-192 kHz), bit depths and channel counts come from the
files themselves; :mod:`benchmark.audio` downmixes and resamples them.

``root`` may be the ``UrbanSound8K`` folder itself or the folder that holds it (where the archive was extracted).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable
from typing import Optional, Sequence

from audio_ticl.benchmark.datasets.base import Clip, ClipSource, FeatureDefaults, select_classes
from audio_ticl.benchmark.datasets.folds import split_of_fold
from audio_ticl.benchmark.errors import DataError

__all__ = ["UrbanSound8KSource", "URBANSOUND8K_DEFAULTS", "REQUIRED_COLUMNS", "FOLDS", "DATASET_DIR", "CSV_RELPATH"]

# mean / std / length are the statistics the AST/SSAST public recipes publish for UrbanSound8K (4 s clips -> 400
# frames). They give no SpecAugment widths for UrbanSound8K: these are ESC-50's (another environmental-sound set of similar
# length), with the time mask scaled to the shorter input: 96 * 400 / 512 = 75 frames.
URBANSOUND8K_DEFAULTS = FeatureDefaults(mean=-4.451961, std=3.9357858, target_frames=400, freqm=24, timem=75)

REQUIRED_COLUMNS = ("slice_file_name", "fold", "classID", "class")
FOLDS = range(1, 11)
#: the folder the official archive extracts to
DATASET_DIR = "UrbanSound8K"
CSV_RELPATH = Path("metadata") / "UrbanSound8K.csv"


@dataclass(frozen=True)
class _Row:
    filename: str
    fold: int
    class_id: int
    name: str
    line: int


class UrbanSound8KSource(ClipSource):
    """UrbanSound8K clips split by fold; ``classes`` optionally restricts to some classes (by name)."""

    name = "urbansound8k"

    def __init__(
        self,
        root: Path,
        train_folds: Iterable[int] = (1, 2, 3, 4, 5, 6, 7, 8),
        val_folds: Iterable[int] = (9,),
        test_folds: Iterable[int] = (10,),
        classes: Optional[Sequence[str]] = None,
    ) -> None:
        self.root = self._dataset_root(Path(root))
        self.csv_path = self.root / CSV_RELPATH
        self.audio_dir = self.root / "audio"
        self.split_of_fold = split_of_fold(
            "UrbanSound8K", self.root, {"train": train_folds, "val": val_folds, "test": test_folds}, FOLDS
        )
        self._rows = self._read_csv(self.csv_path)
        self._class_ids = self._class_ids_by_name(self._rows)
        self._classes = select_classes(list(self._class_ids), classes, self.csv_path, "UrbanSound8K")

    @property
    def feature_defaults(self) -> FeatureDefaults:
        return URBANSOUND8K_DEFAULTS

    def classes(self) -> list[str]:
        return list(self._classes)

    def class_ids(self) -> dict[str, int]:
        """The official ``classID`` of each selected class (``class`` -> ``classID``), in classID order."""
        return {name: self._class_ids[name] for name in self._classes}

    def clips(self) -> list[Clip]:
        selected = set(self._classes)
        root = self.audio_dir.resolve()
        clips = []
        for row in self._rows:
            split = self.split_of_fold.get(row.fold)
            if split is None or row.name not in selected:
                continue
            path = root / f"fold{row.fold}" / row.filename
            if not path.is_file():
                raise DataError(
                    f"{path}: audio file listed in {self.csv_path} (line {row.line}, fold {row.fold}) not found "
                    f"(expected audio/fold{row.fold}/{row.filename})"
                )
            clips.append(Clip(key=str(path), label=row.name, split=split, path=path))
        return clips

    # -- parsing and validation ---------------------------------------------------------------------------

    @staticmethod
    def _dataset_root(root: Path) -> Path:
        """``root`` itself, or ``root/UrbanSound8K`` when ``root`` is the folder the archive was extracted in."""
        if not root.is_dir():
            raise DataError(
                f"{root}: UrbanSound8K root folder not found "
                f"(expected {CSV_RELPATH.as_posix()} and audio/fold1..fold10/ in it, or an {DATASET_DIR}/ folder)"
            )
        nested = root / DATASET_DIR
        if not (root / CSV_RELPATH.parent).is_dir() and (nested / CSV_RELPATH.parent).is_dir():
            return nested
        return root

    @staticmethod
    def _read_csv(csv_path: Path) -> list[_Row]:
        if not csv_path.is_file():
            raise DataError(
                f"{csv_path}: UrbanSound8K metadata not found (expected the official {CSV_RELPATH.as_posix()})"
            )
        try:
            with csv_path.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                found = [name.strip() for name in reader.fieldnames or []]
                missing = [c for c in REQUIRED_COLUMNS if c not in found]
                if missing:
                    raise DataError(
                        f"{csv_path}: missing column(s) {', '.join(missing)} "
                        f"(expected at least {', '.join(REQUIRED_COLUMNS)}; found {', '.join(found) or 'none'})"
                    )
                reader.fieldnames = found
                rows = []
                for line, record in enumerate(reader, start=2):
                    try:
                        row = _Row(record["slice_file_name"].strip(), int(record["fold"]), int(record["classID"]),
                                   record["class"].strip(), line)
                    except (TypeError, ValueError, AttributeError) as err:
                        raise DataError(
                            f"{csv_path}, line {line}: expected integer fold and classID ({err})"
                        ) from err
                    if row.fold not in FOLDS or row.class_id < 0:
                        raise DataError(
                            f"{csv_path}, line {line}: fold {row.fold} / classID {row.class_id} out of range "
                            "(expected fold 1..10 and a non-negative classID)"
                        )
                    if not row.filename or not row.name:
                        raise DataError(f"{csv_path}, line {line}: empty slice_file_name or class")
                    if Path(row.filename).name != row.filename:
                        raise DataError(
                            f"{csv_path}, line {line}: slice_file_name {row.filename!r} must be a bare file name "
                            "(the fold column picks the audio/fold<N>/ folder)"
                        )
                    rows.append(row)
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise DataError(f"{csv_path}: cannot read the UrbanSound8K metadata ({err})") from err
        if not rows:
            raise DataError(f"{csv_path}: no clips listed")
        return rows

    def _class_ids_by_name(self, rows: list[_Row]) -> dict[str, int]:
        """``class`` -> ``classID``, checked one to one, sorted by classID (the dataset's canonical order)."""
        ids: dict[str, tuple[int, int]] = {}
        names: dict[int, tuple[str, int]] = {}
        for row in rows:
            known_id, id_line = ids.setdefault(row.name, (row.class_id, row.line))
            known_name, name_line = names.setdefault(row.class_id, (row.name, row.line))
            if known_id != row.class_id:
                raise DataError(
                    f"{self.csv_path}, line {row.line}: class {row.name!r} has classID {row.class_id}, but "
                    f"classID {known_id} on line {id_line} (expected one classID per class)"
                )
            if known_name != row.name:
                raise DataError(
                    f"{self.csv_path}, line {row.line}: classID {row.class_id} is class {row.name!r}, but "
                    f"{known_name!r} on line {name_line} (expected one class per classID)"
                )
        return {name: class_id for name, (class_id, _) in sorted(ids.items(), key=lambda item: item[1][0])}

