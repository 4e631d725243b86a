"""ESC-50 (and its ESC-10 subset) in the official layout: ``meta/esc50.csv`` + ``audio/<filename>``.

Splits are by the official folds (1..5). File names, extensions (``.wav`` in the full set, ``.ogg`` in the shared
ESC-10 copy) and the set of classes all come from the csv, so any subset of ESC-50 works.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

from audio_ticl.benchmark.datasets.base import Clip, ClipSource, FeatureDefaults, select_classes
from audio_ticl.benchmark.datasets.folds import split_of_fold
from audio_ticl.benchmark.errors import DataError

__all__ = ["ESC50Source", "ESC50_DEFAULTS", "ESC50_CATEGORIES", "REQUIRED_COLUMNS"]

#: AST's ESC-50 fbank statistics, length and SpecAugment widths (Gong et al. 2021, AST, and its public recipe)
ESC50_DEFAULTS = FeatureDefaults(mean=-6.6268077, std=5.358466, target_frames=512, freqm=24, timem=96)

#: the five official categories, indexed by ``target // 10``
ESC50_CATEGORIES = ("animals", "natural", "human", "domestic", "urban")

REQUIRED_COLUMNS = ("filename", "fold", "target", "category")
FOLDS = range(1, 6)


@dataclass(frozen=True)
class _Row:
    filename: str
    fold: int
    target: int
    category: str


class ESC50Source(ClipSource):
    """ESC-50 clips split by fold; ``classes`` optionally restricts to some categories (by name)."""

    name = "esc50"

    def __init__(
        self,
        root: Path,
        train_folds: Iterable[int] = (1, 2, 3),
        val_folds: Iterable[int] = (4,),
        test_folds: Iterable[int] = (5,),
        classes: Optional[Sequence[str]] = None,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(f"{self.root}: ESC-50 root folder not found (expected meta/esc50.csv and audio/ in it)")
        self.csv_path = self.root / "meta" / "esc50.csv"
        self.audio_dir = self.root / "audio"
        self.split_of_fold = split_of_fold(
            "ESC-50", self.root, {"train": train_folds, "val": val_folds, "test": test_folds}, FOLDS
        )
        self._rows = self._read_csv(self.csv_path)
        self._targets = self._class_targets(self._rows)
        self._classes = select_classes(list(self._targets), classes, self.csv_path, "ESC-50")

    @property
    def feature_defaults(self) -> FeatureDefaults:
        return ESC50_DEFAULTS

    def classes(self) -> list[str]:
        return list(self._classes)

    def class_groups(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for name in self._classes:
            groups.setdefault(ESC50_CATEGORIES[self._targets[name] // 10], []).append(name)
        return {category: groups[category] for category in ESC50_CATEGORIES if category in groups}

    def clips(self) -> list[Clip]:
        selected = set(self._classes)
        root = self.audio_dir.resolve()
        clips = []
        for row in self._rows:
            split = self.split_of_fold.get(row.fold)
            if split is None or row.category not in selected:
                continue
            path = root / row.filename
            if not path.is_file():
                raise DataError(f"{path}: audio file listed in {self.csv_path} not found")
            clips.append(Clip(key=str(path), label=row.category, split=split, path=path))
        return clips

    # -- parsing and validation ---------------------------------------------------------------------------

    @staticmethod
    def _read_csv(csv_path: Path) -> list[_Row]:
        if not csv_path.is_file():
            raise DataError(f"{csv_path}: ESC-50 metadata not found (expected the official meta/esc50.csv)")
        try:
            with csv_path.open(newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
                if missing:
                    raise DataError(
                        f"{csv_path}: missing column(s) {', '.join(missing)} "
                        f"(expected at least {', '.join(REQUIRED_COLUMNS)}; found {', '.join(reader.fieldnames or [])})"
                    )
                rows = []
                for line, record in enumerate(reader, start=2):
                    try:
                        row = _Row(record["filename"].strip(), int(record["fold"]), int(record["target"]),
                                   record["category"].strip())
                    except (TypeError, ValueError, AttributeError) as err:
                        raise DataError(f"{csv_path}, line {line}: expected integer fold and target ({err})") from err
                    if row.fold not in FOLDS or not 0 <= row.target < 10 * len(ESC50_CATEGORIES):
                        raise DataError(
                            f"{csv_path}, line {line}: fold {row.fold} / target {row.target} out of range "
                            "(expected fold 1..5, target 0..49)"
                        )
                    if not row.filename or not row.category:
                        raise DataError(f"{csv_path}, line {line}: empty filename or category")
                    rows.append(row)
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise DataError(f"{csv_path}: cannot read the ESC-50 metadata ({err})") from err
        if not rows:
            raise DataError(f"{csv_path}: no clips listed")
        return rows

    def _class_targets(self, rows: list[_Row]) -> dict[str, int]:
        targets: dict[str, int] = {}
        names: dict[int, str] = {}
        for row in rows:
            known_target = targets.setdefault(row.category, row.target)
            known_name = names.setdefault(row.target, row.category)
            if known_target != row.target or known_name != row.category:
                raise DataError(
                    f"{self.csv_path}: category {row.category!r} and target {row.target} do not map one to one"
                )
        return dict(sorted(targets.items(), key=lambda item: item[1]))

