"""Tiny datasets in the official on-disk layouts, written with real (int16 PCM) wav files, for loader tests."""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

#: the shared real-audio folder every developer and CI run has beside the project (see its README)
SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
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
