"""Fold-based split protocols (ESC-50's 5 folds, UrbanSound8K's 10): which split each official fold feeds."""
from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from audio_ticl.benchmark.errors import DataError

__all__ = ["split_of_fold"]


def split_of_fold(dataset: str, root: Path, folds_by_split: dict[str, Iterable[int]], valid: range) -> dict[int, str]:
    """``{fold: split}`` from ``{"train": folds, "val": folds, "test": folds}``.

    Folds must be listed as integers in ``valid`` and each may feed one split only: these datasets keep every
    slice of one recording in one fold, so a fold shared between splits would leak recordings into the test set.
    """
    lo, hi = valid[0], valid[-1]
    mapping: dict[int, str] = {}
    for split, folds in folds_by_split.items():
        if isinstance(folds, (str, bytes, int)) or not isinstance(folds, Iterable):
            raise DataError(
                f"{root}: {dataset} {split}_folds must be a list of fold numbers ({lo}..{hi}), got {folds!r}"
            )
        for fold in folds:
            if isinstance(fold, bool) or fold not in valid:
                raise DataError(f"{root}: {dataset} fold {fold!r} in {split}_folds is not one of {lo}..{hi}")
            if fold in mapping:
                raise DataError(
                    f"{root}: {dataset} fold {fold} is used by both {mapping[fold]}_folds and {split}_folds "
                    "(folds must be disjoint)"
                )
            mapping[int(fold)] = split
    return mapping
