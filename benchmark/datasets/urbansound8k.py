"""UrbanSound8K in the official layout: ``metadata/UrbanSound8K.csv`` + ``audio/fold<N>/<slice_file_name>``.

Splits are by the official folds (1..10). The dataset's authors pre-sorted the slices so that every slice cut from
one Freesound recording lies in one fold; mixing folds (or shuffling clips across them) leaks recordings between
train and test and inflates accuracy, so this source only ever splits by fold. The paper's protocol is 10-fold
cross-validation; the default here is one fixed split (folds 1-8 train, 9 val, 10 test), so its numbers are not
comparable to 10-fold averages. File names, sample rates (8-192 kHz), bit depths and channel counts come from the
files themselves; :mod:`benchmark.audio` downmixes and resamples them. The csv reading is :mod:`.fold_csv`'s,
shared with ESC-50.

``root`` may be the ``UrbanSound8K`` folder itself or the folder that holds it (where the archive was extracted).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from audio_ticl.benchmark.datasets.base import FeatureDefaults
from audio_ticl.benchmark.datasets.fold_csv import FoldCsvLayout, FoldCsvSource, FoldRow
from audio_ticl.benchmark.errors import DataError

__all__ = [
    "UrbanSound8KSource",
    "URBANSOUND8K_DEFAULTS",
    "URBANSOUND8K_LAYOUT",
    "REQUIRED_COLUMNS",
    "FOLDS",
    "DATASET_DIR",
    "CSV_RELPATH",
]

# mean / std / length are the statistics the AST/SSAST public recipes publish for UrbanSound8K (4 s clips -> 400
# frames). They give no SpecAugment widths for UrbanSound8K: these are ESC-50's (another environmental-sound set of
# similar length), with the time mask scaled to the shorter input: 96 * 400 / 512 = 75 frames.
URBANSOUND8K_DEFAULTS = FeatureDefaults(mean=-4.451961, std=3.9357858, target_frames=400, freqm=24, timem=75)

FOLDS = range(1, 11)
#: the folder the official archive extracts to
DATASET_DIR = "UrbanSound8K"
CSV_RELPATH = Path("metadata") / "UrbanSound8K.csv"
URBANSOUND8K_LAYOUT = FoldCsvLayout(
    dataset="UrbanSound8K",
    csv_relpath=CSV_RELPATH,
    filename_column="slice_file_name",
    id_column="classID",
    class_column="class",
    folds=FOLDS,
    root_hint=f"expected {CSV_RELPATH.as_posix()} and audio/fold1..fold10/ in it, or an {DATASET_DIR}/ folder",
)
REQUIRED_COLUMNS = URBANSOUND8K_LAYOUT.required_columns


class UrbanSound8KSource(FoldCsvSource):
    """UrbanSound8K clips split by fold; ``classes`` optionally restricts to some classes (by name)."""

    name = "urbansound8k"
    layout = URBANSOUND8K_LAYOUT

    def __init__(
        self,
        root: Path,
        train_folds: Iterable[int] = (1, 2, 3, 4, 5, 6, 7, 8),
        val_folds: Iterable[int] = (9,),
        test_folds: Iterable[int] = (10,),
        classes: Sequence[str] | None = None,
    ) -> None:
        super().__init__(root, train_folds, val_folds, test_folds, classes)

    @property
    def feature_defaults(self) -> FeatureDefaults:
        return URBANSOUND8K_DEFAULTS

    def dataset_root(self, root: Path) -> Path:
        """``root`` itself, or ``root/UrbanSound8K`` when ``root`` is the folder the archive was extracted in."""
        root = super().dataset_root(root)
        nested = root / DATASET_DIR
        if not (root / CSV_RELPATH.parent).is_dir() and (nested / CSV_RELPATH.parent).is_dir():
            return nested
        return root

    def check_row(self, row: FoldRow) -> None:
        if Path(row.filename).name != row.filename:
            raise DataError(
                f"{self.csv_path}, line {row.line}: slice_file_name {row.filename!r} must be a bare file name "
                "(the fold column picks the audio/fold<N>/ folder)"
            )

    def audio_path(self, audio_dir: Path, row: FoldRow) -> Path:
        return audio_dir / f"fold{row.fold}" / row.filename
