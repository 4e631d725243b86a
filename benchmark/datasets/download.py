"""Fetch ESC-50 and Speech Commands v0.02 from their official archives into the layouts the sources read.

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
from pathlib import Path
from typing import Optional

from tqdm.auto import tqdm

from benchmark.errors import DataError

__all__ = [
    "ESC50_URL",
    "SPEECHCOMMANDS_URL",
    "download_file",
    "extract_archive",
    "download_esc50",
    "download_speechcommands",
]

ESC50_URL = "https://github.com/karoldvl/ESC-50/archive/master.zip"
SPEECHCOMMANDS_URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
#: expected audio files after extraction (Speech Commands: utterances, not counting _background_noise_)
ESC50_WAV_COUNT = 2000
SPEECHCOMMANDS_WAV_COUNT = 105_829

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


def extract_archive(archive: Path, dest: Path) -> Path:
    """Extract a .zip or .tar(.gz/.bz2/.xz) archive into ``dest``, refusing members that escape ``dest``."""
    archive = Path(archive)
    dest = Path(dest)
    if not archive.is_file():
        raise DataError(f"{archive}: archive not found")
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for name in zf.namelist():
                    _check_member(root, name, archive)
                zf.extractall(root)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                members = tf.getmembers()
                for member in members:
                    _check_member(root, member.name, archive)
                    if not (member.isfile() or member.isdir()):
                        raise DataError(f"{archive}: archive member {member.name!r} is not a plain file or folder")
                tf.extractall(root, members=members, **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
        else:
            raise DataError(f"{archive}: not a zip or tar archive")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        raise DataError(f"{archive}: cannot extract the archive ({err}); delete it and download again") from err
    return dest


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
    staging = root / ".extract"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _extract_or_discard(archive, staging)
        found = sorted(staging.rglob("meta/esc50.csv"))
        if not found:
            raise DataError(f"{archive}: no meta/esc50.csv inside; delete it and download again")
        top = found[0].parent.parent
        for name in ("meta", "audio"):
            shutil.rmtree(root / name, ignore_errors=True)
            shutil.move(str(top / name), str(root / name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
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
    _extract_or_discard(archive, root)
    count = _count_wavs(root, "_background_noise_")
    if count != SPEECHCOMMANDS_WAV_COUNT:
        raise DataError(
            f"{root}: found {count} utterance wav files after extraction, expected {SPEECHCOMMANDS_WAV_COUNT}"
        )
    if not keep_archive:
        archive.unlink(missing_ok=True)
    return root


def _extract_or_discard(archive: Path, dest: Path) -> None:
    """Extract; a damaged archive is deleted so that the next call downloads it afresh."""
    try:
        extract_archive(archive, dest)
    except DataError:
        archive.unlink(missing_ok=True)
        raise
