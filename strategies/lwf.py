"""Learning without Forgetting (Li & Hoiem 2017) for task-incremental multi-head models.

Trains what fine-tuning trains, plus, for every earlier task ``t``, a distillation loss between the current
model's head-``t`` outputs and those of a frozen copy of the model taken *before* the current task started,
both on the current task's inputs. ``alpha`` weighs it (a list gives one value per task, the last repeating),
``temperature`` softens both distributions (Avalanche's KL form).

Why not Avalanche's ``LwFPlugin`` as is (it runs on our dataset type: the ``task_set`` crash of Avalanche 0.6
is specific to ``as_classification_dataset``, which ``make_benchmark`` does not use):

- For a multi-task model it asks both models for all heads with ``forward(x, None)``. Our
  :class:`strategies.model_adapter.AvalancheTaskModel` takes per-sample task labels and fails on ``None``; even
  through Avalanche's own ``forward_all_tasks`` it would run one backbone pass per known task, current task
  included, for teacher and student alike.
- It snapshots the teacher in ``after_training_exp`` of the finished task. That is the right model only if it
  runs after the runner's model selection has restored the chosen epoch, and a strategy rebuilt by
  ``--resume`` would have no teacher at all (silently no distillation).

:class:`MultiHeadLwF` snapshots at the start of each task (after the new head exists, before any update: by
definition "the model as it was before the task", also after a resume), distils exactly the earlier tasks'
heads over all their units, and shares one backbone pass among all heads when no PET method makes the
features task-specific.
"""
from __future__ import annotations

import copy

import torch
from avalanche.training.plugins import LwFPlugin

from audio_ticl.models import TaskIncrementalModel

from .avalanche_compat import LwFRegularizer
from .common import after_runner_plugins
from .finetune import Finetune
from .registry import register_strategy


def head_outputs(net: TaskIncrementalModel, x: torch.Tensor, tasks: list[int]) -> dict[int, torch.Tensor]:
    """``{t: logits of head t on x}``; one backbone pass for all heads unless the features are task-specific (PET
    modules, per-task position embeddings)."""
    if not net.task_specific_features:
        features = net.backbone(x)  # pooled features, no PET modules
        return {t: net.heads[str(t)](features) for t in tasks}
    return {t: net.forward_task(x, t) for t in tasks}


class MultiHeadLwF(LwFRegularizer):
    """Avalanche's LwF regulariser with a per-head teacher taken before the task (see the module docstring)."""

    def __init__(self, alpha=1.0, temperature=2.0) -> None:
        super().__init__(alpha, temperature)
        self.prev_model: TaskIncrementalModel | None = None
        self.prev_tasks: list[int] = []

    def snapshot(self, net: TaskIncrementalModel, current_task: int) -> None:
        """Freeze a copy of ``net`` as the teacher for the earlier tasks' heads."""
        self.prev_tasks = [t for t in net.task_ids if t != current_task]
        self.expcount = len(self.prev_tasks)  # Avalanche indexes a per-task alpha list with it
        self.prev_model = None
        if self.prev_tasks:
            self.prev_model = copy.deepcopy(net).eval()
            self.prev_model.requires_grad_(False)

    @torch.no_grad()
    def targets(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        """The teacher's logits for every earlier task's head on ``x``."""
        if self.prev_model is None:
            return {}
        return head_outputs(self.prev_model, x, self.prev_tasks)

    def distillation(self, x: torch.Tensor, net: TaskIncrementalModel, features: torch.Tensor | None = None):
        """Summed distillation loss of the earlier heads on ``x``. ``features``: the student's backbone features
        of ``x`` if the caller already has them (no PET method), to save a second backbone pass."""
        if self.prev_model is None:
            return 0
        teacher = self.targets(x)
        if features is not None:
            student = {t: net.heads[str(t)](features) for t in self.prev_tasks}
        else:
            student = head_outputs(net, x, self.prev_tasks)
        return sum(
            self.distillation_loss(student[t], teacher[t], range(teacher[t].shape[1])) for t in self.prev_tasks
        )

    def penalty(self, x: torch.Tensor, net: TaskIncrementalModel, features: torch.Tensor | None = None):
        """``alpha`` x :meth:`distillation` (what is added to the loss)."""
        alpha = self.alpha
        if isinstance(alpha, (list, tuple)):  # one value per task (Avalanche); the last one repeats, as in SI
            alpha = alpha[min(self.expcount, len(alpha) - 1)]
        return alpha * self.distillation(x, net, features)

    def unweighted_penalty(self, out, x, curr_model):  # what Avalanche's __call__ multiplies by alpha
        return self.distillation(x, curr_model.net)

    def post_adapt(self, agent, exp) -> None:
        """No end-of-task snapshot: :meth:`snapshot` runs at the start of the next task instead."""


class MultiHeadLwFPlugin(LwFPlugin):
    """Avalanche's LwFPlugin driving :class:`MultiHeadLwF`."""

    def __init__(self, alpha=1.0, temperature=2.0) -> None:
        super().__init__(alpha, temperature)
        self.lwf = MultiHeadLwF(alpha, temperature)

    def before_training_exp(self, strategy, **kwargs) -> None:
        self.lwf.snapshot(strategy.model.net, strategy.current_task)

    def before_backward(self, strategy, **kwargs) -> None:
        strategy.loss += self.lwf.penalty(strategy.mb_x, strategy.model.net, getattr(strategy, "mb_features", None))

    def after_training_exp(self, strategy, **kwargs) -> None:
        self.lwf.prev_model = None  # free the teacher's memory between tasks


@register_strategy("lwf")
class LwF(Finetune):
    """Fine-tuning + LwF distillation on every earlier task's head.

    Defaults from Li & Hoiem ("Learning without Forgetting", TPAMI 2017, Sec. 3): temperature T = 2 and loss
    weight lambda_o = 1 (``alpha``); ``alpha`` is searched in the baseline presets.

    It keeps no cross-task state besides the model: the teacher is copied from the model at each task's start
    (and freed at its end), so a checkpoint of the model is all a resumed run needs.
    """

    #: earlier heads run on the current task's inputs, so every task needs the same input length
    mixes_task_inputs = True

    def __init__(self, *, alpha: float | list[float] = 1.0, temperature: float = 2.0, plugins=None, **kwargs) -> None:
        self.lwf_plugin = MultiHeadLwFPlugin(alpha=alpha, temperature=float(temperature))
        self.mb_features: torch.Tensor | None = None
        super().__init__(plugins=after_runner_plugins(plugins, self.lwf_plugin), **kwargs)

    def forward(self):
        # Without task-specific features (PET modules, per-task position embeddings) one backbone pass serves both the
        # current head's cross-entropy and the distilled earlier heads (training batches hold one task).
        if self.is_training and not self.net.task_specific_features:
            self.mb_features = self.net.backbone(self.mb_x)  # pooled features, no PET modules
            return self.net.heads[str(self.current_task)](self.mb_features)
        self.mb_features = None
        return super().forward()
