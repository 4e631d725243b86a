"""ESC-50 (and its ESC-10 subset) in the official layout: ``meta/esc50.csv`` + ``audio/<filename>``.

Splits are by the official folds (1..5). File names, extensions (``.wav`` in the full set, ``.ogg`` in the shared
ESC-10 copy) and the set of classes all come from the csv, so any subset of ESC-50 works. The csv reading is
:mod:`.fold_csv`'s, shared with UrbanSound8K.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from audio_ticl.benchmark.datasets.base import FeatureDefaults
from audio_ticl.benchmark.datasets.fold_csv import FoldCsvLayout, FoldCsvSource, FoldRow

__all__ = ["ESC50Source", "ESC50_DEFAULTS", "ESC50_CATEGORIES", "ESC50_LAYOUT", "REQUIRED_COLUMNS"]

#: AST's ESC-50 fbank statistics, length and SpecAugment widths (Gong et al. 2021, AST, and its public recipe)
ESC50_DEFAULTS = FeatureDefaults(mean=-6.6268077, std=5.358466, target_frames=512, freqm=24, timem=96)

#: the five official categories, indexed by ``target // 10``
ESC50_CATEGORIES = ("animals", "natural", "human", "domestic", "urban")

FOLDS = range(1, 6)
ESC50_LAYOUT = FoldCsvLayout(
    dataset="ESC-50",
    csv_relpath=Path("meta") / "esc50.csv",
    filename_column="filename",
    id_column="target",
    class_column="category",
    folds=FOLDS,
    max_class_id=10 * len(ESC50_CATEGORIES) - 1,
    root_hint="expected meta/esc50.csv and audio/ in it",
)
REQUIRED_COLUMNS = ESC50_LAYOUT.required_columns


class ESC50Source(FoldCsvSource):
    """ESC-50 clips split by fold; ``classes`` optionally restricts to some categories (by name)."""

    name = "esc50"
    nominal_seconds = 5.0  # 5-second clips (Piczak 2015)
    layout = ESC50_LAYOUT

    def __init__(
        self,
        root: Path,
        train_folds: Iterable[int] = (1, 2, 3),
        val_folds: Iterable[int] = (4,),
        test_folds: Iterable[int] = (5,),
        classes: Sequence[str] | None = None,
    ) -> None:
        super().__init__(root, train_folds, val_folds, test_folds, classes)

    @property
    def feature_defaults(self) -> FeatureDefaults:
        return ESC50_DEFAULTS

    def audio_path(self, audio_dir: Path, row: FoldRow) -> Path:
        return audio_dir / row.filename

    def class_groups(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {}
        for name, target in self.class_ids().items():
            groups.setdefault(ESC50_CATEGORIES[target // 10], []).append(name)
        return {category: groups[category] for category in ESC50_CATEGORIES if category in groups}
