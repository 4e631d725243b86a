"""Run-folder writing. Every file is written atomically (temp file + rename) so that an interrupted run never
leaves a truncated file that looks complete; ``summary.json`` is written last, only when a method finished.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from .errors import OutputError

log = logging.getLogger("ticl")

_UMASK = os.umask(0)
os.umask(_UMASK)


def _cannot_write(path: Path, exc: OSError) -> OutputError:
    reason = exc.strerror or type(exc).__name__
    return OutputError(f"cannot write {path}: {reason}{f' ({exc.filename})' if exc.filename else ''}; nothing was "
                       "written in its place (free space, fix the permissions, or choose another --out)")


def _atomic(path: Path, write: Callable[[Path], None]) -> Path:
    """Write through a temporary file in the same folder, renamed over ``path`` only once it is whole. A failure
    (a full disk, no permission, a file where a folder should be) is an :class:`OutputError` naming the path, and
    leaves no temporary file and no new ``path``."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; results are meant to be shared
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise _cannot_write(path, exc) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def check_output_dir(path: Path, option: str = "--out") -> Path:
    """Make sure results can go into the folder ``path`` before any work, creating nothing: it must not be a file,
    lie under a file, or sit where nothing can be written (the folder, or its nearest existing parent, is probed
    with a temporary file). The error names the option and the path."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise OutputError(f"{option} {path} is a file, not a folder; choose a folder for the results")
    existing = path
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{option} {path} lies under {existing}, which is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".write-probe.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(f"{option} {path}: cannot write in {existing} ({exc.strerror or type(exc).__name__}); "
                          "choose a folder you can write to") from None
    return path


def check_output_file(path: Path, option: str = "--out") -> Path:
    """The same before writing one file ``path``: it must not be a folder, and its folder must be writable."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option} {path} is a folder; give a file name (e.g. {path / 'table.md'})")
    check_output_dir(path.parent if str(path.parent) else Path("."), option)
    return path


def write_text(path: Path, text: str) -> Path:
    return _atomic(path, lambda tmp: tmp.write_text(text))


def write_json(path: Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def write_yaml(path: Path, data: Any) -> Path:
    return write_text(path, yaml.safe_dump(data, sort_keys=False))


def write_csv(path: Path, frame) -> Path:
    """Write a pandas DataFrame."""
    return _atomic(path, lambda tmp: frame.to_csv(tmp, index=False))


def save_torch(path: Path, obj: Any) -> Path:
    return _atomic(path, lambda tmp: torch.save(obj, tmp))


def save_figure(path: Path, fig) -> Path:
    return _atomic(path, lambda tmp: fig.savefig(tmp, format=path.suffix.lstrip("."), dpi=130, bbox_inches="tight"))


@dataclass(frozen=True)
class Provenance:
    """Which source produced a run: the commit, whether the work tree had local changes, and those changes."""

    commit: str
    dirty: bool
    #: ``git diff HEAD`` of tracked files plus the list of untracked source files, when dirty
    diff: str = ""


_SOURCE_DIRS = ("benchmark", "strategies", "models")


@functools.lru_cache(maxsize=4)
def provenance(root: Path | None = None) -> Provenance:
    """The source tree's commit (``+dirty`` appended when tracked files or untracked source files changed).

    A dirty run logs a warning and its folder gets ``source.diff``, so the numbers can be traced to the code that
    made them; ``ticl table`` flags dirty rows and tables that mix commits. Read once per process: the code a
    process runs is the code it imported when it started, whatever happens to the tree later.
    """
    root = Path(root) if root is not None else Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=20, check=True).stdout

    try:
        commit = git("rev-parse", "HEAD").strip()
        diff = git("diff", "HEAD")
        untracked = git("ls-files", "--others", "--exclude-standard", "--", *_SOURCE_DIRS).split()
    except (OSError, subprocess.SubprocessError):
        return Provenance("unknown", False)
    if not diff and not untracked:
        return Provenance(commit, False)
    text = diff + "".join(f"untracked source file: {path}\n" for path in untracked)
    log.warning("the source tree at %s has local changes: the run is marked dirty and keeps them in source.diff",
                commit[:12])
    return Provenance(commit + "+dirty", True, text)
