"""What the two own-data sources (:mod:`.folder`, :mod:`.csv_source`) share: splits, checks and audio headers.

A layout reader lists :class:`Entry` records (a file, or a segment of one, with its label and, where the layout
says so, its split and group) and the problems it found; :func:`finish_survey` then

- draws the splits the layout does not give, seeded and stratified by class, keeping each group in one split
  (:func:`draw_splits`), and carves a validation split out of train where the layout has none (``val_fraction``);
- selects and orders the classes (``classes``; otherwise a natural, case-insensitive sort of the names);
- checks what the official loaders check, and lists every problem rather than stopping at the first: empty
  classes, a class without clips in a split, one group in two splits, unreadable audio (read from the headers
  with ``soundfile.info``, nothing is decoded), a segment past its file's end, a channel the file does not have;
- sizes the features: ``target_frames`` from the option, or from the longest clip (capped at 1024 frames).

The result, a :class:`Survey`, is what ``ticl datasets inspect`` prints and what the sources serve clips from; a
source refuses a survey with problems (a DataError listing them). Own data has no published normalisation
constants: its :class:`FeatureDefaults` leave mean and std unset, and :mod:`benchmark.scenarios` computes them on
the training split (:mod:`.stats`).
"""
from __future__ import annotations

import inspect
import random
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from audio_ticl.benchmark.audio.settings import FbankSettings
from audio_ticl.benchmark.datasets.base import SPLITS, Clip, ClipSource, FeatureDefaults, file_key, select_classes
from audio_ticl.benchmark.errors import ConfigError, DataError

__all__ = [
    "AudioInfo",
    "Entry",
    "Survey",
    "Segment",
    "SurveyedSource",
    "DEFAULT_FRACTIONS",
    "MAX_TARGET_FRAMES",
    "audio_suffixes",
    "check_options",
    "check_fractions",
    "compile_group_pattern",
    "draw_splits",
    "finish_survey",
    "group_of",
    "natural_key",
    "split_name",
]

#: the seeded split's default shares
DEFAULT_FRACTIONS = {"train": 0.8, "val": 0.1, "test": 0.1}
#: the longest input taken from the clips' own lengths: AST's AudioSet length (10.24 s); set target_frames for more
MAX_TARGET_FRAMES = 1024
#: AST's ESC-50 recipe (Gong et al. 2021): frequency mask 24 bins, time mask 96 of its 512 frames (3/16 of the
#: input); own data keeps the frequency width and scales the time width to its own length
AST_FREQM, AST_TIMEM, AST_FRAMES = 24, 96, 512
#: a segment may end this much past its file's end (rounded times in metadata) before it is a problem
END_TOLERANCE_S = 0.01
#: the most problems a source's error message lists (``ticl datasets inspect`` lists them all)
LISTED_PROBLEMS = 20

#: split names in folders and csv cells (any case) -> the suite's split
_SPLIT_SYNONYMS = {
    "train": "train", "training": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val",
    "test": "test", "testing": "test",
}
#: soundfile's container formats -> the file extensions that hold them (MAT and RAW are left out: no header)
_FORMAT_SUFFIXES = {
    "WAV": (".wav", ".wave"), "FLAC": (".flac",), "OGG": (".ogg", ".oga", ".opus"), "MP3": (".mp3",),
    "AIFF": (".aif", ".aiff", ".aifc"), "AU": (".au", ".snd"), "CAF": (".caf",), "W64": (".w64",),
    "RF64": (".rf64",), "VOC": (".voc",), "NIST": (".nist", ".sph"), "IRCAM": (".sf",), "SD2": (".sd2",),
}


def check_options(survey: Callable[..., Any], options: Mapping[str, Any]) -> None:
    """A TypeError naming the options ``survey`` (a layout reader) does not take, and listing those it takes."""
    known = [name for name in inspect.signature(survey).parameters if name != "root"]
    unknown = [name for name in options if name not in known]
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(map(repr, unknown))}; its options: {', '.join(known)}")


def split_name(text: str) -> str | None:
    """The suite's split (train / val / test) a folder name or csv cell names, in any case, or None."""
    return _SPLIT_SYNONYMS.get(text.strip().casefold())


def natural_key(name: str) -> tuple:
    """Sort key: numbers in a name compare as numbers (``class2`` before ``class10``), letters without case; the
    name itself breaks ties, so the order is total and stable."""
    parts = re.split(r"(\d+)", name)
    return tuple(int(p) if i % 2 else p.casefold() for i, p in enumerate(parts)), name


def audio_suffixes(extensions: Sequence[str] | None) -> frozenset[str]:
    """The file extensions read as audio: ``extensions`` (e.g. ``[".wav", "flac"]``), or every extension of a
    format this soundfile reads."""
    if extensions is None:
        available = sf.available_formats()
        return frozenset(s for fmt, suffixes in _FORMAT_SUFFIXES.items() if fmt in available for s in suffixes)
    if isinstance(extensions, (str, bytes)) or not isinstance(extensions, Iterable):
        raise ConfigError(f"option 'extensions' must be a list of file extensions such as ['.wav'], got "
                          f"{extensions!r}")
    out = set()
    for ext in extensions:
        if not isinstance(ext, str) or not ext.strip(". "):
            raise ConfigError(f"option 'extensions': {ext!r} is not a file extension (expected e.g. '.wav')")
        out.add("." + ext.strip().lstrip(".").lower())
    return frozenset(out)


def compile_group_pattern(pattern: str | None) -> re.Pattern | None:
    """``group_pattern`` compiled; it is searched in each file's name, and the group key is its ``(?P<group>...)``,
    else its first group, else the whole match."""
    if pattern is None:
        return None
    if not isinstance(pattern, str) or not pattern:
        raise ConfigError(f"option 'group_pattern' must be a regular expression, got {pattern!r}")
    try:
        return re.compile(pattern)
    except re.error as err:
        raise ConfigError(f"option 'group_pattern' {pattern!r} is not a valid regular expression ({err})") from None


def group_of(pattern: re.Pattern, name: str) -> str | None:
    """The group key ``pattern`` finds in the file name ``name``, or None when it does not match."""
    match = pattern.search(name)
    if match is None:
        return None
    if "group" in match.groupdict():
        return match["group"]
    return match.group(1) if match.re.groups else match.group(0)


def check_fractions(fractions: Mapping[str, float] | None, names: Sequence[str] = SPLITS) -> dict[str, float]:
    """``fractions`` (default 0.8 / 0.1 / 0.1) checked: one positive share per split of ``names``, summing to 1."""
    if fractions is None:
        fractions = {s: DEFAULT_FRACTIONS[s] for s in names} if tuple(names) == SPLITS else None
    if not isinstance(fractions, Mapping):
        raise ConfigError(f"option 'fractions' must map {', '.join(names)} to shares summing to 1, got {fractions!r}")
    keys = {str(k) for k in fractions}
    if keys != set(names):
        raise ConfigError(
            f"option 'fractions' must give a share for each of {', '.join(names)} (and nothing else), got "
            f"{', '.join(sorted(keys)) or 'none'}"
        )
    out = {}
    for name in names:
        value = fractions[name]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise ConfigError(f"option 'fractions.{name}' must be a share between 0 and 1 (exclusive), got {value!r}")
        out[name] = float(value)
    if abs(sum(out.values()) - 1.0) > 1e-6:
        raise ConfigError(f"option 'fractions' must sum to 1, got {sum(out.values()):g} ({out})")
    return out


def check_seed(seed: Any) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(f"option 'split_seed' must be a non-negative integer, got {seed!r}")
    return seed


def _check_positive_int(name: str, value: Any, minimum: int) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"option '{name}' must be an integer >= {minimum}, got {value!r}")
    return value


# ------------------------------------------------------------------------------------------------------ records
@dataclass
class Entry:
    """One listed clip: a file (or a segment of it), its label, and, once known, its split.

    ``where`` names it in messages: the path under the root for a folder, ``"<csv>, line N"`` for a csv row.
    ``group`` is the user's grouping key (None: none given); ``start`` / ``end`` are seconds into the file,
    ``channel`` a 0-based channel index (None: the whole file, all channels averaged).
    """

    file: Path
    label: str
    where: str
    split: str | None = None
    group: str | None = None
    start: float | None = None
    end: float | None = None
    channel: int | None = None

    @property
    def cropped(self) -> bool:
        return self.start is not None or self.end is not None or self.channel is not None

    def split_key(self) -> str:
        """What must stay in one split: the user's group, else the file (segments of one recording)."""
        return f"group:{self.group}" if self.group is not None else f"file:{self.file}"


@dataclass(frozen=True)
class AudioInfo:
    """What a file's header says."""

    seconds: float
    sample_rate: int
    channels: int
    format: str


@dataclass(frozen=True)
class Segment:
    """Decodes ``start``..``end`` seconds (None: the file's start / end) of one channel (None: all) of ``path``;
    a :class:`Clip`'s ``render`` (a top-level class, so it pickles)."""

    path: Path
    start: float | None
    end: float | None
    channel: int | None

    def __call__(self) -> tuple[np.ndarray, int]:
        from audio_ticl.benchmark.audio.integrity import check_complete

        try:
            with sf.SoundFile(str(self.path)) as handle:
                rate, frames, channels = handle.samplerate, handle.frames, handle.channels
                first = 0 if self.start is None else min(frames, int(round(self.start * rate)))
                last = frames if self.end is None else min(frames, int(round(self.end * rate)))
                handle.seek(first)
                samples = handle.read(max(0, last - first), dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, OSError, ValueError, TypeError) as err:
            raise DataError(f"{self.path}: cannot decode audio ({err}); expected a file soundfile reads") from err
        check_complete(self.path, frames)  # a cut-off copy: libsndfile counts only the frames it holds
        if samples.shape[0] < last - first:
            raise DataError(f"{self.path}: truncated: the segment {self.describe()} needs {last - first} frames "
                            f"from frame {first}, the file holds {samples.shape[0]} of them")
        if self.channel is not None:
            if self.channel >= channels:
                raise DataError(f"{self.path}: has {channels} channel(s), no channel {self.channel} (0-based)")
            samples = samples[:, self.channel]
        return samples, rate

    def describe(self) -> str:
        parts = []
        if self.start is not None or self.end is not None:
            start = f"{self.start:g}" if self.start is not None else "0"
            end = f"{self.end:g}" if self.end is not None else "end"
            parts.append(f"{start}-{end} s")
        if self.channel is not None:
            parts.append(f"channel {self.channel}")
        return ", ".join(parts)


@dataclass
class Survey:
    """A layout read and checked: the selected classes' clips with their splits, their headers, and the problems."""

    #: the source's name ("folder", "csv")
    name: str
    #: the root folder or csv file
    root: Path
    #: how the splits were decided, in words
    how: str
    #: how the class order was decided, in words
    order: str
    #: the selected classes, in order
    classes: list[str]
    #: the selected classes' clips (each with a split), in the layout's order
    entries: list[Entry]
    #: every problem found, each naming its file, line or class
    problems: list[str]
    #: header of each readable file of ``entries``
    info: dict[Path, AudioInfo] = field(default_factory=dict)
    #: files that were skipped as not audio (folder layouts)
    ignored: list[Path] = field(default_factory=list)
    #: what else ``ticl datasets inspect`` should say (e.g. the csv columns left unused)
    notes: list[str] = field(default_factory=list)
    target_frames: int = MAX_TARGET_FRAMES
    #: where target_frames came from, in words
    frames_from: str = ""
    freqm: int = AST_FREQM
    timem: int = AST_TIMEM

    def seconds(self, entry: Entry) -> float | None:
        """The clip's length (a segment's, or the file's), or None when its header could not be read."""
        info = self.info.get(entry.file)
        if info is None:
            return None
        start = entry.start or 0.0
        end = info.seconds if entry.end is None else min(entry.end, info.seconds)
        return max(0.0, end - start)

    @property
    def feature_defaults(self) -> FeatureDefaults:
        return FeatureDefaults(mean=None, std=None, target_frames=self.target_frames, freqm=self.freqm,
                               timem=self.timem)

    def clips(self) -> list[Clip]:
        """One :class:`Clip` per entry: a file clip, or for a segment or a channel a rendered one whose key holds
        the file's identity (resolved path, size, mtime) and the crop, so that the feature cache tells them apart."""
        clips = []
        for entry in self.entries:
            if not entry.cropped:
                clips.append(Clip(key=str(entry.file), label=entry.label, split=entry.split, path=entry.file))
                continue
            segment = Segment(entry.file, entry.start, entry.end, entry.channel)
            try:
                resolved = entry.file.resolve()
                st = resolved.stat()
            except OSError as err:
                raise DataError(f"{entry.file}: audio file not found or not accessible ({err})") from err
            key = (f"segment:{resolved}:{st.st_size}:{st.st_mtime_ns}:start={entry.start!r}:end={entry.end!r}:"
                   f"channel={entry.channel!r}")
            clips.append(Clip(key=key, label=entry.label, split=entry.split, render=segment))
        return clips

    def raise_problems(self) -> None:
        """A DataError listing the problems (the first :data:`LISTED_PROBLEMS`), if there are any."""
        if not self.problems:
            return
        shown = "\n".join(f"  - {p}" for p in self.problems[:LISTED_PROBLEMS])
        more = len(self.problems) - LISTED_PROBLEMS
        tail = f"\n  ... and {more} more" if more > 0 else ""
        raise DataError(
            f"{self.root}: {len(self.problems)} problem(s) in the {self.name} data:\n{shown}{tail}\n"
            f"(`ticl datasets inspect --source {self.name} --root {self.root} ...` lists them all)"
        )


# ---------------------------------------------------------------------------------------------------- splitting
def _targets(total: int, fractions: Mapping[str, float]) -> dict[str, int]:
    """Clip counts per split for a class of ``total`` clips: largest remainders, and at least one clip per split
    when the class has enough clips for that."""
    raw = {s: f * total for s, f in fractions.items()}
    counts = {s: int(v) for s, v in raw.items()}
    for s in sorted(raw, key=lambda s: counts[s] - raw[s])[: total - sum(counts.values())]:
        counts[s] += 1
    if total >= len(fractions):
        for s in fractions:
            if counts[s] == 0:
                donor = max(counts, key=lambda d: counts[d])
                counts[donor] -= 1
                counts[s] = 1
    return counts


def draw_splits(entries: Sequence[Entry], fractions: Mapping[str, float], seed: int) -> None:
    """Set each entry's split: a seeded draw stratified by class, whole groups at a time (see :meth:`Entry.
    split_key`), so that one group never spans two splits.

    Groups are shuffled with ``seed`` and taken largest first; each goes to the split where its classes lack most,
    relative to their targets there (``fractions`` of every class's clips, at least one per split where the class
    has enough), so that even a few large groups (speakers) reach every split.
    Without groups every clip is its own group and each class's counts hit the targets exactly. The draw does not
    depend on the run seed (the test set stays one across seeds) nor on which classes are later selected.
    """
    groups: dict[str, list[Entry]] = defaultdict(list)
    for entry in entries:
        groups[entry.split_key()].append(entry)
    per_class = Counter(e.label for e in entries)
    targets = {label: _targets(n, fractions) for label, n in per_class.items()}
    assigned: dict[str, Counter] = {s: Counter() for s in fractions}
    order = sorted(groups)
    random.Random(seed).shuffle(order)
    order.sort(key=lambda g: -len(groups[g]))
    for key in order:
        counts = Counter(e.label for e in groups[key])

        def need(split: str, counts: Counter = counts) -> float:
            """How much this group's classes still lack in ``split``, relative to their targets there."""
            return sum(n * (targets[c][split] - assigned[split][c]) / max(1, targets[c][split])
                       for c, n in counts.items())

        split = max(fractions, key=need)  # ties: the first in train, val, test order
        for entry in groups[key]:
            entry.split = split
        assigned[split].update(counts)


# --------------------------------------------------------------------------------------------------- the survey
def finish_survey(
    *,
    name: str,
    root: Path,
    entries: list[Entry],
    problems: list[str],
    how: str,
    available: list[str],
    order: str,
    class_where: Mapping[str, str],
    classes: Sequence[str] | None,
    fractions: Mapping[str, float] | None,
    split_seed: int,
    val_fraction: float | None,
    target_frames: int | None,
    freqm: int | None,
    timem: int | None,
    ignored: list[Path] | None = None,
) -> Survey:
    """Draw the missing splits, select the classes, check everything and read the headers (module docstring).

    ``entries`` are every listed clip; a None split means "draw it" (all or none of them). ``available`` is every
    class in its order; ``class_where`` names where each class comes from (a folder) for "empty class" messages.
    """
    split_seed = check_seed(split_seed)
    target_frames = _check_positive_int("target_frames", target_frames, 1)
    freqm = _check_positive_int("freqm", freqm, 0)
    timem = _check_positive_int("timem", timem, 0)
    drawn = [e for e in entries if e.split is None]
    if drawn:
        shares = check_fractions(fractions)
        draw_splits(drawn, shares, split_seed)
        grouped = any(e.group is not None for e in drawn)
        how += (f" (train {shares['train']:g} / val {shares['val']:g} / test {shares['test']:g}, split_seed "
                f"{split_seed}{', each group in one split' if grouped else ''})")
    elif fractions is not None:
        raise ConfigError(f"option 'fractions' is for a drawn split, but the splits here come from {how}")
    has_val = any(e.split == "val" for e in entries)
    if val_fraction is not None:
        if has_val:
            raise ConfigError(f"option 'val_fraction' carves a val split out of train where there is none, but "
                              f"{how} already gives one")
        if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 < val_fraction < 1:
            raise ConfigError(f"option 'val_fraction' must be a share between 0 and 1 (exclusive), got "
                              f"{val_fraction!r}")
        train = [e for e in entries if e.split == "train"]
        draw_splits(train, {"train": 1.0 - val_fraction, "val": float(val_fraction)}, split_seed)
        how += f"; val carved out of train (val_fraction {val_fraction:g}, split_seed {split_seed})"
    elif entries and not has_val:
        problems.append(f"{root}: no val split ({how} gives none); add one, or set val_fraction to carve it out "
                        "of train")

    selected = select_classes(available, classes, root, name, keep_order=True)
    if classes is not None:
        order = "as listed in the classes option"
    keep = set(selected)
    chosen = [e for e in entries if e.label in keep and e.split in SPLITS]
    _check_classes(selected, chosen, class_where, problems, has_val or val_fraction is not None)
    _check_groups(chosen, problems)
    _check_files(chosen, problems)
    info = _read_headers(chosen, problems)
    survey = Survey(name=name, root=root, how=how, order=order, classes=selected, entries=chosen, problems=problems,
                    info=info, ignored=list(ignored or []))
    if target_frames is not None:
        survey.target_frames, survey.frames_from = target_frames, "the target_frames option"
    else:
        lengths = [s for s in map(survey.seconds, chosen) if s is not None]
        if lengths:
            longest = max(lengths)
            frames = FbankSettings().num_frames(int(round(longest * FbankSettings().sample_rate)))
            survey.target_frames = max(1, min(MAX_TARGET_FRAMES, frames))
            capped = f", capped at {MAX_TARGET_FRAMES}" if frames > MAX_TARGET_FRAMES else ""
            survey.frames_from = f"the longest clip, {longest:.2f} s{capped}"
        else:
            survey.frames_from = f"no readable clip: {MAX_TARGET_FRAMES} until the problems are fixed"
    survey.freqm = AST_FREQM if freqm is None else freqm
    survey.timem = round(AST_TIMEM * survey.target_frames / AST_FRAMES) if timem is None else timem
    return survey


def _check_classes(classes: list[str], entries: list[Entry], class_where: Mapping[str, str], problems: list[str],
                   wants_val: bool) -> None:
    """Every selected class has clips, and clips in each split."""
    counts: dict[str, Counter] = defaultdict(Counter)
    for entry in entries:
        counts[entry.label][entry.split] += 1
    for label in classes:
        where = class_where.get(label, "")
        where = f" ({where})" if where else ""
        if not counts[label]:
            problems.append(f"class {label!r}{where} is empty: no clips in train, val or test")
            continue
        missing = [s for s in SPLITS if not counts[label][s] and (s != "val" or wants_val)]
        if missing:
            problems.append(f"class {label!r}{where} has no {' / '.join(missing)} clips (every class needs train, "
                            "val and test clips)")


def _check_groups(entries: list[Entry], problems: list[str]) -> None:
    """A group (the user's key, e.g. a speaker) in two splits leaks it from train into test."""
    seen: dict[str, dict[str, Entry]] = defaultdict(dict)
    for entry in entries:
        if entry.group is not None:
            seen[entry.group].setdefault(entry.split, entry)
    for group, by_split in seen.items():
        if len(by_split) > 1:
            where = "; ".join(f"{s}: {e.where}" for s, e in sorted(by_split.items(), key=lambda i: SPLITS.index(i[0])))
            problems.append(f"group {group!r} is in {len(by_split)} splits (e.g. {where}); one group must stay in "
                            "one split, or it leaks from train into test")


def _check_files(entries: list[Entry], problems: list[str]) -> None:
    """One file (whole, or segments of it) in two splits leaks the recording from train into test."""
    seen: dict[str, dict[str, Entry]] = {}
    for entry in entries:
        by_split = seen.setdefault(file_key(entry.file.as_posix()), {})
        if entry.split in by_split:
            continue
        by_split[entry.split] = entry
        if len(by_split) > 1:
            first = next(iter(by_split.values()))
            problems.append(f"{entry.file}: one file in two splits ({first.split}: {first.where}; {entry.split}: "
                            f"{entry.where}): test leakage")


def _read_headers(entries: list[Entry], problems: list[str]) -> dict[Path, AudioInfo]:
    """Each file's header (``soundfile.info``: nothing is decoded); unreadable or empty files, segments past the
    end and missing channels are problems naming the file (and the line that lists it)."""
    info: dict[Path, AudioInfo] = {}
    bad: set[Path] = set()
    for entry in entries:
        path = entry.file
        if path in bad:
            continue
        if path not in info:
            if not path.is_file():
                bad.add(path)
                problems.append(f"{entry.where}: {path} not found")
                continue
            try:
                header = sf.info(str(path))
            except Exception as err:  # noqa: BLE001 - any failure to read a header is this file's problem
                bad.add(path)
                problems.append(f"{path}: unreadable audio ({_reason(err)}); listed at {entry.where}")
                continue
            if header.frames <= 0 or header.samplerate <= 0:
                bad.add(path)
                problems.append(f"{path}: the audio holds no samples; listed at {entry.where}")
                continue
            info[path] = AudioInfo(header.frames / header.samplerate, int(header.samplerate), int(header.channels),
                                   f"{header.format} {header.subtype}")
        _check_segment(entry, info[path], problems)
    return info


def _reason(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return text or type(err).__name__


def _check_segment(entry: Entry, info: AudioInfo, problems: list[str]) -> None:
    at = f"{entry.where}: {entry.file.name}"
    if entry.start is not None and entry.start >= info.seconds:
        problems.append(f"{at}: the segment starts at {entry.start:g} s, but the file lasts {info.seconds:.3f} s")
    elif entry.end is not None and entry.end > info.seconds + END_TOLERANCE_S:
        problems.append(f"{at}: the segment ends at {entry.end:g} s, but the file lasts {info.seconds:.3f} s")
    if entry.channel is not None and entry.channel >= info.channels:
        problems.append(f"{at}: channel {entry.channel} (0-based) asked for, but the file has {info.channels} "
                        "channel(s)")


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


class SurveyedSource(ClipSource):
    """An own-data source: its survey (``survey_of(root, **options)``) checks the options, lists every problem and
    refuses the data if there is one, and then answers for the source."""

    #: the survey function of the layout (``survey_folder``, ``survey_csv``), a staticmethod in the subclass
    survey_of: Callable[..., Survey]

    def __init__(self, root: Path, **options) -> None:
        check_options(type(self).survey_of, options)
        self.survey = type(self).survey_of(root, **options)
        self.survey.raise_problems()
        self.root = self.survey.root

    @property
    def feature_defaults(self) -> FeatureDefaults:
        return self.survey.feature_defaults

    def classes(self) -> list[str]:
        return list(self.survey.classes)

    def clips(self) -> list[Clip]:
        return self.survey.clips()
