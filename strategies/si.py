"""Synaptic Intelligence (Zenke et al. 2017) on Avalanche's ``SynapticIntelligencePlugin``.

Trains what fine-tuning trains, with the quadratic penalty c sum_k Omega_k (theta_k - theta~_k)^2 of the paper
(Zenke et al. 2017, sec. 3, eq. 4), theta~ the weights after the previous task and
Omega_k = sum over earlier tasks nu of omega_k^nu / ((Delta_k^nu)^2 + xi) (eq. 5), where
omega_k^nu = -sum over the task's steps of g_k(t) * (theta_k(t+1) - theta_k(t)) is the path integral of the
*task* loss's gradient g along the parameter's trajectory, and Delta_k^nu the parameter's total change over the
task. No extra pass over the data.

Avalanche's plugin works with our multi-head model: it tracks only parameters with ``requires_grad`` at each
step, so earlier tasks' frozen heads/PET modules stop contributing (they cannot change anyway), and a new task's
parameters are registered (importance 0) when that task starts. The plugin keeps its state on the CPU and copies
all trainable weights there twice per iteration, which is slow for large backbones on GPU. :class:`CopyingSIPlugin`
fixes five things in Avalanche 0.6's version:

- **Weights are copied, not viewed.** Its ``extract_weights`` stores ``param.detach().cpu().flatten()``. On a GPU
  ``.cpu()`` copies; on the CPU it returns the parameter itself, so the stored "old" weights and the task's
  anchor are views that move with every optimizer step: each update's contribution is 0, every importance is 0,
  and SI is exactly fine-tuning (it gave fine-tuning's accuracy matrix on every seed in the first reference
  runs). Stored here as clones.
- **The task loss's gradient, not the regularised loss's.** Avalanche accumulates ``p.grad`` after the backward
  of task loss + SI penalty, so from the second task on the penalty's own gradient (which points back to the
  anchor) is booked as "importance". That gradient is known in closed form: Avalanche's penalty is
  (lambda / 2) sum_k Omega_k (theta_k - theta~_k)^2 (``compute_ewc_loss``), whose gradient is
  lambda * Omega_k * (theta_k - theta~_k) at the weights of the forward pass (the pre-step copy). It is
  subtracted from ``p.grad`` before the product with the step, which is exact and costs one multiply per
  parameter (no second backward).
- **The importance follows the epoch the runner keeps.** The runner's
  :class:`strategies.plugins.BestValidationPlugin` restores the best validation epoch at the end of the task;
  the path integral of the epochs after it describes a trajectory that was undone. At every epoch end where that
  plugin records a new best, the running path integral is snapshotted; at the end of the task omega is the
  snapshot, i.e. the integral from the task's start to the kept weights, and Delta = kept weights - weights at
  the task's start. Without that plugin, or with selection off (``train.select_on_val: false``), all epochs
  count, as the weights of the last one are kept.
- **c is the paper's c.** Avalanche's penalty carries lambda / 2, the paper's c; the plugin is given
  lambda = 2 c, so ``si_lambda`` means what the paper's c means.
- **No hidden clamp.** Its ``after_training_exp`` clamps every importance at 0.001 (``clip_to``, a constant of the
  Caffe code it was ported from), whatever the scale of the model's importances. Here the clamp is an option,
  off by default as in Zenke et al., where c alone sets the penalty's strength.

Options and defaults:

- ``si_lambda`` = 0.1: the paper's c (a list gives one per task, the last repeating). Zenke et al. 2017, sec. 5:
  c = 0.1 is the value their coarse grid search on held-out validation data picked for the experiments run with
  xi = 0.1; their figures sweep c from 0.01 to 1. It must be searched here too (Lee et al. 2024: on the first
  tasks, then fixed).
- ``eps`` = 0.1: the paper's damping xi. Zenke et al. 2017, sec. 5: xi = 1e-3 for split MNIST (sec. 5.1, a
  two-layer MLP) and xi = 0.1 for the deeper networks of the later experiments (the split CIFAR-10/100 CNN,
  trained with Adam, as our transformers are). Chosen: 0.1, paired with the c found with it. Note that when the
  per-task changes are small (Delta^2 << xi, typical when fine-tuning a pretrained transformer), Omega ~ omega / xi
  and only c / xi matters, so searching c covers xi as well. Avalanche's default of 1e-7 is no paper's value.
- ``clip_to`` = null: Avalanche's upper clamp on each importance; none in the paper.
"""
from __future__ import annotations

import math

import torch
from avalanche.training.plugins import SynapticIntelligencePlugin
from avalanche.training.utils import ParamData

from .base import state_nbytes
from .common import CrossTaskState, after_runner_plugins
from .finetune import Finetune
from .plugins import BestValidationPlugin
from .registry import register_strategy
from .state import RestoreContext, param_tensors


@torch.no_grad()
def _copy_weights(model, target: dict, excluded: set) -> None:
    """Avalanche's ``extract_weights``, storing copies (see the module docstring)."""
    for name, param in SynapticIntelligencePlugin.allowed_parameters(model, excluded):
        target[name].data = param.detach().flatten().clone().cpu()


class CopyingSIPlugin(SynapticIntelligencePlugin):
    """SynapticIntelligencePlugin with copied snapshots, the task loss's gradient, the kept epoch's path integral
    and the paper's c (module docstring); Avalanche's importance clamp as an option."""

    def __init__(self, si_lambda: float | list[float], eps: float, clip_to: float | None = None) -> None:
        c = list(si_lambda) if isinstance(si_lambda, (list, tuple)) else [si_lambda]
        self.c = [float(v) for v in c]
        # Avalanche's penalty is (lambda / 2) * sum Omega (theta - anchor)^2; the paper's is c * sum ...: lambda = 2c
        super().__init__(si_lambda=[2.0 * v for v in self.c], eps=eps)
        self.clip_to = math.inf if clip_to is None else float(clip_to)
        #: the running path integral at the last epoch end where the runner's selection recorded a new best
        self.kept_trajectory: dict[str, torch.Tensor] | None = None

    # ------------------------------------------------------------------------------------------ helpers
    def penalty_weight(self, strategy) -> float:
        """Avalanche's lambda for the current experience (2 c), as its ``before_backward`` picks it."""
        exp_id = strategy.clock.train_exp_counter
        return self.si_lambda[exp_id] if exp_id < len(self.si_lambda) else self.si_lambda[-1]

    @staticmethod
    def _selection(strategy) -> BestValidationPlugin | None:
        """The runner's epoch-selection plugin, if there is one and it selects."""
        for plugin in strategy.plugins:
            if isinstance(plugin, BestValidationPlugin) and plugin.enabled:
                return plugin
        return None

    # ------------------------------------------------------------------------------------------ checkpoint
    def cl_state(self) -> dict:
        """What SI carries from one task to the next, by parameter name (flat CPU tensors): the anchors theta~
        (``ewc_data[0]``), the importances Omega (``ewc_data[1]``) and the running sum behind them
        (``syn_data["cum_trajectory"]``).

        The rest of ``syn_data`` is per-step working memory: ``trajectory`` is zeroed and ``old_theta`` / ``grad``
        are overwritten before they are read, and at a task's end ``new_theta`` equals the anchors (Avalanche's
        ``update_ewc_data`` copies one into the other), so :meth:`load_cl_state` rebuilds them from these three.
        """
        return {
            "anchor": param_tensors(self.ewc_data[0]),
            "importance": param_tensors(self.ewc_data[1]),
            "cum_trajectory": param_tensors(self.syn_data["cum_trajectory"]),
        }

    def load_cl_state(self, state: dict, context: RestoreContext) -> None:
        def named(prefix: str, tensors: dict) -> dict[str, ParamData]:
            return {
                n: ParamData(f"{prefix}{n}", t.shape, init_tensor=t.detach().clone().cpu()) for n, t in tensors.items()
            }

        anchor, importance = state["anchor"], state["importance"]
        zeros = {n: torch.zeros_like(t) for n, t in anchor.items()}
        self.ewc_data = (named("", anchor), named("imp_", importance))
        self.syn_data = {
            "old_theta": named("old_theta_", anchor),
            "new_theta": named("new_theta_", anchor),
            "grad": named("grad", zeros),
            "trajectory": named("trajectory_", zeros),
            "cum_trajectory": named("cum_trajectory_", state["cum_trajectory"]),
        }
        self.kept_trajectory = None

    # ------------------------------------------------------------------------------------------ callbacks
    def before_training_exp(self, strategy, **kwargs) -> None:
        # the parent's create_syn_data + init_batch, with the task's anchor weights copied
        SynapticIntelligencePlugin.create_syn_data(
            strategy.model, self.ewc_data, self.syn_data, self.excluded_parameters
        )
        _copy_weights(strategy.model, self.ewc_data[0], self.excluded_parameters)
        for trajectory in self.syn_data["trajectory"].values():
            trajectory.data.fill_(0.0)
        self.kept_trajectory = None
        selection = self._selection(strategy)
        if selection is not None and strategy.plugins.index(selection) > strategy.plugins.index(self):
            raise RuntimeError(
                "SI must come after BestValidationPlugin in the plugin list (strategies.common.after_runner_plugins): "
                "it reads the epoch that plugin selects"
            )

    def before_training_iteration(self, strategy, **kwargs) -> None:
        # the parent's pre_update, with the pre-step weights copied
        _copy_weights(strategy.model, self.syn_data["old_theta"], self.excluded_parameters)

    @torch.no_grad()
    def after_training_iteration(self, strategy, **kwargs) -> None:
        """Add -(task-loss gradient) x (this step's update) to the path integral (stored un-negated, as Avalanche
        stores it: ``trajectory`` = sum g * delta_theta)."""
        lam = self.penalty_weight(strategy)
        params = SynapticIntelligencePlugin.allowed_parameters(strategy.model, self.excluded_parameters)
        for name, param in params:
            new = param.detach().flatten().clone().cpu()
            old = self.syn_data["old_theta"][name].data
            total = (
                param.grad.detach().flatten().cpu() if param.grad is not None else torch.zeros_like(new)
            )
            # the SI penalty's gradient at the forward pass's weights (the pre-step copy):
            # lambda * Omega * (theta - anchor)
            penalty_grad = lam * self.ewc_data[1][name].data * (old - self.ewc_data[0][name].data)
            task_grad = total - penalty_grad
            self.syn_data["new_theta"][name].data = new
            self.syn_data["grad"][name].data = task_grad
            self.syn_data["trajectory"][name].data += task_grad * (new - old)

    def after_training_epoch(self, strategy, **kwargs) -> None:
        selection = self._selection(strategy)
        if selection is None:
            return
        task = strategy.current_task
        history = selection.history.get(task) or []
        if history and selection.best_epoch.get(task) == len(history) - 1:  # this epoch is the new best
            self.kept_trajectory = {k: v.data.clone() for k, v in self.syn_data["trajectory"].items()}

    def after_training_exp(self, strategy, **kwargs) -> None:
        """omega of the kept weights, then the parent's importance update without its hard-coded clip_to=0.001."""
        if self._selection(strategy) is not None and self.kept_trajectory is not None:
            for name, value in self.kept_trajectory.items():
                self.syn_data["trajectory"][name].data = value.clone()
        self.kept_trajectory = None
        SynapticIntelligencePlugin.update_ewc_data(
            strategy.model, self.ewc_data, self.syn_data, self.clip_to, self.excluded_parameters, 1, eps=self.eps
        )


@register_strategy("si")
class SI(CrossTaskState, Finetune):
    """Fine-tuning + Synaptic Intelligence (Zenke et al. 2017); defaults in the module docstring."""

    state_objects = ("si",)

    def __init__(
        self,
        *,
        si_lambda: float | list[float] = 0.1,
        eps: float = 0.1,
        clip_to: float | None = None,
        plugins=None,
        **kwargs,
    ) -> None:
        self.si = CopyingSIPlugin(si_lambda=si_lambda, eps=float(eps), clip_to=clip_to)
        super().__init__(plugins=after_runner_plugins(plugins, self.si), **kwargs)

    def method_state_bytes(self) -> int:
        """What SI must keep between tasks: the anchor weights and the importances Omega (``ewc_data``). The
        plugin's per-step buffers and its running copy of Omega (``syn_data``) are working memory, not storage."""
        return state_nbytes(self.si.ewc_data)
