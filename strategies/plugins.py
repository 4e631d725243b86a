"""Plugins every strategy gets from the runner: the one evaluation, model selection on validation data, timings,
sample counts and batch limits (the progress bar is :mod:`strategies.progress`, re-exported here)."""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from avalanche.core import SupervisedPlugin
from torch.utils.data import DataLoader, Dataset

from .errors import StrategyError, TrainingError
from .progress import ProgressPlugin  # noqa: F401  (re-exported: the runner's plugins live here)


@dataclass
class Evaluation:
    """One pass of a task-aware model over a dataset yielding ``(x, y, task)``, in the dataset's order."""

    accuracy: float
    #: mean cross-entropy over the samples (each through its own task's head)
    loss: float
    #: per-sample outcome, in the dataset's order
    correct: torch.Tensor
    seconds: float

    @property
    def n(self) -> int:
        return int(self.correct.numel())

    def correct_string(self) -> str:
        """The per-sample outcomes as '0'/'1' characters (the run summary's ``correct`` cells)."""
        return "".join("1" if c else "0" for c in self.correct.tolist())


@torch.no_grad()
def evaluate(model: torch.nn.Module, dataset: Dataset, batch_size: int, device: torch.device | str) -> Evaluation:
    """The suite's one evaluation: accuracy, loss and per-sample outcomes in one pass, model in eval mode (its
    mode is restored after). The accuracy matrix, validation-based selection and the tuning scores all use it.

    It draws no number from the global RNG (a DataLoader iterator otherwise draws its base seed from it), so how
    often and on what a run evaluates never changes how it trains."""
    was_training = model.training
    model.eval()
    outcomes, loss_sum = [], 0.0
    start = time.perf_counter()
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, generator=torch.Generator().manual_seed(0))
    for x, y, t in loader:
        x, y, t = x.to(device), y.to(device), t.to(device)
        logits = model(x, t)
        loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
        outcomes.append((logits.argmax(dim=1) == y).cpu())
    seconds = time.perf_counter() - start
    model.train(was_training)
    correct = torch.cat(outcomes) if outcomes else torch.zeros(0, dtype=torch.bool)
    n = int(correct.numel())
    return Evaluation(
        accuracy=int(correct.sum()) / n if n else float("nan"),
        loss=loss_sum / n if n else float("nan"),
        correct=correct,
        seconds=seconds,
    )


def evaluate_accuracy(
    model: torch.nn.Module, dataset: Dataset, batch_size: int, device: torch.device | str
) -> tuple[float, int, float]:
    """(accuracy, samples, seconds) of :func:`evaluate`."""
    result = evaluate(model, dataset, batch_size, device)
    return result.accuracy, result.n, result.seconds


class BestValidationPlugin(SupervisedPlugin):
    """Keep the epoch with the best *validation* score of the current task, restore it at the end of the task.

    The score is the validation accuracy; ties (frequent on small validation splits, where accuracy saturates)
    go to the lower validation loss, and remaining ties to the later epoch. Keeping the earliest epoch on a tie
    would keep epoch 0 whenever validation saturates at once, so the forgetting column would partly measure how
    soon that happens rather than what training did; the loss still separates epochs that classify alike, by how
    confidently they do it. The test split is never looked at during training (the public AI-CL code selected
    epochs on the test set). Only trainable tensors are snapshotted, since frozen ones cannot change.
    """

    def __init__(self, val_datasets: Sequence[Dataset], batch_size: int, enabled: bool = True) -> None:
        super().__init__()
        self.val_datasets = list(val_datasets)
        self.batch_size = batch_size
        self.enabled = enabled
        self.history: dict[int, list[float]] = {}
        self.loss_history: dict[int, list[float]] = {}
        self.best_epoch: dict[int, int] = {}
        self._best_key: tuple[float, float] | None = None
        self._best_state: dict[str, torch.Tensor] | None = None

    def before_training_exp(self, strategy, *args, **kwargs) -> None:
        self._best_key = None
        self._best_state = None
        self.history[strategy.current_task] = []
        self.loss_history[strategy.current_task] = []

    def after_training_epoch(self, strategy, *args, **kwargs) -> None:
        task = strategy.current_task
        # A strategy that trains on every task seen so far at once (cumulative, joint) is judged on all of their
        # validation splits, the mean of the per-task scores; any other on the current task's.
        seen = range(task + 1) if getattr(strategy, "validates_on_seen_tasks", False) else [task]
        results = [evaluate(strategy.model, self.val_datasets[t], self.batch_size, strategy.device) for t in seen]
        acc = sum(r.accuracy for r in results) / len(results)
        loss = sum(r.loss for r in results) / len(results)
        self.history[task].append(acc)
        self.loss_history[task].append(loss)
        key = (acc, -loss)
        if self.enabled and (self._best_key is None or key >= self._best_key):  # >=: a full tie goes to the later
            self._best_key = key
            self.best_epoch[task] = len(self.history[task]) - 1
            self._best_state = {
                name: p.detach().clone() for name, p in strategy.model.named_parameters() if p.requires_grad
            }

    def after_training_exp(self, strategy, *args, **kwargs) -> None:
        if not self.enabled or self._best_state is None:
            self.best_epoch[strategy.current_task] = len(self.history[strategy.current_task]) - 1
            return
        params = dict(strategy.model.named_parameters())
        with torch.no_grad():
            for name, value in self._best_state.items():
                params[name].copy_(value)
        self._best_state = None

    def last_accuracy(self, task: int) -> float | None:
        values = self.history.get(task) or []
        return values[-1] if values else None


class SampleCountPlugin(SupervisedPlugin):
    """Training samples drawn in each epoch of each task (replayed memory samples included), so a run folder
    shows whether, e.g., cumulative training saw every sample of the union exactly once per epoch."""

    def __init__(self) -> None:
        super().__init__()
        self.per_epoch: dict[int, list[int]] = {}

    def before_training_exp(self, strategy, *args, **kwargs) -> None:
        self.per_epoch[strategy.current_task] = []

    def before_training_epoch(self, strategy, *args, **kwargs) -> None:
        self.per_epoch[strategy.current_task].append(0)

    def after_training_iteration(self, strategy, *args, **kwargs) -> None:
        self.per_epoch[strategy.current_task][-1] += int(strategy.mb_y.shape[0])


class FiniteLossPlugin(SupervisedPlugin):
    """Stop at the first non-finite training loss, before its gradients reach the weights. One NaN sample or a
    learning rate that diverges otherwise makes every weight NaN, and the run would still finish, at chance, with a
    normal-looking table."""

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label
        self._iteration = 0

    def before_training_epoch(self, strategy, *args, **kwargs) -> None:
        self._iteration = 0

    def before_backward(self, strategy, *args, **kwargs) -> None:
        self._iteration += 1
        loss = strategy.loss.detach()
        if bool(torch.isfinite(loss).all()):
            return
        epoch = strategy.clock.train_exp_epochs + 1
        raise TrainingError(
            f"{self.label}: the training loss became {float(loss.sum())} in task {strategy.current_task}, epoch "
            f"{epoch}, iteration {self._iteration}; the run stops here, before the weights take it. Look for "
            "non-finite input features (features.mean / features.std, the clips) or a learning rate that diverges "
            "(train.lr)"
        )


class DataTimePlugin(SupervisedPlugin):
    """Seconds per task spent waiting for mini-batches (loading, SpecAugment, normalisation, collation):
    the gaps between one training iteration's end and the next one's start."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: dict[int, float] = {}
        self._mark: float | None = None

    def before_training_epoch(self, strategy, *args, **kwargs) -> None:
        self._mark = time.perf_counter()

    def before_training_iteration(self, strategy, *args, **kwargs) -> None:
        if self._mark is not None:
            task = strategy.current_task
            self.seconds[task] = self.seconds.get(task, 0.0) + time.perf_counter() - self._mark

    def after_training_iteration(self, strategy, *args, **kwargs) -> None:
        self._mark = time.perf_counter()

    def after_training_epoch(self, strategy, *args, **kwargs) -> None:
        self._mark = None


class BatchLimitPlugin(SupervisedPlugin):
    """Train each epoch on at most ``max_batches`` mini-batches (a seeded random subset of the task's data).

    For smoke variants of the paper presets: the whole pipeline (every task, hook, metric and checkpoint) runs,
    only on a few batches. A subset of the adapted dataset keeps every strategy's own data logic intact.
    """

    def __init__(self, max_batches: int, seed: int = 0) -> None:
        super().__init__()
        if max_batches < 1:
            raise StrategyError(f"max_batches must be >= 1, got {max_batches}")
        self.max_batches = max_batches
        self.seed = seed

    def after_train_dataset_adaptation(self, strategy, *args, **kwargs) -> None:
        keep = self.max_batches * strategy.train_mb_size
        n = len(strategy.adapted_dataset)
        if n > keep:
            generator = torch.Generator().manual_seed(self.seed + strategy.current_task)
            indices = torch.randperm(n, generator=generator)[:keep].sort().values.tolist()
            strategy.adapted_dataset = strategy.adapted_dataset.subset(indices)
