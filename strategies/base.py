"""The base class every strategy of the suite derives from.

What the runner guarantees a :class:`TICLStrategy`:

- **Task labels.** Every mini-batch carries its task label (``self.mb_task_id``); class ids start at zero in
  each task. Training experiences arrive in task order 0, 1, 2, ...
- **Per-task heads.** ``self.model`` is an Avalanche ``MultiTaskModule`` wrapping a
  :class:`models.TaskIncrementalModel` (``self.net``). Before a task is trained, its head and its PET modules (if
  the method names one) already exist: Avalanche's model adaptation adds them.
- **Optimisation.** Before each task a fresh optimizer is built over :meth:`trainable_parameters`; everything
  else has ``requires_grad=False``. Override :meth:`trainable_parameters` to choose what trains.
- **Model selection** on the task's validation split (never its test split) when ``train.select_on_val`` is on,
  by :class:`strategies.plugins.BestValidationPlugin`.
- **Metrics and checkpoints.** The runner evaluates every seen task's test split after each task, writes
  the accuracy matrix, forgetting, BWT and compute figures, and saves a checkpoint of ``self.net`` plus
  :meth:`cl_state` (the strategy's cross-task state, plain values only: :mod:`strategies.state`);
  ``ticl run --resume`` restores both.
- **Errors.** Bad user input (an invalid option, a model the strategy cannot train) raises
  :class:`strategies.errors.StrategyError`, which the CLI prints on one line.

Hooks a subclass may override: :meth:`trainable_parameters`, :meth:`on_task_start`, :meth:`on_task_end`,
:meth:`cl_state` / :meth:`load_cl_state` (state kept across tasks outside the model, such as importances or a
memory; :class:`strategies.common.CrossTaskState` collects it from plugins that declare theirs), and any public
Avalanche template hook (``criterion``, ``training_epoch``, ``train_dataset_adaptation`` ...). Private template
hooks are reached through :mod:`strategies.avalanche_compat` only. Strategy-specific options arrive as keyword
arguments from the method's ``strategy_options``.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from avalanche.benchmarks.utils import AvalancheDataset
from avalanche.training.templates import SupervisedTemplate
from avalanche.training.utils import ParamData
from torch import nn
from torch.utils.data import Dataset

from audio_ticl.models import TaskIncrementalModel

from .avalanche_compat import ExperienceHooks, clock_state, load_clock_state
from .errors import StrategyError
from .model_adapter import AvalancheTaskModel
from .state import RestoreContext

OptimizerFactory = Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]


def state_nbytes(obj: Any, seen: set | None = None) -> int:
    """Bytes of the tensors and stored samples in a strategy's cross-task state (each tensor counted once).

    Tensors count their elements; Avalanche's ``ParamData`` its tensor; a dataset held as a memory (replay's and
    A-GEM's buffers) counts its samples at the size of its first sample's input, since a deployed method stores
    those samples; containers and plain objects are walked.
    """
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return obj.nelement() * obj.element_size()
    if isinstance(obj, ParamData):
        return state_nbytes(obj.data, seen)
    if isinstance(obj, (Dataset, AvalancheDataset)):  # Avalanche's datasets are not torch Datasets
        n = len(obj)  # type: ignore[arg-type]
        if n == 0:
            return 0
        x = obj[0][0]
        return n * (x.nelement() * x.element_size() if isinstance(x, torch.Tensor) else 0)
    if isinstance(obj, dict):
        return sum(state_nbytes(v, seen) for v in obj.values())
    if isinstance(obj, (list, tuple, set, frozenset)):
        return sum(state_nbytes(v, seen) for v in obj)
    if hasattr(obj, "__dict__") and not isinstance(obj, (type, nn.Module)):
        return state_nbytes(vars(obj), seen)
    return 0


class TICLStrategy(ExperienceHooks, SupervisedTemplate):
    """A task-incremental strategy: per-task heads, known task id, a fresh optimizer per task."""

    #: set by :func:`strategies.registry.register_strategy`
    strategy_name: str = ""
    #: False for a strategy that is not trained task by task (joint trains once, at the end): its accuracy matrix
    #: then has no "just after training task j" entries, so plasticity, forgetting and BWT are not reported
    trained_task_by_task: bool = True
    #: True for a strategy whose training batches mix tasks (replay, A-GEM, cumulative, joint) or that runs earlier
    #: heads on the current task's inputs (LwF): every task must then have one input length, which the runner checks
    mixes_task_inputs: bool = False

    def __init__(
        self,
        *,
        model: TaskIncrementalModel,
        optimizer_factory: OptimizerFactory,
        train_mb_size: int = 32,
        train_epochs: int = 1,
        eval_mb_size: int = 64,
        device: str | torch.device = "cpu",
        plugins: list | None = None,
        evaluator=None,
        **kwargs,
    ) -> None:
        wrapped = AvalancheTaskModel(model)
        self.optimizer_factory = optimizer_factory
        # Avalanche wants an optimizer at construction; the real one is built per task in make_optimizer.
        placeholder = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.0)
        extra = {} if evaluator is None else {"evaluator": evaluator}
        super().__init__(
            model=wrapped,
            optimizer=placeholder,
            criterion=nn.CrossEntropyLoss(),
            train_mb_size=train_mb_size,
            train_epochs=train_epochs,
            eval_mb_size=eval_mb_size,
            device=device,
            plugins=plugins,
            eval_every=-1,
            **extra,
            **kwargs,
        )

    # ------------------------------------------------------------------------------------ what subclasses use
    @property
    def net(self) -> TaskIncrementalModel:
        """The pure-PyTorch model inside Avalanche's wrapper."""
        return self.model.net

    @property
    def current_task(self) -> int:
        """Task label of the experience being trained or evaluated."""
        return int(self.experience.task_labels[0])

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimizer updates on the current task. Default: everything (full fine-tuning)."""
        return list(self.net.parameters())

    def on_task_start(self, task_id: int) -> None:
        """Called after the task's head/PET modules exist and before its optimizer is built."""

    def on_task_end(self, task_id: int) -> None:
        """Called after the task is trained (and its best validation epoch restored)."""

    def cl_state(self) -> dict:
        """Cross-task state outside the model, saved with each task's checkpoint: plain values only (tensors,
        numbers, strings, lists and dicts of them; :mod:`strategies.state`), so the file loads with
        ``weights_only=True``.

        Always holds Avalanche's clock counters by name: plugins such as EWC index their per-task state by
        ``clock.train_exp_counter``, which a fresh strategy would restart at 0. Subclasses add their own keys.
        """
        return {"clock": clock_state(self.clock)}

    def load_cl_state(self, state: dict, context: RestoreContext) -> None:
        """Restore :meth:`cl_state` on ``--resume``, into this freshly built strategy (``context``: the device,
        the tasks the checkpoint finished and their training datasets)."""
        if "clock" in state:
            load_clock_state(self.clock, state["clock"])

    def method_state_bytes(self) -> int:
        """Storage the method keeps besides the model (importances, anchors, memories): the task-specific storage
        column of the tables adds it to the per-task parameters. Default: :func:`state_nbytes` of
        :meth:`cl_state`, Avalanche's clock left out."""
        return state_nbytes({k: v for k, v in self.cl_state().items() if k != "clock"})

    # --------------------------------------------------------------------------------- Avalanche plumbing
    def check_model_and_optimizer(self, reset_optimizer_state: bool = False, **kwargs) -> None:
        """Grow the model for the new task, then build a fresh optimizer over the trainable parameters.

        Replaces Avalanche's version, which builds the optimizer before the model is adapted on the first
        experience and keeps optimizer state across tasks.
        """
        self.model = self.model_adaptation()
        self.on_task_start(self.current_task)
        self.make_optimizer()

    def make_optimizer(self, **kwargs) -> None:
        params = self.trainable_parameters()
        trainable = {id(p) for p in params}
        for p in self.model.parameters():
            p.requires_grad_(id(p) in trainable)
            if id(p) not in trainable:
                # A frozen parameter keeps no gradient from the task it last trained on: plugins that read every
                # p.grad (A-GEM's projection) would otherwise mix stale gradients of earlier heads into theirs.
                p.grad = None
        if not params:
            raise StrategyError(f"strategy '{self.strategy_name}' has no trainable parameters for this task")
        self.optimizer = self.optimizer_factory(params)

    def experience_trained(self) -> None:
        """After every plugin's ``after_training_exp`` (:class:`strategies.avalanche_compat.ExperienceHooks`)."""
        self.on_task_end(self.current_task)

    def forward(self):
        return self.model(self.mb_x, self.mb_task_id)


def make_optimizer_factory(name: str, lr: float, weight_decay: float, momentum: float) -> OptimizerFactory:
    """An optimizer constructor from config values."""

    def factory(params: Iterable[nn.Parameter]) -> torch.optim.Optimizer:
        params = list(params)
        if name == "adam":
            return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
        if name == "adamw":
            return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        if name == "sgd":
            return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
        raise StrategyError(f"unknown optimizer '{name}' (adam, adamw, sgd)")

    return factory
