"""Tiny datasets in the official on-disk layouts, written with real (int16 PCM) wav files, for loader tests."""
from __future__ import annotations

import csv
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

#: where the real-data tests look for data when ``TICL_TEST_DATA`` is not set: ``../shared/data`` beside the repository
DEFAULT_SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
#: the environment variable that points the real-data tests at another folder (one sub-folder per data set)
DATA_ENV = "TICL_TEST_DATA"


def shared_data_root() -> Path:
    """The folder of real data sets: ``$TICL_TEST_DATA`` if set, else ``../shared/data`` beside the repository."""
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else DEFAULT_SHARED_DATA


def shared_data(name: str) -> Path:
    """The real data set ``name`` (e.g. ``"esc50-subset"``, ``"fsdd"``); skips the calling test when it is absent.

    A clone without the shared data passes its tests with skips that say where the data was looked for and how to
    point the tests at a copy, instead of failing on a missing path.
    """
    path = shared_data_root() / name
    if not path.is_dir():
        pytest.skip(f"real data {name!r} not found at {path} (set {DATA_ENV} to a folder holding {name}/)")
    return path


# Paths of the shared data sets, for code that needs a path without skipping (prefer shared_data in a test).
SHARED_DATA = shared_data_root()
ESC50_SUBSET = SHARED_DATA / "esc50-subset"
FSDD_ROOT = SHARED_DATA / "fsdd"


def tone(seconds: float, sample_rate: int, freq: float = 440.0, seed: int = 0, channels: int = 1) -> np.ndarray:
    """A sine plus a little noise, float32 in [-1, 1], shape ``(frames,)`` or ``(frames, channels)``."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    mono = 0.5 * np.sin(2 * np.pi * freq * t) + 0.05 * rng.standard_normal(t.shape)
    if channels == 1:
        return mono.astype(np.float32)
    return np.stack([mono * (c + 1) / channels for c in range(channels)], axis=1).astype(np.float32)


def write_wav(path: Path, samples: np.ndarray, sample_rate: int, subtype: str = "PCM_16") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), samples, sample_rate, subtype=subtype)
    return path


def _speaker_id(i: int) -> str:
    return hashlib.sha1(f"speaker{i}".encode()).hexdigest()[:8]


def make_speechcommands_fixture(root: Path, words: Sequence[str], speakers: int = 3, takes: int = 2) -> Path:
    """Speech Commands v0.02 layout: 1 s 16 kHz int16 clips, both list files and ``_background_noise_``.

    Speaker 0 goes to the test list, speaker 1 to the validation list, the rest are training (the official
    split is by speaker too).
    """
    root = Path(root)
    testing, validation = [], []
    for w, word in enumerate(words):
        for s in range(speakers):
            for n in range(takes):
                rel = f"{word}/{_speaker_id(s)}_nohash_{n}.wav"
                write_wav(root / rel, tone(1.0, 16000, 200.0 + 50 * w, seed=w * 100 + s * 10 + n), 16000)
                if s == 0:
                    testing.append(rel)
                elif s == 1:
                    validation.append(rel)
    write_wav(root / "_background_noise_" / "white_noise.wav", tone(2.0, 16000, 0.0, seed=1), 16000)
    (root / "testing_list.txt").write_text("".join(f"{r}\n" for r in testing))
    (root / "validation_list.txt").write_text("".join(f"{r}\n" for r in validation))
    return root


#: (target id, category) pairs used by default: one class from each of three ESC-50 groups
ESC50_FIXTURE_CLASSES = ((0, "dog"), (10, "rain"), (41, "chainsaw"))


def make_esc50_fixture(
    root: Path,
    classes: Sequence[tuple[int, str]] = ESC50_FIXTURE_CLASSES,
    clips_per_fold: int = 1,
    seconds: float = 0.5,
    sample_rate: int = 44100,
) -> Path:
    """ESC-50 layout: ``audio/{fold}-{src}-{take}-{target}.wav`` and ``meta/esc50.csv`` with official columns."""
    root = Path(root)
    rows = []
    for target, category in classes:
        for fold in range(1, 6):
            for k in range(clips_per_fold):
                src = 1000 + 100 * target + 10 * fold + k
                filename = f"{fold}-{src}-A-{target}.wav"
                samples = tone(seconds, sample_rate, 300.0 + 20 * target, seed=src)
                write_wav(root / "audio" / filename, samples, sample_rate)
                rows.append([filename, fold, target, category, "True", src, "A"])
    (root / "meta").mkdir(parents=True, exist_ok=True)
    with (root / "meta" / "esc50.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["filename", "fold", "target", "category", "esc10", "src_file", "take"])
        writer.writerows(sorted(rows))
    return root


#: (classID, class) pairs used by default: three of the ten official UrbanSound8K classes
URBANSOUND8K_FIXTURE_CLASSES = ((0, "air_conditioner"), (3, "dog_bark"), (6, "gun_shot"))
#: (sample rate, subtype, channels) cycled over the files: the real set mixes rates, bit depths and channel counts
URBANSOUND8K_FORMATS = ((44100, "PCM_16", 1), (22050, "PCM_24", 2), (48000, "FLOAT", 1), (8000, "PCM_U8", 2))


def make_urbansound8k_fixture(
    root: Path,
    classes: Sequence[tuple[int, str]] = URBANSOUND8K_FIXTURE_CLASSES,
    folds: Sequence[int] = tuple(range(1, 11)),
    clips_per_fold: int = 1,
    seconds: float = 0.3,
) -> Path:
    """UrbanSound8K layout in ``root`` (the ``UrbanSound8K`` folder) with the official csv columns.

    Files are ``audio/fold<N>/<fsID>-<classID>-<occurrence>-<slice>.wav``; formats vary as in the real set.
    """
    root = Path(root)
    rows = []
    n = 0
    for class_id, name in classes:
        for fold in folds:
            for k in range(clips_per_fold):
                fs_id = 90000 - 1000 * class_id + 10 * fold + k  # higher classIDs sort first by file name
                filename = f"{fs_id}-{class_id}-0-{k}.wav"
                sample_rate, subtype, channels = URBANSOUND8K_FORMATS[n % len(URBANSOUND8K_FORMATS)]
                n += 1
                samples = tone(seconds, sample_rate, 250.0 + 30 * class_id, seed=fs_id, channels=channels)
                write_wav(root / "audio" / f"fold{fold}" / filename, samples, sample_rate, subtype)
                rows.append([filename, fs_id, 0.0, seconds, 1 + k % 2, fold, class_id, name])
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    with (root / "metadata" / "UrbanSound8K.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"])
        writer.writerows(sorted(rows))  # sorted by file name, as in the official csv: not by classID
    return root


#: AVE categories used by default (three of the 28 official ones, with the official spelling)
AVE_FIXTURE_CLASSES = ("Church bell", "Dog", "Male speech, man speaking")


def make_ave_fixture(
    root: Path,
    classes: Sequence[str] = AVE_FIXTURE_CLASSES,
    per_split: tuple[int, int, int] = (2, 1, 1),
    seconds: float = 0.4,
    sample_rate: int = 16000,
    extract_audio: bool = True,
) -> Path:
    """AVE layout in ``root`` (the ``AVE_Dataset`` folder): ``Annotations.txt`` (with its header line), the three
    ``*Set.txt`` lists, an (empty) ``AVE/<VideoID>.mp4`` per video and, if ``extract_audio``, the extracted
    ``audio/<VideoID>.wav`` that the source reads."""
    root = Path(root)
    (root / "AVE").mkdir(parents=True, exist_ok=True)
    lines: dict[str, list[str]] = {"trainSet.txt": [], "valSet.txt": [], "testSet.txt": []}
    n = 0
    for c, category in enumerate(classes):
        for list_name, count in zip(lines, per_split):
            for _ in range(count):
                video_id = f"vid{n:07d}AB"[:11]
                n += 1
                lines[list_name].append(f"{category}&{video_id}&good&0&{int(seconds * 10)}")
                (root / "AVE" / f"{video_id}.mp4").write_bytes(b"")
                if extract_audio:
                    samples = tone(seconds, sample_rate, 200.0 + 90 * c, seed=n)
                    write_wav(root / "audio" / f"{video_id}.wav", samples, sample_rate)
    for list_name, entries in lines.items():
        (root / list_name).write_text("\n".join(entries) + "\n")
    every = [line for entries in lines.values() for line in entries]
    (root / "Annotations.txt").write_text("Category&VideoID&Quality&StartTime&EndTime\n" + "\n".join(every) + "\n")
    return root


#: the 35 words of Speech Commands V2 (v0.02)
SCV2_WORDS = (
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward", "four", "go", "happy",
    "house", "learn", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven", "sheila", "six", "stop",
    "three", "tree", "two", "up", "visual", "wow", "yes", "zero",
)


def make_fsdd_fixture(root: Path, digits: Sequence[int] = (0, 1, 2), speakers: Sequence[str] = ("george", "jackson"),
                      takes: Sequence[int] = (0, 1, 5, 6, 10, 11), seconds: float = 0.3) -> Path:
    """FSDD layout: ``recordings/{digit}_{speaker}_{take}.wav`` at 8 kHz (takes 0-4 are the official test takes)."""
    root = Path(root)
    for digit in digits:
        for s, speaker in enumerate(speakers):
            for take in takes:
                samples = tone(seconds, 8000, 300.0 + 60 * digit, seed=1000 * digit + 100 * s + take)
                write_wav(root / "recordings" / f"{digit}_{speaker}_{take}.wav", samples, 8000)
    return root


#: (extension, sample rate, subtype, channels) cycled over the files of the own-data fixtures: mixed formats and rates
OWN_DATA_FORMATS = ((".wav", 16000, "PCM_16", 1), (".flac", 22050, "PCM_16", 2), (".ogg", 44100, "VORBIS", 1),
                    (".wav", 8000, "PCM_U8", 2))
#: speakers of the own-data fixtures and the split each takes where the layout gives splits
OWN_DATA_SPEAKERS = {"ann": "train", "bob": "train", "cid": "val", "dan": "test"}


def make_folder_fixture(root: Path, classes: Sequence[str] = ("bird", "cat", "dog"), takes: int = 2,
                        split_folders: bool = False, seconds: float = 0.3) -> Path:
    """A class-per-folder tree: ``root/<class>/<speaker>_<take>.<ext>``, odd takes one folder deeper
    (``session1/``), formats and sample rates cycling through :data:`OWN_DATA_FORMATS`, plus text files that are
    not audio. With ``split_folders`` the tree is ``root/<split>/<class>/...``, each speaker in the split
    :data:`OWN_DATA_SPEAKERS` gives it. File names start with the speaker: ``group_pattern='^(?P<group>[a-z]+)_'``
    groups by speaker."""
    root = Path(root)
    n = 0
    for c, label in enumerate(classes):
        for speaker, split in OWN_DATA_SPEAKERS.items():
            for take in range(takes):
                ext, rate, subtype, channels = OWN_DATA_FORMATS[n % len(OWN_DATA_FORMATS)]
                n += 1
                folder = root / split if split_folders else root
                folder = folder / label / ("session1" if take % 2 else "")
                samples = tone(seconds, rate, 200.0 + 150 * c, seed=n, channels=channels)
                write_wav(folder / f"{speaker}_{take}{ext}", samples, rate, subtype)
        (root / (OWN_DATA_SPEAKERS["ann"] if split_folders else "") / label / "notes.txt").write_text("not audio\n")
    (root / "README.txt").write_text("a collection of tones\n")
    return root


#: the columns of the csv fixture
OWN_CSV_COLUMNS = ["path", "label", "split", "speaker", "start", "end", "channel"]


def make_csv_fixture(root: Path, classes: Sequence[str] = ("bird", "cat", "dog"), seconds: float = 1.2,
                     name: str = "clips.csv", delimiter: str = ",") -> Path:
    """A clip list ``root/<name>`` (columns :data:`OWN_CSV_COLUMNS`) over ``root/audio/<class>/<speaker>.wav``:
    one stereo 22.05 kHz recording per class and speaker, listed as two segments (0-0.5 s of channel 0, 0.5 s to
    the end of channel 1), plus a whole mono 16 kHz file ``<speaker>_short.flac``. Each speaker's rows take the
    split :data:`OWN_DATA_SPEAKERS` gives it. Returns the csv's path."""
    root = Path(root)
    rows = []
    for c, label in enumerate(classes):
        for s, (speaker, split) in enumerate(OWN_DATA_SPEAKERS.items()):
            long = f"audio/{label}/{speaker}.wav"
            write_wav(root / long, tone(seconds, 22050, 200.0 + 150 * c, seed=10 * c + s, channels=2), 22050)
            short = f"audio/{label}/{speaker}_short.flac"
            write_wav(root / short, tone(0.3, 16000, 220.0 + 150 * c, seed=100 + 10 * c + s), 16000)
            rows += [[long, label, split, speaker, "0", "0.5", "0"], [long, label, split, speaker, "0.5", "", "1"],
                     [short, label, split, speaker, "", "", ""]]
    path = root / name
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, delimiter=delimiter)
        writer.writerow(OWN_CSV_COLUMNS)
        writer.writerows(rows)
    return path
