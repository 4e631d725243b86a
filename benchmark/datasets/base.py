"""The one interface between dataset layouts on disk and the rest of the suite.

A source lists :class:`Clip` records (one per recording, with its split already decided by the dataset's
official protocol). Nothing here decodes audio: :mod:`benchmark.audio` turns clips into features.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from audio_ticl.benchmark.errors import DataError, TICLError

SPLITS = ("train", "val", "test")

#: metadata files (csv, list files) are read with this: it drops the byte-order mark Excel puts before a UTF-8 csv,
#: which would otherwise glue itself to the first column name or list entry
METADATA_ENCODING = "utf-8-sig"


@dataclass(frozen=True)
class FeatureDefaults:
    """Per-dataset feature constants of the AST recipe (Gong et al. 2021): fbank normalisation, length, SpecAugment.

    ``mean`` / ``std`` are None for data without published constants (the ``folder`` and ``csv`` sources): the
    suite then computes them on the training split (:mod:`benchmark.datasets.stats`).
    """

    mean: float | None
    std: float | None
    target_frames: int
    freqm: int
    timem: int


@dataclass(frozen=True)
class Clip:
    """One recording.

    ``key`` is a stable identity used by the feature cache (for files: the resolved path; for generated
    clips: a string that fully determines the waveform). Exactly one of ``path`` and ``render`` is set.
    ``render`` returns ``(mono float32 waveform, sample_rate)`` for generated audio.
    """

    key: str
    label: str
    split: str
    path: Path | None = None
    render: Callable[[], tuple[np.ndarray, int]] | None = field(default=None, compare=False, repr=False)


class ClipSource(ABC):
    """A dataset on disk (or generated) in its official layout and split protocol."""

    #: short name used in configs and task names, e.g. ``"esc50"``
    name: str = ""
    #: every clip's length in the dataset's definition, in seconds (None: lengths vary by design); a clip far
    #: shorter than this is counted, and refused with ``data.short_clips: error``
    nominal_seconds: float | None = None

    @property
    @abstractmethod
    def feature_defaults(self) -> FeatureDefaults:
        """Feature constants for this dataset."""

    @abstractmethod
    def classes(self) -> list[str]:
        """All class names present, in the dataset's canonical order (e.g. ESC-50 target id order)."""

    @abstractmethod
    def clips(self) -> list[Clip]:
        """Every clip of the selected classes, each with split in ``SPLITS``."""

    def class_groups(self) -> dict[str, list[str]]:
        """Named groups of classes the dataset defines (ESC-50's five categories); empty if none."""
        return {}


def select_classes(
    available: Sequence[str],
    wanted: Sequence[str] | None,
    where: str | Path,
    dataset: str,
    *,
    keep_order: bool = False,
    hint: str = "",
    error: type[TICLError] = DataError,
) -> list[str]:
    """``wanted`` (class names; None = all of ``available``) checked against ``available``: every source's check.

    The result is in the dataset's canonical order, unless ``keep_order``: then in the order asked for, for sources
    where that order makes the tasks (Speech Commands' word list, the synthetic task pairs). A name that is unknown,
    asked for twice, or an empty list is an ``error`` naming ``where`` (the file or folder the classes come from) and
    listing the available classes; ``hint`` is appended to the unknown-class message.
    """
    if wanted is None:
        return list(available)
    listing = ", ".join(available) or "(none)"
    if isinstance(wanted, (str, bytes)) or not isinstance(wanted, Iterable):
        raise error(f"{where}: {dataset} classes must be a list of class names, got {wanted!r}")
    wanted = list(wanted)
    if not wanted:
        raise error(f"{where}: the {dataset} class list is empty; available: {listing}")
    odd = [c for c in wanted if not isinstance(c, str)]
    if odd:
        raise error(f"{where}: {dataset} class names must be strings, got {odd[0]!r} ({type(odd[0]).__name__})")
    unknown = list(dict.fromkeys(c for c in wanted if c not in available))
    if unknown:
        names = ", ".join(map(repr, unknown))
        raise error(f"{where}: unknown {dataset} class(es) {names}; available: {listing}{hint}")
    twice = list(dict.fromkeys(c for c in wanted if wanted.count(c) > 1))
    if twice:
        raise error(f"{where}: {dataset} class(es) {', '.join(map(repr, twice))} requested more than once")
    if keep_order:
        return wanted
    keep = set(wanted)
    return [c for c in available if c in keep]


def audio_files(folder: Path, suffixes: Sequence[str] = (".wav",)) -> list[Path]:
    """The files directly in ``folder`` with one of ``suffixes`` in any case, sorted by name.

    Copies made on Windows or FAT media often end in ``.WAV``; a case-sensitive glob would drop them silently. Two
    names equal but for case are one recording twice (a case-insensitive file system cannot even hold both): a
    DataError naming both.
    """
    wanted = {suffix.lower() for suffix in suffixes}
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in wanted and p.is_file())
    seen: dict[str, Path] = {}
    for path in paths:
        other = seen.setdefault(path.name.casefold(), path)
        if other is not path:
            raise DataError(f"{folder}: {other.name} and {path.name} differ only in case (expected one file per "
                            "recording; remove one of them)")
    return paths


def listed_file(path: Path) -> Path:
    """``path`` as listed in metadata, or the same name with its extension in the other case if only that exists
    (``x.wav`` listed, ``x.WAV`` on disk); ``path`` itself when neither exists, for the caller's not-found error."""
    if path.is_file() or not path.suffix:
        return path
    for suffix in (path.suffix.lower(), path.suffix.upper()):
        other = path.with_suffix(suffix)
        if other.is_file():
            return other
    return path


def file_key(name: str) -> str:
    """The identity of a listed file name for duplicate checks: its extension's case does not matter (see
    :func:`listed_file`)."""
    stem, dot, suffix = name.rpartition(".")
    return f"{stem}.{suffix.lower()}" if dot and stem else name


def reject_listed_twice(entries: Iterable[tuple[str, str, str]], what: str) -> None:
    """Reject a file listed twice; ``entries`` are ``(file, where it is listed, its split)``.

    In two splits (or folds) it is test leakage: the model is scored on what it trained on. Twice in one split it
    counts twice. ``what`` starts the message (e.g. the csv path); ``where`` names the row (e.g. "line 12").
    """
    seen: dict[str, tuple[str, str]] = {}
    for key, where, split in entries:
        if key not in seen:
            seen[key] = (where, split)
            continue
        first_where, first_split = seen[key]
        why = (f"{first_split} and {split} both hold it: test leakage" if first_split != split
               else f"{split} would hold it twice")
        raise DataError(f"{what}{key} is in both {first_where} and {where}: {why}; expected each file listed once")
