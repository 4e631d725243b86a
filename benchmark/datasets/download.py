"""Fetch ESC-50, Speech Commands v0.02 and UrbanSound8K from their official archives into the layouts the sources read.

Each dataset is one :class:`DatasetDownload`: where its archive is, its checksum, how it installs and what a
complete copy looks like. :meth:`DatasetDownload.fetch` runs the shared steps of :mod:`.archives` (download with
resume, checksum, extract, install, verify the layout by counting files) and does nothing when the copy is already
complete. URLs, checksums and counts are module constants read at call time, so tests and mirrors can patch them.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from audio_ticl.benchmark.datasets.archives import (
    StagedInstall,
    count_wavs,
    download_file,
    extract_archive,
    extract_or_discard,
    install_staged,
    verify_checksum,
)
from audio_ticl.benchmark.errors import DataError

__all__ = [
    "ESC50_URL",
    "SPEECHCOMMANDS_URL",
    "URBANSOUND8K_URL",
    "DatasetDownload",
    "DOWNLOADS",
    "dataset_checksum",
    "dataset_url",
    "download_dataset",
    "download_esc50",
    "download_file",
    "download_speechcommands",
    "download_urbansound8k",
    "extract_archive",
]

ESC50_URL = "https://github.com/karolpiczak/ESC-50/archive/master.zip"
SPEECHCOMMANDS_URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
#: the dataset authors' Zenodo record (no login needed)
URBANSOUND8K_URL = "https://zenodo.org/records/1203745/files/UrbanSound8K.tar.gz"

# Checksums of the official archives. ESC-50 has none: GitHub builds master.zip from a moving branch, so its bytes
# change with every commit (the file count below still verifies it).
#: the digest torchaudio checks this archive against (``torchaudio.datasets.speechcommands._CHECKSUMS``)
SPEECHCOMMANDS_SHA256 = "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58"
#: the md5 of the Zenodo record's UrbanSound8K.tar.gz, as ``soundata``'s urbansound8k loader checks it
URBANSOUND8K_MD5 = "9aa69802bbf37fb986f71ec1483a196e"

#: expected audio files after extraction (Speech Commands: utterances, not counting _background_noise_)
ESC50_WAV_COUNT = 2000
SPEECHCOMMANDS_WAV_COUNT = 105_829
URBANSOUND8K_WAV_COUNT = 8732

_BACKGROUND = "_background_noise_"
_US8K_CSV = Path("metadata") / "UrbanSound8K.csv"


def dataset_url(name: str) -> str:
    """The official archive URL of ``name``, read when called so that a patched constant (tests, mirrors) is seen."""
    urls = {"esc50": ESC50_URL, "speechcommands": SPEECHCOMMANDS_URL, "urbansound8k": URBANSOUND8K_URL}
    if name not in urls:
        raise DataError(f"no download for dataset {name!r}; available: {', '.join(urls)}")
    return urls[name]


def dataset_checksum(name: str) -> tuple[str, str] | None:
    """``(algorithm, hex digest)`` of ``name``'s official archive, or None where none is stable; read when called."""
    sums = {"speechcommands": ("sha256", SPEECHCOMMANDS_SHA256), "urbansound8k": ("md5", URBANSOUND8K_MD5)}
    checksum = sums.get(name)
    return checksum if checksum is not None and checksum[1] else None


# -- what a complete copy looks like: None when complete, else what is wrong ----------------------------------------

def _esc50_missing(folder: Path) -> str | None:
    if not (folder / "meta" / "esc50.csv").is_file() or not (folder / "audio").is_dir():
        return "meta/esc50.csv or audio/ is missing"
    count = count_wavs(folder / "audio")
    return None if count == ESC50_WAV_COUNT else f"found {count} wav files in audio/, expected {ESC50_WAV_COUNT}"


def _speechcommands_missing(folder: Path) -> str | None:
    if not (folder / "testing_list.txt").is_file():
        return "testing_list.txt is missing"
    count = count_wavs(folder, _BACKGROUND)
    if count == SPEECHCOMMANDS_WAV_COUNT:
        return None
    return f"found {count} utterance wav files (not counting {_BACKGROUND}/), expected {SPEECHCOMMANDS_WAV_COUNT}"


def _csv_rows(csv_path: Path) -> int:
    with csv_path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        return max(sum(1 for line in handle if line.strip()) - 1, 0)


def _urbansound8k_missing(folder: Path) -> str | None:
    if not (folder / _US8K_CSV).is_file() or not (folder / "audio").is_dir():
        return f"{_US8K_CSV.as_posix()} or audio/ is missing"
    count, rows = count_wavs(folder / "audio"), _csv_rows(folder / _US8K_CSV)
    if count == rows == URBANSOUND8K_WAV_COUNT:
        return None
    return (f"found {count} wav files in audio/ and {rows} rows in {_US8K_CSV.as_posix()}, expected "
            f"{URBANSOUND8K_WAV_COUNT} of each")


# -- how to place each dataset by hand (appended to network errors) -------------------------------------------------

def _esc50_hint(root: Path) -> str:
    return (
        f" Place ESC-50 by hand: download {ESC50_URL} elsewhere, unzip it and move its meta/ and audio/ folders "
        f"into {root} (so that {root / 'meta' / 'esc50.csv'} exists)."
    )


def _speechcommands_hint(root: Path) -> str:
    return (
        f" Place Speech Commands by hand: download {SPEECHCOMMANDS_URL} elsewhere and extract it into {root} "
        f"(so that {root / 'validation_list.txt'} and {root / 'yes'} exist)."
    )


def _urbansound8k_hint(root: Path) -> str:
    return (
        f" Place UrbanSound8K by hand: download {URBANSOUND8K_URL} elsewhere (the Zenodo record 1203745), extract "
        f"it and move the audio/ and metadata/ folders of its UrbanSound8K/ folder into {root} (so that "
        f"{root / _US8K_CSV} and {root / 'audio' / 'fold1'} exist); extracting the whole archive into {root} "
        "works too."
    )


@dataclass(frozen=True)
class DatasetDownload:
    """One downloadable dataset: what ``ticl datasets list`` shows and what ``ticl datasets download`` runs."""

    name: str
    title: str
    #: the archive's approximate size, for the listing
    size: str
    #: the layout written under ``--root`` (what the source of the same name reads)
    layout: str
    license: str
    #: the archive's file name under the root while it downloads (and after, with ``keep_archive``)
    archive: str
    #: what a folder lacks of a complete copy, or None when it is complete
    missing: Callable[[Path], str | None]
    #: how to place the dataset by hand, for network errors
    hint: Callable[[Path], str]
    #: how to lift the dataset out of the archive's top folder; None extracts the archive into the root as it is
    staged: StagedInstall | None = None
    #: subfolders of the root that may already hold a complete copy (where the archive extracts by itself)
    nested: tuple[str, ...] = ()

    @property
    def url(self) -> str:
        return dataset_url(self.name)

    def fetch(self, root: Path, progress: bool = True, keep_archive: bool = False) -> Path:
        """Download, check, extract and verify into ``root``; returns the dataset folder (a no-op if complete)."""
        root = Path(root)
        for folder in (root, *(root / name for name in self.nested)):
            if self.missing(folder) is None:
                return folder
        root.mkdir(parents=True, exist_ok=True)
        archive = download_file(self.url, root / self.archive, progress, self.hint(root))
        verify_checksum(archive, dataset_checksum(self.name), progress)
        if self.staged is None:
            extract_or_discard(archive, root, progress)
        else:
            install_staged(archive, root, self.staged, progress)
        problem = self.missing(root)
        if problem is not None:
            raise DataError(
                f"{root}: after extraction, {problem}; {archive} may be damaged or not the official archive: "
                "delete it and run again"
            )
        if not keep_archive:
            archive.unlink(missing_ok=True)
        return root


#: downloadable datasets by their source name (FSDD and synthetic need no download here)
DOWNLOADS: dict[str, DatasetDownload] = {
    "esc50": DatasetDownload(
        "esc50", "ESC-50 (GitHub archive of karolpiczak/ESC-50)", "~0.6 GB",
        f"ROOT/meta/esc50.csv, ROOT/audio/*.wav ({ESC50_WAV_COUNT} clips, 5 folds)", "CC BY-NC 3.0",
        archive="ESC-50-master.zip", missing=_esc50_missing, hint=_esc50_hint,
        staged=StagedInstall(Path("meta") / "esc50.csv", ("meta", "audio")),
    ),
    "speechcommands": DatasetDownload(
        "speechcommands", "Speech Commands v0.02", "~2.3 GB",
        f"ROOT/<word>/*.wav ({SPEECHCOMMANDS_WAV_COUNT} clips), ROOT/validation_list.txt, ROOT/testing_list.txt, "
        f"ROOT/{_BACKGROUND}/", "CC BY 4.0",
        archive="speech_commands_v0.02.tar.gz", missing=_speechcommands_missing, hint=_speechcommands_hint,
    ),
    "urbansound8k": DatasetDownload(
        "urbansound8k", "UrbanSound8K (Zenodo record 1203745)", "~6 GB",
        f"ROOT/metadata/UrbanSound8K.csv, ROOT/audio/fold1..fold10/*.wav ({URBANSOUND8K_WAV_COUNT} clips)",
        "CC BY-NC (non-commercial use only)",
        archive="UrbanSound8K.tar.gz", missing=_urbansound8k_missing, hint=_urbansound8k_hint,
        # keeps the README and FREESOUNDCREDITS.txt beside the data: they carry the licence attribution
        staged=StagedInstall(_US8K_CSV, ("metadata", "audio"), keep_glob="*.txt"), nested=("UrbanSound8K",),
    ),
}


def download_dataset(name: str, root: Path, progress: bool = True, keep_archive: bool = False) -> Path:
    """Download dataset ``name`` (a key of :data:`DOWNLOADS`) into ``root``; returns its dataset folder."""
    if name not in DOWNLOADS:
        raise DataError(f"no download for dataset {name!r}; available: {', '.join(DOWNLOADS)}")
    return DOWNLOADS[name].fetch(Path(root), progress=progress, keep_archive=keep_archive)


def download_esc50(root: Path, progress: bool = True, keep_archive: bool = False) -> Path:
    """Download ESC-50 into ``root`` (``root/meta/esc50.csv``, ``root/audio/*.wav``); a no-op if complete."""
    return download_dataset("esc50", root, progress, keep_archive)


def download_speechcommands(root: Path, progress: bool = True, keep_archive: bool = False) -> Path:
    """Download Speech Commands v0.02 into ``root`` (official layout, extracted in place); a no-op if complete."""
    return download_dataset("speechcommands", root, progress, keep_archive)


def download_urbansound8k(root: Path, progress: bool = True, keep_archive: bool = False) -> Path:
    """Download UrbanSound8K into ``root`` (``root/metadata/UrbanSound8K.csv``, ``root/audio/fold1..10``).

    A no-op when ``root`` (or ``root/UrbanSound8K``, where the archive extracts by itself) is already complete;
    returns the dataset folder. The archive's top ``UrbanSound8K/`` folder is flattened away so that ``root`` is
    the dataset root like for the other datasets (the source accepts either).
    """
    return download_dataset("urbansound8k", root, progress, keep_archive)
