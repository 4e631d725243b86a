"""Task checkpoints: one explicit schema, written atomically after every task, read back with ``weights_only=True``.

A method folder's ``checkpoints/task_NN.pt`` holds a :class:`Checkpoint` as a plain mapping: the model's
``state_dict``, the tasks it has heads for, the run's progress (:class:`RunProgress`, the accuracy rows and
records so far), the strategy's cross-task state (``TICLStrategy.cl_state``: named tensors and plain values, never
pickled objects), the three RNG states and the resolved config. ``torch.load(weights_only=True)`` never runs code
from a file, so every value is a tensor, a number, a string or a list / tuple / dict of them; the RNG states are
converted to such values on the way out and back on the way in.

``ticl run --resume`` restores the latest checkpoint of an unfinished method: the model (after re-creating its
heads), the progress, the RNG states and, once the strategy is built, its state. The runner restores them in the
order the uninterrupted run produced them, so the resumed run gives the same numbers.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import pickle
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import CheckpointError
from .results import save_torch

log = logging.getLogger("ticl")

#: bump when a field changes meaning; a checkpoint of another version is refused with a clear message
FORMAT_VERSION = 2


@dataclass
class RunProgress:
    """What a run has produced so far: enough to restart after its last finished task."""

    #: accuracy rows R[i] so far
    R: list = field(default_factory=list)
    #: per-clip outcomes behind each cell of R
    correct: list = field(default_factory=list)
    #: one ``summary.TaskRecord`` (as a dict) per finished task
    per_task: list = field(default_factory=list)
    #: every Avalanche metric value so far (metrics.csv rows)
    metric_rows: list = field(default_factory=list)
    #: the epoch-selection plugin's history, keyed by task id as a string
    val_history: dict = field(default_factory=dict)
    val_loss_history: dict = field(default_factory=dict)
    best_epoch: dict = field(default_factory=dict)


@dataclass
class RNGStates:
    """torch's CPU generator, Python's ``random`` (A-GEM's memory sampling) and NumPy's legacy global generator."""

    torch: torch.Tensor
    #: ``random.getstate()``: (version, 625 ints, gauss_next)
    python: tuple
    #: ``np.random.get_state()`` with the key array as a list of ints
    numpy: dict

    @classmethod
    def capture(cls) -> RNGStates:
        name, keys, pos, has_gauss, cached = np.random.get_state()
        version, internal, gauss_next = random.getstate()
        return cls(
            torch=torch.get_rng_state(),
            python=(int(version), tuple(int(v) for v in internal), gauss_next),
            numpy={"bit_generator": str(name), "keys": [int(k) for k in keys], "pos": int(pos),
                   "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        )

    def restore(self) -> None:
        torch.set_rng_state(self.torch)
        version, internal, gauss_next = self.python
        random.setstate((int(version), tuple(int(v) for v in internal), gauss_next))
        n = self.numpy
        np.random.set_state((n["bit_generator"], np.asarray(n["keys"], dtype=np.uint32), int(n["pos"]),
                             int(n["has_gauss"]), float(n["cached_gaussian"])))

    def to_dict(self) -> dict:
        return {"torch": self.torch, "python": self.python, "numpy": self.numpy}


@dataclass
class Checkpoint:
    """The state of one method's run after a finished task (module docstring)."""

    #: ``model.state_dict()`` of the ``TaskIncrementalModel`` (every task's head and PET modules included)
    model: dict[str, torch.Tensor]
    #: ``[task id, number of classes]`` per finished task, in order: the heads to re-create before loading
    tasks: list[tuple[int, int]]
    progress: RunProgress
    #: ``TICLStrategy.cl_state()``: Avalanche's clock counters and the strategy's own named state
    strategy: dict[str, Any]
    rng: RNGStates
    #: the method's resolved config (``config.yaml``), to notice a resume under a different config
    config: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @classmethod
    def capture(
        cls, net: torch.nn.Module, tasks: list[tuple[int, int]], progress: RunProgress, strategy_state: dict,
        config: dict,
    ) -> Checkpoint:
        """The current state (RNG states taken now): call it once everything of the task is done."""
        return cls(
            model=net.state_dict(), tasks=[(int(t), int(n)) for t, n in tasks], progress=progress,
            strategy=strategy_state, rng=RNGStates.capture(), config=plain_config(config),
        )

    def to_dict(self) -> dict:
        """The file's content: plain values only (no dataclass, no pickled object)."""
        return {
            "format_version": self.format_version,
            "model": self.model,
            "tasks": [list(t) for t in self.tasks],
            "progress": dataclasses.asdict(self.progress),
            "strategy": self.strategy,
            "rng": self.rng.to_dict(),
            "config": self.config,
        }

    @classmethod
    def from_dict(cls, data: dict, where: str = "checkpoint") -> Checkpoint:
        version = data.get("format_version") if isinstance(data, dict) else None
        if version != FORMAT_VERSION:
            found = "no format version (an older audio-ticl)" if version is None else f"format {version}"
            raise CheckpointError(
                f"{where} has {found}; this version reads format {FORMAT_VERSION}. Finish that run with the version "
                "that started it, or rerun the method without --resume"
            )
        rng = data["rng"]
        return cls(
            model=data["model"], tasks=[(int(t), int(n)) for t, n in data["tasks"]],
            progress=RunProgress(**data["progress"]), strategy=data["strategy"],
            rng=RNGStates(torch=rng["torch"], python=tuple(rng["python"]), numpy=dict(rng["numpy"])),
            config=data.get("config", {}), format_version=version,
        )

    def restore_model(self, net, device: torch.device) -> None:
        """Re-create the checkpoint's task heads (and PET modules) on ``net``, load the weights, move it."""
        for task_id, n_classes in self.tasks:
            net.add_task(task_id, n_classes)
        net.load_state_dict(self.model)
        net.to(device)


class UnreadableCheckpoint(CheckpointError):
    """A checkpoint file that does not load at all (truncated, damaged), as opposed to one of another format."""


class Checkpointer:
    """The checkpoints of one method folder: ``checkpoints/task_NN.pt``, one per finished task."""

    def __init__(self, folder: Path) -> None:
        self.dir = Path(folder) / "checkpoints"

    def path(self, task_index: int) -> Path:
        return self.dir / f"task_{task_index:02d}.pt"

    def latest(self) -> Path | None:
        done = sorted(self.dir.glob("task_*.pt")) if self.dir.is_dir() else []
        return done[-1] if done else None

    def save(self, task_index: int, checkpoint: Checkpoint) -> Path:
        """Write atomically (temp file + rename): a killed run never leaves a truncated checkpoint."""
        from audio_ticl.strategies.state import check_plain

        content = checkpoint.to_dict()
        check_plain(content["strategy"], "strategy state")
        return save_torch(self.path(task_index), content)

    def load(self, path: Path) -> Checkpoint:
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            raise CheckpointError(
                f"checkpoint {path} holds objects other than tensors and plain values (an older audio-ticl pickled "
                "its strategy state), so it is not loaded: finish that run with the version that started it, or "
                f"rerun the method without --resume ({type(exc).__name__})"
            ) from None
        except (OSError, RuntimeError, EOFError) as exc:
            raise UnreadableCheckpoint(f"cannot read checkpoint {path}: {type(exc).__name__}: {exc}") from None
        return Checkpoint.from_dict(data, str(path))

    def load_latest(self) -> tuple[Path, Checkpoint] | None:
        """The newest checkpoint that loads. One that cannot be read (truncated or damaged on disk: saves are
        atomic, so not by a kill) is named in a warning and the one before it is used; its task is trained again."""
        done = sorted(self.dir.glob("task_*.pt")) if self.dir.is_dir() else []
        for stale in self.dir.glob(".task_*.tmp") if self.dir.is_dir() else []:
            stale.unlink(missing_ok=True)  # a save killed before its rename: never a checkpoint
        for path in reversed(done):
            try:
                return path, self.load(path)
            except UnreadableCheckpoint as exc:
                log.warning("%s; resuming from the checkpoint before it", exc)
        return None


def plain_config(config: dict) -> dict:
    """``config`` as JSON values (lists, not tuples; strings for anything else), comparable across processes."""
    return json.loads(json.dumps(config, default=str, sort_keys=True))
