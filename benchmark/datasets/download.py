"""Fetch ESC-50, Speech Commands v0.02 and UrbanSound8K from their official archives into the layouts the sources read.

Downloads go to ``<archive>.part`` and resume with an HTTP Range request, so an interrupted 2.3 GB Speech
Commands download is not started over. Archives are extracted with path-traversal checks, and the result is
checked by counting audio files before it is used.
"""
from __future__ import annotations

import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from tqdm.auto import tqdm

from audio_ticl.benchmark.errors import DataError

__all__ = [
    "ESC50_URL",
    "SPEECHCOMMANDS_URL",
    "download_file",
    "extract_archive",
    "download_esc50",
    "download_speechcommands",
    "download_urbansound8k",
    "DatasetDownload",
    "DOWNLOADS",
    "URBANSOUND8K_URL",
    "dataset_url",
    "download_dataset",
]

ESC50_URL = "https://github.com/karolpiczak/ESC-50/archive/master.zip"
SPEECHCOMMANDS_URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
#: the dataset authors' Zenodo record (no login needed)
URBANSOUND8K_URL = "https://zenodo.org/records/1203745/files/UrbanSound8K.tar.gz"
#: expected audio files after extraction (Speech Commands: utterances, not counting _background_noise_)
ESC50_WAV_COUNT = 2000
SPEECHCOMMANDS_WAV_COUNT = 105_829
URBANSOUND8K_WAV_COUNT = 8732

_CHUNK = 1 << 20
_TIMEOUT_S = 60


def download_file(url: str, dest: Path, progress: bool = True, manual_hint: str = "") -> Path:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming a partial ``.part`` with a Range request."""
    dest = Path(dest)
    if dest.is_file():
        return dest
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "audio-ticl"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=_TIMEOUT_S)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # nothing left past our offset: the .part file is complete
            part.replace(dest)
            return dest
        raise DataError(f"could not download {url} (HTTP {err.code} {err.reason}).{manual_hint}") from err
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        raise DataError(f"could not reach {url} ({reason}).{manual_hint}") from err
    with response:
        status = getattr(response, "status", None) or response.getcode()
        resumed = offset > 0 and status == 206
        if not resumed:
            offset = 0  # the server ignored the Range header: start over
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length and length.isdigit() else None
        try:
            with part.open("ab" if resumed else "wb") as handle, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                desc=dest.name, disable=not progress,
            ) as bar:
                while True:
                    chunk = response.read(_CHUNK)
                    if not chunk:
                        break
                    handle.write(chunk)
                    bar.update(len(chunk))
        except (urllib.error.URLError, OSError) as err:
            raise DataError(
                f"download of {url} was interrupted ({err}); run again to resume from {part}.{manual_hint}"
            ) from err
    if total is not None and part.stat().st_size != total:
        raise DataError(
            f"download of {url} stopped at {part.stat().st_size} of {total} bytes; run again to resume from {part}"
        )
    part.replace(dest)
    return dest


def _check_member(dest: Path, name: str, archive: Path) -> None:
    target = (dest / name).resolve()
    if target != dest and dest not in target.parents:
        raise DataError(f"{archive}: archive member {name!r} would be written outside {dest}")


def extract_archive(archive: Path, dest: Path, progress: bool = False) -> Path:
    """Extract a .zip or .tar(.gz/.bz2/.xz) archive into ``dest``, refusing members that escape ``dest``.

    ``progress`` shows a bar over the archive members: extracting the multi-GB archives takes minutes.
    """
    archive = Path(archive)
    dest = Path(dest)
    if not archive.is_file():
        raise DataError(f"{archive}: archive not found")
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                names = zf.namelist()
                for name in names:
                    _check_member(root, name, archive)
                zf.extractall(root, members=_bar(names, archive, progress))
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                members = tf.getmembers()
                for member in members:
                    _check_member(root, member.name, archive)
                    if not (member.isfile() or member.isdir()):
                        raise DataError(f"{archive}: archive member {member.name!r} is not a plain file or folder")
                tf.extractall(root, members=_bar(members, archive, progress),
                              **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        else:
            raise DataError(f"{archive}: not a zip or tar archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        raise DataError(f"{archive}: cannot extract the archive ({err}); delete it and download again") from err
    return dest


def _bar(items: list, archive: Path, progress: bool):
    """``items`` wrapped in a tqdm bar (extractall accepts any iterable of members)."""
    return tqdm(items, desc=f"extract {archive.name}", unit="file", disable=not progress)


def _count_wavs(folder: Path, exclude: Optional[str] = None) -> int:
    return sum(1 for p in folder.rglob("*.wav") if exclude is None or exclude not in p.parts)


def _esc50_hint(root: Path) -> str:
    return (
        f" Place ESC-50 by hand: download {ESC50_URL} elsewhere, unzip it and move its meta/ and audio/ folders "
        f"into {root} (so that {root / 'meta' / 'esc50.csv'} exists)."
    )


def download_esc50(root: Path, progress: bool = True, keep_archive: bool = False) -> Path:
    """Download ESC-50 into ``root`` (``root/meta/esc50.csv``, ``root/audio/*.wav``); a no-op if complete."""
    root = Path(root)
    csv_path = root / "meta" / "esc50.csv"
    if csv_path.is_file() and (root / "audio").is_dir() and _count_wavs(root / "audio") == ESC50_WAV_COUNT:
        return root
    root.mkdir(parents=True, exist_ok=True)
    archive = download_file(ESC50_URL, root / "ESC-50-master.zip", progress, _esc50_hint(root))
    _install_from_archive(archive, root, Path("meta") / "esc50.csv", ("meta", "audio"), progress)
    count = _count_wavs(root / "audio")
    if count != ESC50_WAV_COUNT:
        raise DataError(f"{root / 'audio'}: found {count} wav files after extraction, expected {ESC50_WAV_COUNT}")
    if not keep_archive:
        archive.unlink(missing_ok=True)
    return root


def _speechcommands_hint(root: Path) -> str:
    return (
        f" Place Speech Commands by hand: download {SPEECHCOMMANDS_URL} elsewhere and extract it into {root} "
        f"(so that {root / 'validation_list.txt'} and {root / 'yes'} exist)."
    )


def download_speechcommands(root: Path, progress: bool = True, keep_archive: bool = False) -> Path:
    """Download Speech Commands v0.02 into ``root`` (official layout, extracted in place); a no-op if complete."""
    root = Path(root)
    if (root / "testing_list.txt").is_file() and _count_wavs(root, "_background_noise_") == SPEECHCOMMANDS_WAV_COUNT:
        return root
    root.mkdir(parents=True, exist_ok=True)
    archive = download_file(
        SPEECHCOMMANDS_URL, root / "speech_commands_v0.02.tar.gz", progress, _speechcommands_hint(root)
    )
    _extract_or_discard(archive, root, progress)
    count = _count_wavs(root, "_background_noise_")
    if count != SPEECHCOMMANDS_WAV_COUNT:
        raise DataError(
            f"{root}: found {count} utterance wav files after extraction, expected {SPEECHCOMMANDS_WAV_COUNT}"
        )
    if not keep_archive:
        archive.unlink(missing_ok=True)
    return root


def _urbansound8k_hint(root: Path) -> str:
    return (
        f" Place UrbanSound8K by hand: download {URBANSOUND8K_URL} elsewhere (the Zenodo record 1203745), extract "
        f"it and move the audio/ and metadata/ folders of its UrbanSound8K/ folder into {root} (so that "
        f"{root / 'metadata' / 'UrbanSound8K.csv'} and {root / 'audio' / 'fold1'} exist); extracting the whole "
        f"archive into {root} works too."
    )


def _urbansound8k_wavs(folder: Path) -> Optional[int]:
    """The number of wav files under ``folder/audio`` if ``folder`` holds the metadata csv, else ``None``."""
    if not (folder / "metadata" / "UrbanSound8K.csv").is_file() or not (folder / "audio").is_dir():
        return None
    return _count_wavs(folder / "audio")


def _csv_rows(csv_path: Path) -> int:
    with csv_path.open(newline="", encoding="utf-8", errors="replace") as handle:
        return max(sum(1 for line in handle if line.strip()) - 1, 0)


def download_urbansound8k(root: Path, progress: bool = True, keep_archive: bool = False) -> Path:
    """Download UrbanSound8K into ``root`` (``root/metadata/UrbanSound8K.csv``, ``root/audio/fold1..10``).

    A no-op when ``root`` (or ``root/UrbanSound8K``, where the archive extracts by itself) is already complete;
    returns the dataset folder. The archive's top ``UrbanSound8K/`` folder is flattened away so that ``root`` is
    the dataset root like for the other datasets (the source accepts either).
    """
    root = Path(root)
    for folder in (root, root / "UrbanSound8K"):
        if _urbansound8k_wavs(folder) == URBANSOUND8K_WAV_COUNT:
            return folder
    root.mkdir(parents=True, exist_ok=True)
    archive = download_file(URBANSOUND8K_URL, root / "UrbanSound8K.tar.gz", progress, _urbansound8k_hint(root))
    # keeps the README and FREESOUNDCREDITS.txt beside the data: they carry the licence attribution
    _install_from_archive(
        archive, root, Path("metadata") / "UrbanSound8K.csv", ("metadata", "audio"), progress, keep_glob="*.txt"
    )
    count = _urbansound8k_wavs(root) or 0
    rows = _csv_rows(root / "metadata" / "UrbanSound8K.csv")
    if count != URBANSOUND8K_WAV_COUNT or rows != URBANSOUND8K_WAV_COUNT:
        raise DataError(
            f"{root}: found {count} wav files in audio/ and {rows} rows in metadata/UrbanSound8K.csv after "
            f"extraction, expected {URBANSOUND8K_WAV_COUNT} of each; {archive} may be damaged or not the official "
            "archive: delete it and run again"
        )
    if not keep_archive:
        archive.unlink(missing_ok=True)
    return root


def _install_from_archive(
    archive: Path, root: Path, marker: Path, folders: tuple[str, ...], progress: bool, keep_glob: str = ""
) -> None:
    """Extract ``archive`` into a staging folder and move its dataset ``folders`` into ``root``.

    The dataset's top folder inside the archive (e.g. ``ESC-50-master/``) is found through ``marker``, a file
    only the official archive has, so ``root`` itself becomes the dataset root whatever the archive's prefix.
    An archive without ``marker`` and the folders is deleted, so that the next call downloads it afresh.
    """
    staging = root / ".extract"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _extract_or_discard(archive, staging, progress)
        found = sorted(staging.rglob(marker.as_posix()))
        top = found[0].parents[len(marker.parts) - 1] if found else staging
        if not found or not all((top / name).is_dir() for name in folders):
            archive.unlink(missing_ok=True)
            raise DataError(
                f"{archive}: not the official archive (expected {marker.as_posix()} and the folders "
                f"{', '.join(name + '/' for name in folders)} inside); deleted it, run again to download it afresh"
            )
        for name in folders:
            shutil.rmtree(root / name, ignore_errors=True)
            shutil.move(str(top / name), str(root / name))
        for extra in top.glob(keep_glob) if keep_glob else ():
            extra.replace(root / extra.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _extract_or_discard(archive: Path, dest: Path, progress: bool = False) -> None:
    """Extract; a damaged archive is deleted so that the next call downloads it afresh."""
    try:
        extract_archive(archive, dest, progress)
    except DataError:
        archive.unlink(missing_ok=True)
        raise


# -- registry for `ticl datasets` ------------------------------------------------------------------------------


def dataset_url(name: str) -> str:
    """The official archive URL of ``name``, read when called so that a patched constant (tests, mirrors) is seen."""
    urls = {"esc50": ESC50_URL, "speechcommands": SPEECHCOMMANDS_URL, "urbansound8k": URBANSOUND8K_URL}
    if name not in urls:
        raise DataError(f"no download for dataset {name!r}; available: {', '.join(urls)}")
    return urls[name]


@dataclass(frozen=True)
class DatasetDownload:
    """What ``ticl datasets list`` shows and ``ticl datasets download`` runs for one dataset."""

    name: str
    title: str
    #: the archive's approximate size, for the listing
    size: str
    #: the layout written under ``--root`` (what the source of the same name reads)
    layout: str
    license: str
    fetch: Callable[..., Path]

    @property
    def url(self) -> str:
        return dataset_url(self.name)


#: downloadable datasets by their source name (FSDD and synthetic need no download here)
DOWNLOADS: dict[str, DatasetDownload] = {
    "esc50": DatasetDownload(
        "esc50", "ESC-50 (GitHub archive of karolpiczak/ESC-50)", "~0.6 GB",
        f"ROOT/meta/esc50.csv, ROOT/audio/*.wav ({ESC50_WAV_COUNT} clips, 5 folds)", "CC BY-NC 3.0",
        download_esc50,
    ),
    "speechcommands": DatasetDownload(
        "speechcommands", "Speech Commands v0.02", "~2.3 GB",
        f"ROOT/<word>/*.wav ({SPEECHCOMMANDS_WAV_COUNT} clips), ROOT/validation_list.txt, ROOT/testing_list.txt, "
        "ROOT/_background_noise_/", "CC BY 4.0",
        download_speechcommands,
    ),
    "urbansound8k": DatasetDownload(
        "urbansound8k", "UrbanSound8K (Zenodo record 1203745)", "~6 GB",
        f"ROOT/metadata/UrbanSound8K.csv, ROOT/audio/fold1..fold10/*.wav ({URBANSOUND8K_WAV_COUNT} clips)",
        "CC BY-NC (non-commercial use only)", download_urbansound8k,
    ),
}


def download_dataset(name: str, root: Path, progress: bool = True, keep_archive: bool = False) -> Path:
    """Download dataset ``name`` (a key of :data:`DOWNLOADS`) into ``root``; returns its dataset folder."""
    if name not in DOWNLOADS:
        raise DataError(f"no download for dataset {name!r}; available: {', '.join(DOWNLOADS)}")
    return DOWNLOADS[name].fetch(Path(root), progress=progress, keep_archive=keep_archive)
