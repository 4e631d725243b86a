"""``ticl datasets inspect``: what an own-data source (``folder``, ``csv``) makes of a collection, before anything
trains.

It prints the classes in their order, clips per class and split, clip lengths, sample rates, channels and formats
(all from the files' headers: nothing is decoded), the feature length and SpecAugment widths the source will use,
and every problem found, rather than the first only. The exit status is 2 when there are problems, as a run would
refuse the data.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audio_ticl.benchmark.datasets.base import SPLITS
from audio_ticl.benchmark.datasets.csv_source import survey_csv
from audio_ticl.benchmark.datasets.folder import survey_folder
from audio_ticl.benchmark.datasets.own_data import Survey, check_options, median
from audio_ticl.benchmark.errors import ConfigError, OptionError

__all__ = ["SURVEYS", "inspect_data", "format_survey"]

#: source name -> the function that reads and checks its layout
SURVEYS: dict[str, Callable[..., Survey]] = {"folder": survey_folder, "csv": survey_csv}


def inspect_data(source: str, root: Path, options: dict[str, Any] | None = None) -> tuple[str, int]:
    """The report on ``root`` read as ``source`` with ``options`` (``data.options``), and the exit status: 0 when
    the data is fit to run, 2 when problems were found. Option errors raise (ConfigError, DataError)."""
    if source not in SURVEYS:
        raise ConfigError(f"ticl datasets inspect reads the own-data sources {', '.join(SURVEYS)}, not {source!r}")
    survey_fn = SURVEYS[source]
    options = dict(options or {})
    try:
        check_options(survey_fn, options)
    except TypeError as err:
        raise ConfigError(f"source {source!r}: {err}") from None
    survey = survey_fn(root, **options)
    return format_survey(survey), (2 if survey.problems else 0)


def _seconds(value: float) -> str:
    if value >= 3600:
        return f"{value / 3600:.1f} h"
    if value >= 60:
        return f"{value / 60:.1f} min"
    return f"{value:.2f} s"


def _counted(counter: Counter, unit: str = "") -> str:
    """``key: n files`` for each key, the most frequent first."""
    items = sorted(counter.items(), key=lambda i: (-i[1], str(i[0])))
    return ", ".join(f"{key}{unit}: {n} file{'s' if n != 1 else ''}" for key, n in items)


def format_survey(survey: Survey) -> str:
    """The report ``ticl datasets inspect`` prints."""
    lines = [f"source {survey.name}: {survey.root}", f"splits: {survey.how}",
             f"classes ({len(survey.classes)}, {survey.order}): {', '.join(survey.classes) or 'none'}"]
    counts: dict[str, Counter] = {label: Counter() for label in survey.classes}
    for entry in survey.entries:
        counts[entry.label][entry.split] += 1
    width = max([len("class"), len("total"), *(len(c) for c in survey.classes)])
    lines.append("")
    lines.append(f"{'class':<{width}}  " + "  ".join(f"{s:>6}" for s in SPLITS))
    for label in survey.classes:
        lines.append(f"{label:<{width}}  " + "  ".join(f"{counts[label][s]:>6}" for s in SPLITS))
    totals = Counter(e.split for e in survey.entries)
    lines.append(f"{'total':<{width}}  " + "  ".join(f"{totals[s]:>6}" for s in SPLITS))
    lines.append("")
    lengths: dict[str, list[float]] = {s: [] for s in SPLITS}
    for entry in survey.entries:
        seconds = survey.seconds(entry)
        if seconds is not None:
            lengths[entry.split].append(seconds)
    for split in SPLITS:
        values = lengths[split]
        if values:
            lines.append(f"{split} clip lengths: min {_seconds(min(values))}, median {_seconds(median(values))}, "
                         f"max {_seconds(max(values))}, total {_seconds(sum(values))}")
    files = {entry.file for entry in survey.entries}
    headers = [survey.info[f] for f in files if f in survey.info]
    if headers:
        lines.append(f"sample rates: {_counted(Counter(h.sample_rate for h in headers), ' Hz')}; all are "
                     "resampled to 16 kHz")
        lines.append(f"channels: {_counted(Counter(h.channels for h in headers))}; averaged to mono unless "
                     "a channel is named")
        lines.append(f"formats: {_counted(Counter(h.format for h in headers))}")
    segments = sum(1 for e in survey.entries if e.cropped)
    if segments:
        lines.append(f"segments: {segments} clips are a segment or one channel of their file")
    lines += survey.notes
    if survey.ignored:
        shown = ", ".join(p.name for p in survey.ignored[:3]) + (" ..." if len(survey.ignored) > 3 else "")
        lines.append(f"skipped: {len(survey.ignored)} files that are not audio by their extension ({shown})")
    lines.append(f"features: target_frames {survey.target_frames} ({survey.frames_from}), SpecAugment freqm "
                 f"{survey.freqm} / timem {survey.timem}; features.* keys override them")
    lines.append("normalisation: no published constants: mean and std are computed on the training split when a "
                 "run starts (and cached), unless features.mean and features.std are set")
    lines.append("")
    if survey.problems:
        lines.append(f"problems ({len(survey.problems)}): a run refuses this data until they are fixed")
        lines += [f"  - {problem}" for problem in survey.problems]
    else:
        lines.append("problems: none")
    return "\n".join(lines)


def parse_options(items: list[str]) -> dict[str, Any]:
    """``["key=value", ...]`` (``ticl datasets inspect -o``) as options; each value is parsed as YAML, as
    ``--set`` parses it."""
    import yaml

    options: dict[str, Any] = {}
    for item in items:
        key, eq, text = item.partition("=")
        key = key.strip()
        if not eq or not key:
            raise OptionError(f"--option expects KEY=VALUE, got {item!r}")
        try:
            options[key] = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise OptionError(f"--option {key}: {text!r} is not a YAML value ({' '.join(str(err).split())})") from None
    return options
