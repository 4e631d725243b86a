"""AVE (Audio-Visual Event dataset, Tian et al. 2018) in its official layout, audio only.

The official release (``AVE_Dataset.zip``, linked from github.com/YapengTian/AVE-ECCV18; there is no stable
public download URL, so the suite cannot fetch it) unpacks to::

    AVE_Dataset/
      AVE/<VideoID>.mp4            4143 ten-second videos, 28 event categories
      Annotations.txt              Category&VideoID&Quality&StartTime&EndTime  (header line first)
      trainSet.txt valSet.txt testSet.txt   the same fields, one video per line (3339 / 402 / 402)

``soundfile`` cannot decode mp4, so the audio must be extracted once, next to the videos, as
``AVE_Dataset/audio/<VideoID>.wav`` (any sample rate; the feature pipeline resamples to 16 kHz)::

    mkdir -p AVE_Dataset/audio
    for f in AVE_Dataset/AVE/*.mp4; do
      ffmpeg -nostdin -loglevel error -i "$f" -vn -ac 1 -ar 16000 "AVE_Dataset/audio/$(basename "$f" .mp4).wav"
    done

The label of a clip is its video's category (the whole 10 s clip, as in AI-CL's classification use of AVE).
The official validation list is the validation split, so epochs are never chosen on the test set.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from audio_ticl.benchmark.datasets.base import (
    METADATA_ENCODING,
    Clip,
    ClipSource,
    FeatureDefaults,
    listed_file,
    reject_listed_twice,
    select_classes,
)
from audio_ticl.benchmark.datasets.esc50 import ESC50_DEFAULTS
from audio_ticl.benchmark.errors import DataError

__all__ = ["AVESource", "AVE_DEFAULTS", "SPLIT_FILES", "EXTRACT_HINT"]

# AVE has no published AST fbank statistics. Its clips are 10 s of mixed everyday sound, closest to ESC-50, so
# it borrows ESC-50's mean/std and SpecAugment widths; 1006 frames is AI-CL's input length (10 s, padded).
AVE_DEFAULTS = FeatureDefaults(
    mean=ESC50_DEFAULTS.mean, std=ESC50_DEFAULTS.std, target_frames=1006, freqm=ESC50_DEFAULTS.freqm, timem=192
)

SPLIT_FILES = {"train": "trainSet.txt", "val": "valSet.txt", "test": "testSet.txt"}
DATASET_DIR = "AVE_Dataset"
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
EXTRACT_HINT = (
    "extract the audio of AVE/<VideoID>.mp4 to audio/<VideoID>.wav first, e.g. "
    'for f in AVE/*.mp4; do ffmpeg -nostdin -i "$f" -vn -ac 1 -ar 16000 "audio/$(basename "$f" .mp4).wav"; done'
)


@dataclass(frozen=True)
class _Entry:
    category: str
    video_id: str
    split: str
    where: str  # "trainSet.txt:12", for error messages


class AVESource(ClipSource):
    """AVE clips in the official train / val / test lists; ``classes`` optionally keeps some categories."""

    name = "ave"
    nominal_seconds = 10.0  # 10-second videos (Tian et al. 2018)

    def __init__(self, root: Path, classes: Sequence[str] | None = None) -> None:
        self.root = self._dataset_root(Path(root))
        self.audio_dir = self.root / "audio"
        self._entries = [e for split in SPLIT_FILES for e in self._read_list(split)]
        self._check_disjoint(self._entries)
        self._classes = select_classes(sorted({e.category for e in self._entries}), classes, self.root, "AVE")

    @property
    def feature_defaults(self) -> FeatureDefaults:
        return AVE_DEFAULTS

    def classes(self) -> list[str]:
        return list(self._classes)

    def clips(self) -> list[Clip]:
        if not self.audio_dir.is_dir():
            raise DataError(f"{self.audio_dir}: AVE audio folder not found; {EXTRACT_HINT}")
        selected = set(self._classes)
        clips = []
        for entry in self._entries:
            if entry.category not in selected:
                continue
            path = self._audio_path(entry)
            clips.append(Clip(key=str(path.resolve()), label=entry.category, split=entry.split, path=path))
        return clips

    # --------------------------------------------------------------------------------------------- parsing
    @staticmethod
    def _dataset_root(root: Path) -> Path:
        for candidate in (root, root / DATASET_DIR):
            if (candidate / SPLIT_FILES["train"]).is_file():
                return candidate
        if not root.is_dir():
            raise DataError(f"{root}: AVE root folder not found (expected {DATASET_DIR}/ with trainSet.txt in it)")
        raise DataError(
            f"{root}: not an AVE folder (expected trainSet.txt, valSet.txt, testSet.txt and audio/ in it or in "
            f"{DATASET_DIR}/)"
        )

    def _read_list(self, split: str) -> list[_Entry]:
        path = self.root / SPLIT_FILES[split]
        if not path.is_file():
            raise DataError(f"{path}: AVE split list not found (expected Category&VideoID&Quality&Start&End lines)")
        entries = []
        for number, raw in enumerate(path.read_text(encoding=METADATA_ENCODING).splitlines(), start=1):
            line = raw.strip()
            if not line or line.lower().startswith("category&"):
                continue  # blank line or the header that Annotations.txt (and some copies of the lists) carry
            fields = line.split("&")
            if len(fields) < 2 or not fields[0] or not fields[1]:
                raise DataError(
                    f"{path}:{number}: expected 'Category&VideoID&Quality&StartTime&EndTime', got {line!r}"
                )
            entries.append(_Entry(fields[0].strip(), fields[1].strip(), split, f"{path.name}:{number}"))
        if not entries:
            raise DataError(f"{path}: AVE split list is empty")
        return entries

    @staticmethod
    def _check_disjoint(entries: list[_Entry]) -> None:
        """Each video in one list, once: in two lists it is test leakage, twice in one it counts twice."""
        reject_listed_twice(((e.video_id, e.where, f"the {e.split} split") for e in entries), "AVE video ")

    def _audio_path(self, entry: _Entry) -> Path:
        for suffix in AUDIO_SUFFIXES:
            path = listed_file(self.audio_dir / f"{entry.video_id}{suffix}")  # .WAV as well as .wav
            if path.is_file():
                return path
        video = self.root / "AVE" / f"{entry.video_id}.mp4"
        hint = f"; {EXTRACT_HINT}" if video.is_file() else ""
        raise DataError(
            f"{self.audio_dir / (entry.video_id + '.wav')}: audio of {entry.where} not found "
            f"(expected one of {', '.join(AUDIO_SUFFIXES)}){hint}"
        )
