"""Training progress: a tqdm bar on a terminal, plain log lines everywhere else.

A bar redraws itself with carriage returns; written into a log file (``ticl run ... > run.log 2>&1``) every redraw
stays in the file. So :class:`ProgressPlugin` draws a bar only when asked to *and* its stream is a terminal
(:func:`is_terminal`), and otherwise logs one line per epoch. The ``ticl`` command takes the same decision for the
feature-extraction and download bars (``--no-progress`` on every subcommand that does long work).
"""
from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

import torch
from avalanche.core import SupervisedPlugin
from tqdm.auto import tqdm

__all__ = ["ProgressPlugin", "is_terminal"]

log = logging.getLogger("ticl")


def is_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default ``sys.stderr``, where tqdm draws) is a terminal."""
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(callable(isatty) and isatty())
    except ValueError:  # a closed stream
        return False


class ProgressPlugin(SupervisedPlugin):
    """Per task, with ``enabled`` and a terminal ``stream`` (default ``sys.stderr``): one compact tqdm bar
    (iterations over all epochs, running loss, last validation accuracy). Otherwise one ``ticl`` log line per epoch
    (mean training loss, validation accuracy, seconds), so a log file shows progress without carriage-return frames.

    It reads the loss and the validation history only, so it changes no number of a run either way."""

    def __init__(
        self, label: str, validation=None, enabled: bool = True, stream: TextIO | None = None
    ) -> None:
        super().__init__()
        self.label = label
        #: a :class:`strategies.plugins.BestValidationPlugin` (its history gives the validation accuracy)
        self.validation = validation
        self.enabled = enabled
        self.stream = stream
        self._bar: tqdm | None = None
        self._loss = 0.0
        self._loss_sum: torch.Tensor | None = None
        self._steps = 0
        self._epoch_start = 0.0

    def _val_accuracy(self, task: int) -> float | None:
        return None if self.validation is None else self.validation.last_accuracy(task)

    def before_training_exp(self, strategy, *args, **kwargs) -> None:
        if not (self.enabled and is_terminal(self.stream)):
            return
        total = strategy.train_epochs * len(strategy.dataloader)
        self._bar = tqdm(
            total=total, desc=f"{self.label} task {strategy.current_task}", leave=False, unit="it", file=self.stream
        )

    def before_training_epoch(self, strategy, *args, **kwargs) -> None:
        self._loss_sum, self._steps, self._epoch_start = None, 0, time.perf_counter()

    def after_training_iteration(self, strategy, *args, **kwargs) -> None:
        if self._bar is None:
            loss = strategy.loss.detach()
            self._loss_sum = loss if self._loss_sum is None else self._loss_sum + loss
            self._steps += 1
            return
        loss = strategy.loss.item()
        self._loss = 0.9 * self._loss + 0.1 * loss if self._bar.n else loss
        self._bar.update(1)

    def after_training_epoch(self, strategy, *args, **kwargs) -> None:
        task = strategy.current_task
        acc = self._val_accuracy(task)
        if self._bar is None:
            loss = float(self._loss_sum) / self._steps if self._steps else float("nan")
            epoch = strategy.clock.train_exp_epochs + 1  # the clock counts this epoch after the plugins
            log.info(
                "%s task %d epoch %d/%d: train loss %.4f%s (%.1f s)", self.label, task, epoch, strategy.train_epochs,
                loss, "" if acc is None else f", val acc {acc:.4f}", time.perf_counter() - self._epoch_start,
            )
            return
        postfix = {"loss": f"{self._loss:.3f}"}
        if acc is not None:
            postfix["val_acc"] = f"{acc:.3f}"
        self._bar.set_postfix(postfix)

    def after_training_exp(self, strategy, *args, **kwargs) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
