"""The steps every dataset download shares: fetch with progress and resume, checksum, extract safely, install.

Downloads go to ``<archive>.part`` and resume with an HTTP Range request, so an interrupted 2.3 GB Speech Commands
download is not started over. Archives are extracted with path-traversal checks. An archive that fails its checksum,
cannot be extracted or is not the official one is deleted, so that the next run downloads it afresh.
:mod:`.download` describes each dataset with these steps.
"""
from __future__ import annotations

import hashlib
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from audio_ticl.benchmark.errors import DataError

__all__ = [
    "StagedInstall",
    "count_wavs",
    "download_file",
    "extract_archive",
    "extract_or_discard",
    "install_staged",
    "verify_checksum",
]

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


def verify_checksum(archive: Path, expected: tuple[str, str] | None, progress: bool = False) -> None:
    """Check ``archive`` against ``(algorithm, hex digest)``; a mismatch deletes it. ``None`` checks nothing.

    A resumed download glues two transfers together, and a mirror or proxy may serve something else: the
    digest catches both before minutes of extraction.
    """
    if expected is None:
        return
    algorithm, want = expected
    digest = hashlib.new(algorithm)
    try:
        with archive.open("rb") as handle, tqdm(
            total=archive.stat().st_size, unit="B", unit_scale=True, unit_divisor=1024,
            desc=f"check {archive.name}", disable=not progress,
        ) as bar:
            for chunk in iter(lambda: handle.read(_CHUNK), b""):
                digest.update(chunk)
                bar.update(len(chunk))
    except OSError as err:
        raise DataError(f"{archive}: cannot read the archive to check it ({err})") from err
    got = digest.hexdigest()
    if got != want.lower():
        archive.unlink(missing_ok=True)
        raise DataError(
            f"{archive}: {algorithm} {got} is not the official archive's ({want}); deleted it, run again to "
            "download it afresh"
        )


def _check_member(dest: Path, name: str, archive: Path) -> None:
    target = (dest / name).resolve()
    if target != dest and dest not in target.parents:
        raise DataError(f"{archive}: archive member {name!r} would be written outside {dest}")


def _bar(items: list, archive: Path, progress: bool) -> Iterable:
    """``items`` wrapped in a tqdm bar (extractall accepts any iterable of members)."""
    return tqdm(items, desc=f"extract {archive.name}", unit="file", disable=not progress)


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


def extract_or_discard(archive: Path, dest: Path, progress: bool = False) -> None:
    """Extract; a damaged archive is deleted so that the next call downloads it afresh."""
    try:
        extract_archive(archive, dest, progress)
    except DataError:
        archive.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class StagedInstall:
    """How to lift a dataset out of an archive that wraps it in a top folder (``ESC-50-master/``).

    ``marker`` is a file only the official archive has (relative to the dataset root); ``folders`` are moved into
    the user's root; files of the top folder matching ``keep_glob`` (licence, credits) are kept beside them.
    """

    marker: Path
    folders: tuple[str, ...]
    keep_glob: str = ""


def install_staged(archive: Path, root: Path, how: StagedInstall, progress: bool = False) -> None:
    """Extract ``archive`` into a staging folder and move its dataset folders into ``root``.

    The dataset's top folder inside the archive is found through the marker, so ``root`` itself becomes the dataset
    root whatever the archive's prefix. An archive without the marker and the folders is deleted, so that the next
    call downloads it afresh.
    """
    staging = root / ".extract"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        extract_or_discard(archive, staging, progress)
        found = sorted(staging.rglob(how.marker.as_posix()))
        top = found[0].parents[len(how.marker.parts) - 1] if found else staging
        if not found or not all((top / name).is_dir() for name in how.folders):
            archive.unlink(missing_ok=True)
            raise DataError(
                f"{archive}: not the official archive (expected {how.marker.as_posix()} and the folders "
                f"{', '.join(name + '/' for name in how.folders)} inside); deleted it, run again to download it afresh"
            )
        for name in how.folders:
            shutil.rmtree(root / name, ignore_errors=True)
            shutil.move(str(top / name), str(root / name))
        for extra in top.glob(how.keep_glob) if how.keep_glob else ():
            extra.replace(root / extra.name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def count_wavs(folder: Path, exclude: str | None = None) -> int:
    """Wav files (``.wav`` in any case) under ``folder`` (recursively), leaving out any path with a part named
    ``exclude``."""
    wavs = (p for p in folder.rglob("*") if p.suffix.lower() == ".wav")
    return sum(1 for p in wavs if exclude is None or exclude not in p.parts)
