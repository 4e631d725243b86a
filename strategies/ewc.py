"""EWC and online EWC (Kirkpatrick et al. 2017; Schwarz et al. 2018) through Avalanche's ``EWCPlugin``.

Trains what fine-tuning trains (shared weights + the current task's head/PET modules) with a quadratic
penalty pulling every parameter an earlier task used towards its value after that task, weighted by the
diagonal empirical Fisher computed on that task's training data.

Avalanche's plugin works with our multi-head model as is (importances and anchors are keyed by parameter
name, and a new task's head has no anchor so it is free), with one exception fixed here: in ``online`` mode
it merges the previous importances with the new ones by *position* (``zip_longest`` over
``named_parameters``) and asserts the names match. A PET method injects each new task's modules inside the
backbone, i.e. in the middle of the parameter order, so positions shift and the assertion fails;
:class:`TaskAwareEWCPlugin` merges by name instead.

Options (``strategy_options``): ``ewc_lambda`` (penalty weight), and for ``online_ewc`` ``decay_factor``
(how much of the accumulated importance survives each new task).
"""
from __future__ import annotations

import torch
from avalanche.training.plugins import EWCPlugin
from avalanche.training.utils import ParamData

from .common import CrossTaskState, after_runner_plugins
from .finetune import Finetune
from .registry import register_strategy


class TaskAwareEWCPlugin(EWCPlugin):
    """EWCPlugin whose online-mode importance update matches parameters by name, not by position."""

    @torch.no_grad()
    def update_importances(self, importances, t: int):
        if self.mode == "separate" or t == 0:
            self.importances[t] = importances
            return
        old = self.importances[t - 1]
        merged = {}
        for name, cur in importances.items():
            if name in old:
                merged[name] = ParamData(
                    f"imp_{name}",
                    cur.shape,
                    init_tensor=self.decay_factor * old[name].expand(cur.shape) + cur.data,
                    device=cur.device,
                )
            else:  # a parameter created by this task (its head, its PET modules)
                merged[name] = cur
        self.importances[t] = merged
        if not self.keep_importance_data:
            del self.importances[t - 1]

    def penalty(self, strategy) -> torch.Tensor:
        """The (unweighted by lambda) EWC penalty of the model as it is now; 0 before the second task."""
        loss = strategy.loss
        try:
            strategy.loss = torch.zeros((), device=strategy.device)
            self.before_backward(strategy)
            return strategy.loss / self.ewc_lambda if self.ewc_lambda else strategy.loss
        finally:
            strategy.loss = loss


@register_strategy("ewc")
class EWC(CrossTaskState, Finetune):
    """Fine-tuning + EWC with one penalty per earlier task (``mode="separate"``)."""

    state_objects = ("ewc",)

    def __init__(self, *, ewc_lambda: float = 100.0, plugins=None, **kwargs) -> None:
        self.ewc = TaskAwareEWCPlugin(ewc_lambda=float(ewc_lambda), mode="separate")
        super().__init__(plugins=after_runner_plugins(plugins, self.ewc), **kwargs)


@register_strategy("online_ewc")
class OnlineEWC(CrossTaskState, Finetune):
    """Fine-tuning + online EWC: one running importance, decayed by ``decay_factor`` at each new task."""

    state_objects = ("ewc",)

    def __init__(
        self, *, ewc_lambda: float = 100.0, decay_factor: float = 0.9, plugins=None, **kwargs
    ) -> None:
        self.ewc = TaskAwareEWCPlugin(ewc_lambda=float(ewc_lambda), mode="online", decay_factor=float(decay_factor))
        super().__init__(plugins=after_runner_plugins(plugins, self.ewc), **kwargs)
