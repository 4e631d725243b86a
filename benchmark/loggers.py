"""Logging beyond ``metrics.csv``: TensorBoard and Weights & Biases, through Avalanche's loggers, per method run.

The config's ``logging`` section switches them on (both off by default). Each method run (each method, each seed,
each search trial) gets its own loggers, attached to the runner's ``EvaluationPlugin``, so they receive Avalanche's
per-epoch training accuracy and loss (``Top1_Acc_Epoch/train_phase/train_stream/TaskNNN``,
``Loss_Epoch/train_phase/train_stream/TaskNNN``). Besides those they get the runner's own numbers:

- after each epoch, the validation plugin's accuracy and loss of the task in training:
  ``Top1_Acc_Epoch/valid_stream/TaskNNN`` and ``Loss_Epoch/valid_stream/TaskNNN``;
- after each task i, its row of the accuracy matrix on the run's evaluation split (``test``; ``val`` in a search
  trial): ``Accuracy_Matrix/test_stream/TaskNNN`` = R[i][j] for every task j, ``Accuracy_Matrix/test_stream/
  Mean_Trained`` = the mean of R[i][0..i], and ``Tasks_Trained`` = i + 1.

Every value is logged at x = Avalanche's training-iteration counter (``strategy.clock.train_iterations``), the x
of its own epoch metrics: W&B takes one increasing step per run, and so every curve shares one axis.

The loggers never change a result: every call into them (creation, each log, the close) runs with the Python,
NumPy and torch (CPU and CUDA) RNG states saved and restored, so whatever they or the packages below them draw
is drawn on a copy. ``tests/test_loggers.py`` checks that a run with both on gives the accuracy matrix of a run
with both off. wandb is imported only when ``logging.wandb`` is on (Avalanche's ``WandBLogger`` imports it);
TensorBoard's writer comes with ``avalanche.logging`` itself (avalanche-lib 0.6 installs both packages; the
``logging`` extra names them).
"""
from __future__ import annotations

import contextlib
import random
import secrets
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "MethodLoggers", "TENSORBOARD_DIR", "accuracy_name", "mean_trained_name", "method_loggers", "preserved_rng",
    "run_name", "TASKS_TRAINED", "val_accuracy_name", "val_loss_name",
]

#: the TensorBoard folder inside a method folder
TENSORBOARD_DIR = "tensorboard"
TASKS_TRAINED = "Tasks_Trained"


def val_accuracy_name(task: int) -> str:
    return f"Top1_Acc_Epoch/valid_stream/Task{task:03d}"


def val_loss_name(task: int) -> str:
    return f"Loss_Epoch/valid_stream/Task{task:03d}"


def accuracy_name(task: int, split: str = "test") -> str:
    """R[i][task] after each task i, on the run's evaluation split."""
    return f"Accuracy_Matrix/{split}_stream/Task{task:03d}"


def mean_trained_name(split: str = "test") -> str:
    return f"Accuracy_Matrix/{split}_stream/Mean_Trained"


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Run the body on a copy of the global RNG states (Python, NumPy, torch CPU and every initialised CUDA
    device): whatever it draws leaves the run's random stream as it was."""
    python, numpy = random.getstate(), np.random.get_state()
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        try:
            yield
        finally:
            random.setstate(python)
            np.random.set_state(numpy)


def run_name(folder: Path, seed: int) -> tuple[str, str]:
    """(``<run folder>/<method>/seed<N>``, ``<run folder>``) for a method folder: the run folder is the nearest of
    the three folders above it that holds a ``config.yaml`` (``OUT/<method>``, ``OUT/<method>/seed<N>``,
    ``OUT/tuning/<method>/trial_NN``), else its parent."""
    folder = Path(folder).resolve()
    root = next((p for p in list(folder.parents)[:3] if (p / "config.yaml").is_file()), folder.parent)
    parts = [root.name, *folder.relative_to(root).parts]
    if not parts[-1].startswith("seed"):
        parts.append(f"seed{seed}")
    return "/".join(parts), root.name


def _numeric(value):
    """A loggable number, or None (Avalanche may send alternatives: take the plain number if there is one)."""
    from avalanche.evaluation.metric_results import AlternativeValues

    if isinstance(value, AlternativeValues):
        value = value.best_supported_value(float, int)
    return value if isinstance(value, (int, float)) else None


def _tensorboard_logger(log_dir: Path):
    from avalanche.logging import TensorboardLogger

    class Tensorboard(TensorboardLogger):
        """Avalanche's TensorBoard logger, each write on a copy of the RNG states."""

        def log_metrics(self, metric_values) -> None:
            if metric_values:  # the plugin calls it at every callback, mostly with nothing
                with preserved_rng():
                    super().log_metrics(metric_values)

        def close(self, failed: bool = False) -> None:
            self.writer.close()

    return Tensorboard(tb_log_dir=str(log_dir))


def _wandb_logger(project: str, name: str, group: str, directory: Path, mode: str, config: dict):
    from avalanche.logging import WandBLogger

    class WandB(WandBLogger):
        """Avalanche's W&B logger for numbers, each write on a copy of the RNG states.

        ``before_run`` and ``log_single_metric`` are replaced: avalanche-lib 0.6 calls ``wandb.util.generate_id``
        and ``wandb.viz``, which recent wandb releases no longer have (the run id is given here, drawn from the OS,
        never from a seeded generator)."""

        def before_run(self) -> None:
            if self.wandb is None:
                self.import_wandb()
            self.run = self.wandb.init(**self.init_kwargs)

        def log_single_metric(self, name, value, x_plot) -> None:
            value = _numeric(value)
            if value is not None:
                self.step = x_plot
                self.run.log({name: value}, step=x_plot)

        def log_metrics(self, metric_values) -> None:
            if metric_values:
                with preserved_rng():
                    super().log_metrics(metric_values)

        def after_training_exp(self, strategy, metric_values, **kwargs) -> None:
            with preserved_rng():
                for value in metric_values:
                    self.log_metrics([value])
                self.run.log({"TrainingExperience": self.exp_count}, step=self.step)
                self.exp_count += 1

        def close(self, failed: bool = False) -> None:
            self.run.finish(exit_code=1 if failed else 0)

    return WandB(
        project_name=project, run_name=name, dir=str(directory), save_code=False, config=config,
        params={"id": secrets.token_hex(4), "group": group, "mode": mode, "settings": {"console": "off"}},
    )


class MethodLoggers:
    """The loggers of one method run: handed to the ``EvaluationPlugin`` (:attr:`evaluator_loggers`), fed the
    runner's per-task numbers (:meth:`after_task`), closed at the end (a context manager). No logger: all no-ops."""

    def __init__(self, loggers: Sequence = ()) -> None:
        self.loggers = list(loggers)

    def __bool__(self) -> bool:
        return bool(self.loggers)

    @property
    def evaluator_loggers(self) -> list:
        """The Avalanche loggers plus the relay of the validation plugin's per-epoch numbers."""
        return [*self.loggers, _ValidationRelay(self)] if self.loggers else []

    def log(self, values: Mapping[str, float], x: int) -> None:
        """Log each value at ``x`` through every logger (``log_single_metric``, Avalanche's logger API)."""
        if not self.loggers:
            return
        with preserved_rng():
            for logger in self.loggers:
                for name, value in values.items():
                    logger.log_single_metric(name, float(value), int(x))

    def after_task(self, task: int, row: Sequence[float], x: int, split: str = "test") -> None:
        """Task ``task``'s row of the accuracy matrix, its mean over the tasks trained so far, and their count."""
        values = {accuracy_name(j, split): value for j, value in enumerate(row)}
        values[mean_trained_name(split)] = sum(row[: task + 1]) / (task + 1)
        values[TASKS_TRAINED] = task + 1
        self.log(values, x)

    def close(self, failed: bool = False) -> None:
        with preserved_rng():
            for logger in self.loggers:
                logger.close(failed)
        self.loggers = []

    def __enter__(self) -> MethodLoggers:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self.close(failed=kind is not None)


class _ValidationRelay:
    """A logger of the ``EvaluationPlugin`` (it calls each logger's callbacks after every plugin of the strategy,
    the validation plugin included) that passes the epoch's validation accuracy and loss to the loggers."""

    def __init__(self, owner: MethodLoggers) -> None:
        self.owner = owner

    def log_metrics(self, metric_values) -> None:
        pass

    def after_training_epoch(self, strategy, metric_values, **kwargs) -> None:
        from audio_ticl.strategies.plugins import BestValidationPlugin

        validation = next((p for p in strategy.plugins if isinstance(p, BestValidationPlugin)), None)
        task = strategy.current_task
        if validation is None or not validation.history.get(task):
            return
        self.owner.log({val_accuracy_name(task): validation.history[task][-1],
                        val_loss_name(task): validation.loss_history[task][-1]}, strategy.clock.train_iterations)


def method_loggers(cfg, folder: Path, resolved: dict) -> MethodLoggers:
    """The loggers that ``cfg.logging`` switches on for the method run in ``folder`` (``resolved``: its config,
    which becomes the W&B run's config); none when both are off."""
    settings, loggers = cfg.logging, []
    folder = Path(folder)
    with preserved_rng():
        try:
            if settings.tensorboard:
                loggers.append(_tensorboard_logger(folder / TENSORBOARD_DIR))
            if settings.wandb:
                name, group = run_name(folder, cfg.seed)
                directory = Path(settings.wandb_dir).resolve() if settings.wandb_dir else folder.resolve()
                directory.mkdir(parents=True, exist_ok=True)
                loggers.append(_wandb_logger(settings.wandb_project, name, group, directory, settings.wandb_mode,
                                             resolved))
        except BaseException:
            for logger in loggers:
                logger.close(failed=True)
            raise
    return MethodLoggers(loggers)
