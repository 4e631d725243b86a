"""Google Speech Commands v0.02 in the official layout: ``<word>/<speaker>_nohash_<n>.wav`` plus list files.

``validation_list.txt`` and ``testing_list.txt`` name the validation and test clips (relative paths such as
``right/bb05582b_nohash_3.wav``); every other clip is training. ``_background_noise_`` holds long noise
recordings, not utterances, and is never a class. A clip listed twice (in both lists, which would leak it into
the test set, or twice in one) is a DataError naming both lines; ``.WAV`` files count as ``.wav``.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from audio_ticl.benchmark.datasets.base import (
    METADATA_ENCODING,
    Clip,
    ClipSource,
    FeatureDefaults,
    audio_files,
    file_key,
    listed_file,
    reject_listed_twice,
    select_classes,
)
from audio_ticl.benchmark.errors import DataError

__all__ = ["SpeechCommandsSource", "SPEECHCOMMANDS_DEFAULTS", "COMMAND_WORDS", "BACKGROUND_NOISE"]

#: AST's Speech Commands V2 fbank statistics, length and SpecAugment widths (Gong et al. 2021, AST, and its public
#: recipe)
SPEECHCOMMANDS_DEFAULTS = FeatureDefaults(mean=-6.845978, std=5.5654526, target_frames=128, freqm=48, timem=48)

#: the ten command words of the classic 12-class (V2-12) task
COMMAND_WORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]

BACKGROUND_NOISE = "_background_noise_"
LIST_FILES = {"val": "validation_list.txt", "test": "testing_list.txt"}
#: the splits as named in messages
SPLIT_NAMES = {"val": "the validation split", "test": "the test split"}


class SpeechCommandsSource(ClipSource):
    """Speech Commands clips of ``words`` (default: every word folder present, sorted), official split."""

    name = "speechcommands"
    nominal_seconds = 1.0  # one-second utterances (Warden 2018)

    def __init__(self, root: Path, words: Sequence[str] | None = None) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(
                f"{self.root}: Speech Commands root folder not found "
                "(expected <word>/*.wav, validation_list.txt and testing_list.txt in it)"
            )
        self.available_words = sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))
        )
        self._words = self._select(words)
        self._split_of = self._read_lists()

    @property
    def feature_defaults(self) -> FeatureDefaults:
        return SPEECHCOMMANDS_DEFAULTS

    def classes(self) -> list[str]:
        return list(self._words)

    def clips(self) -> list[Clip]:
        root = self.root.resolve()
        clips = []
        for word in self._words:
            for path in audio_files(root / word, (".wav",)):
                split = self._split_of.get(file_key(f"{word}/{path.name}"), "train")
                clips.append(Clip(key=str(path), label=word, split=split, path=path))
        return clips

    def _select(self, words: Sequence[str] | None) -> list[str]:
        """The requested words in the order given (the order makes the tasks), or every word folder, sorted."""
        if words is None and not self.available_words:
            raise DataError(f"{self.root}: no word folders found (expected the Speech Commands layout)")
        return select_classes(self.available_words, words, self.root, "Speech Commands", keep_order=True,
                              hint=" (each class is a <word>/ folder of the root)")

    def _read_lists(self) -> dict[str, str]:
        """Map ``word/file.wav`` (extension in lower case) to "val"/"test" for the selected words; entries of other
        words are ignored. An entry in both lists, or twice in one, is a DataError naming both lines."""
        entries = [entry for split in LIST_FILES for entry in self._read_list(split)]
        reject_listed_twice(((key, where, SPLIT_NAMES[split]) for key, where, split in entries), f"{self.root}: ")
        return {key: split for key, _, split in entries}

    def _read_list(self, split: str) -> list[tuple[str, str, str]]:
        """``(word/file key, "list.txt, line N", split)`` of each entry of a selected word, each checked to exist."""
        name = LIST_FILES[split]
        list_path = self.root / name
        if not list_path.is_file():
            raise DataError(f"{list_path}: Speech Commands split list not found (expected the official {name})")
        try:
            lines = list_path.read_text(encoding=METADATA_ENCODING).splitlines()
        except (OSError, UnicodeDecodeError) as err:
            raise DataError(f"{list_path}: cannot read the split list ({err})") from err
        selected = set(self._words)
        entries = []
        for line_no, line in enumerate(lines, start=1):
            entry = line.strip().replace("\\", "/")
            if not entry:
                continue
            word, _, filename = entry.partition("/")
            if not filename or "/" in filename:
                raise DataError(f"{list_path}, line {line_no}: expected <word>/<file>.wav, got {entry!r}")
            if word not in selected:
                continue
            if not listed_file(self.root / word / filename).is_file():
                raise DataError(f"{list_path}, line {line_no}: {self.root / entry} not found")
            entries.append((file_key(entry), f"{name}, line {line_no}", split))
        return entries
