"""On-disk fbank cache and batch feature extraction.

Decoding + resampling + fbank costs tens of milliseconds per clip; every run and every strategy reads the same
features, so each clip's un-normalised fbank is stored once as ``root/<2 hex>/<sha1>.pt``. The key covers the
clip identity (file: resolved path, size and mtime_ns, so an edited file recomputes; generated clip: its key)
and :meth:`FbankSettings.cache_token`, so changing any feature setting recomputes too.

An entry is ``{"format": CACHE_FORMAT, "features": tensor, "crc32": crc of the tensor's bytes}``: ``torch.load``
does not notice flipped bytes inside a tensor, so the checksum is what turns a damaged-but-loadable entry into a
miss. Entries without it (the bare tensors of earlier versions), of another shape, or holding NaN/Inf are misses
too, and are rebuilt in place. Freshly computed features that are not finite are a DataError naming the clip.
"""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from audio_ticl.benchmark.audio.features import FbankSettings, features_of
from audio_ticl.benchmark.audio.io import load_audio, waveform_from_clip
from audio_ticl.benchmark.datasets.base import Clip
from audio_ticl.benchmark.errors import DataError
from audio_ticl.benchmark.parent_death import die_with_parent

__all__ = ["FeatureCache", "FeatureBatch", "compute_clip_features", "extract_features", "clip_identity"]

#: the layout of a cache entry; entries of another (or no) format are misses. 2: a dict with a crc32 of the features
CACHE_FORMAT = 2

#: below this many file misses, extraction stays in-process (a pool's start-up would cost more than it saves)
POOL_MIN_MISSES = 64


def clip_identity(clip: Clip) -> str:
    """What makes a clip's audio what it is: resolved path + size + mtime_ns for files, the key otherwise."""
    if clip.path is not None:
        path = Path(clip.path)
        try:
            resolved = path.resolve()
            st = resolved.stat()
        except OSError as err:
            raise DataError(f"{path}: audio file not found or not accessible ({err})") from err
        return f"file:{resolved}:{st.st_size}:{st.st_mtime_ns}"
    return f"generated:{clip.key}"


@contextmanager
def single_threaded() -> Iterator[None]:
    """Run torch on one thread for the duration.

    Per-clip resampling and fbank are too small to gain from intra-op threads, and on a busy 2-core machine
    they lose badly: measured here, resampling one 5 s ESC-50 clip took ~4 ms on one thread but ~150 ms on two
    while another process held a core (the OpenMP team waits for its starved thread).
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def compute_clip_features(clip: Clip, settings: FbankSettings) -> torch.Tensor:
    """Decode (or render) one clip and return its un-normalised fbank ``(target_frames, num_mel_bins)``."""
    origin = str(clip.path) if clip.path is not None else f"clip {clip.key!r}"
    return checked_features(features_of(waveform_from_clip(clip, settings.sample_rate), settings), origin, settings)


def checked_features(features: torch.Tensor, origin: str, settings: FbankSettings) -> torch.Tensor:
    """``features``, if every value is finite; else a DataError naming ``origin``, so that one clip's NaN cannot
    reach (and silently ruin) training. Finite audio can still overflow the power spectrum, e.g. float samples
    near float32's limit."""
    finite = torch.isfinite(features)
    if not bool(finite.all()):
        bad = int(finite.numel() - finite.sum())
        raise DataError(
            f"{origin}: {bad} of its {finite.numel()} {settings.kind} feature values are not finite (NaN or Inf); "
            "expected finite features (is the audio's scale sane?)"
        )
    return features


def _checksum(features: torch.Tensor) -> int:
    """CRC-32 of a contiguous float32 CPU tensor's bytes: cheap (far below the cost of loading the file)."""
    return zlib.crc32(features.numpy())


class FeatureCache:
    """One ``.pt`` file per (clip, settings) under ``root``; writes are atomic (temp file + ``os.replace``)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path_for(self, clip: Clip, settings: FbankSettings) -> Path:
        digest = hashlib.sha1(f"{clip_identity(clip)}|{settings.cache_token()}".encode()).hexdigest()
        return self.root / digest[:2] / f"{digest}.pt"

    def load(self, clip: Clip, settings: FbankSettings) -> torch.Tensor | None:
        """The cached features, or ``None`` if absent or unusable (a damaged entry is simply recomputed)."""
        return self._read(self.path_for(clip, settings), settings)

    def store(self, clip: Clip, settings: FbankSettings, features: torch.Tensor) -> None:
        self._write(self.path_for(clip, settings), features)

    def get_or_compute(self, clip: Clip, settings: FbankSettings) -> torch.Tensor:
        path = self.path_for(clip, settings)
        cached = self._read(path, settings)
        if cached is not None:
            return cached
        with single_threaded():
            features = compute_clip_features(clip, settings)
        self._write(path, features)
        return features

    @staticmethod
    def _read(path: Path, settings: FbankSettings) -> torch.Tensor | None:
        """The entry's features if it is whole: current format, expected shape, matching checksum, all finite."""
        if not path.is_file():
            return None
        try:
            entry = torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # damaged or foreign file: treat as a miss and overwrite it
            return None
        if not isinstance(entry, dict) or entry.get("format") != CACHE_FORMAT:
            return None  # an earlier version's bare tensor (never checksummed), or not an entry at all
        features, crc = entry.get("features"), entry.get("crc32")
        expected = (settings.target_frames, settings.feature_bins)
        if not isinstance(features, torch.Tensor) or tuple(features.shape) != expected:
            return None
        if features.dtype != torch.float32 or not features.is_contiguous() or _checksum(features) != crc:
            return None
        if not bool(torch.isfinite(features).all()):
            return None
        return features

    def _write(self, path: Path, features: torch.Tensor) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem[:8]}.", suffix=".tmp")
        except OSError as err:
            raise DataError(f"{self.root}: cannot write to the feature cache ({err})") from err
        try:
            with os.fdopen(fd, "wb") as handle:
                # clone: a cropped tensor is a view, and torch.save would otherwise store the whole storage
                stored = features.detach().to("cpu", torch.float32).contiguous().clone()
                torch.save({"format": CACHE_FORMAT, "features": stored, "crc32": _checksum(stored)}, handle)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


@dataclass
class FeatureBatch:
    """Stacked features ``(N, T, F)`` in clip order, plus how the cache fared and how long it took."""

    features: torch.Tensor
    hits: int
    misses: int
    seconds: float


def _worker_init(parent_pid: int | None) -> None:
    """Pool worker set-up: one thread (see single_threaded), and die with the parent.

    A worker blocked on the task queue never notices its parent's death (it holds the queue's pipe itself), so a
    SIGKILLed run would leave its workers behind for good. On Linux the kernel kills the worker when its parent
    dies (PR_SET_PDEATHSIG); elsewhere a daemon thread polls the parent pid. The check right after prctl covers
    a parent that died before it. ``parent_pid`` is the pid that forked the worker (None for other start methods,
    whose workers have a helper process as parent: the parent is then whichever process started this one).
    """
    torch.set_num_threads(1)
    die_with_parent(os.getppid() if parent_pid is None else parent_pid)


def _file_features_worker(path: str, settings: FbankSettings) -> np.ndarray:
    """Pool worker (top-level so it pickles): returns numpy, avoiding torch's fd-based tensor sharing.

    A DataError raised here (undecodable, truncated or non-finite audio) pickles by its message and is re-raised
    in the parent as the same DataError, naming the file.
    """
    features = features_of(load_audio(Path(path), settings.sample_rate), settings)
    return checked_features(features, path, settings).numpy()


def extract_features(
    clips: Sequence[Clip],
    settings: FbankSettings,
    cache: FeatureCache | None,
    progress: bool = True,
    desc: str = "features",
    pool_min_misses: int = POOL_MIN_MISSES,
) -> FeatureBatch:
    """Features of every clip, from ``cache`` where possible, computing (and caching) the rest.

    File clips that miss are computed in a process pool of ``min(2, cpu_count)`` workers once there are at least
    ``pool_min_misses`` of them; generated clips are always computed in-process, because their ``render``
    callables (closures, lambdas) need not pickle.
    """
    start = time.perf_counter()
    n = len(clips)
    out = torch.empty((n, settings.target_frames, settings.feature_bins), dtype=torch.float32)
    hits = 0
    misses: list[int] = []
    with single_threaded(), tqdm(total=n, desc=desc, disable=not progress, unit="clip", dynamic_ncols=True) as bar:
        for i, clip in enumerate(clips):
            cached = cache.load(clip, settings) if cache is not None else None
            if cached is None:
                misses.append(i)
                continue
            out[i] = cached
            hits += 1
            bar.update(1)
        bar.set_postfix(hits=hits, misses=len(misses))

        def finish(i: int, features: torch.Tensor) -> None:
            out[i] = features
            if cache is not None:
                cache.store(clips[i], settings, features)
            bar.update(1)

        file_misses = [i for i in misses if clips[i].path is not None]
        workers = min(2, os.cpu_count() or 1)
        pooled: set[int] = set()
        if workers > 1 and len(file_misses) >= pool_min_misses:
            pooled = _compute_in_pool(clips, file_misses, settings, workers, finish)
        for i in misses:
            if i not in pooled:
                finish(i, compute_clip_features(clips[i], settings))
    return FeatureBatch(out, hits=hits, misses=len(misses), seconds=time.perf_counter() - start)


def _compute_in_pool(clips: Sequence[Clip], indices: list[int], settings: FbankSettings, workers: int,
                     finish: Callable[[int, torch.Tensor], None]) -> set[int]:
    """Compute file clips in worker processes; returns the indices done (the rest fall back to in-process)."""
    done: set[int] = set()
    # fork (where available) needs no ``if __name__ == "__main__"`` guard in the caller's script
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    context = multiprocessing.get_context(method)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_init,
                               initargs=(os.getpid() if method == "fork" else None,))
    try:
        chunksize = max(1, min(32, len(indices) // (workers * 8)))
        paths = [str(clips[i].path) for i in indices]
        results = pool.map(_file_features_worker, paths, [settings] * len(paths), chunksize=chunksize)
        for i, array in zip(indices, results):
            finish(i, torch.from_numpy(array))
            done.add(i)
    except BrokenProcessPool:
        pass  # a worker died (e.g. killed for memory): finish the remaining clips in-process
    finally:
        # on an error (e.g. a DataError from a worker) do not wait for the clips still queued
        pool.shutdown(wait=True, cancel_futures=True)
    return done
