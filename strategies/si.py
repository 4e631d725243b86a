"""Synaptic Intelligence (Zenke et al. 2017) through Avalanche's ``SynapticIntelligencePlugin``.

Trains what fine-tuning trains, with a quadratic penalty whose per-parameter importance is the path integral
of gradient x update accumulated online while earlier tasks trained (no extra pass over the data).

Avalanche's plugin works with our multi-head model unchanged: it tracks only parameters with
``requires_grad`` at each step, so earlier tasks' frozen heads/PET modules simply stop contributing to the
penalty (they cannot change anyway), and a new task's parameters are registered when that task starts. Its
importances are anchored to the weights at ``after_training_exp``; the plugin is appended after the runner's,
so that is the epoch the runner's validation-based model selection kept. Note: the plugin keeps its state on
the CPU and copies all trainable weights there twice per iteration, which is slow for large backbones on GPU.

Two fixes to Avalanche 0.6's plugin, without which SI is exactly fine-tuning (in the first reference runs it gave
fine-tuning's accuracy matrix on every seed, ``results/baselines``):

- **Weights are copied, not viewed.** Its ``extract_weights`` stores ``param.detach().cpu().flatten()``. On a GPU
  ``.cpu()`` copies; on the CPU it returns the parameter itself, so the stored "old" weights and the task's
  anchor are views that move with every optimizer step: each update's contribution ``grad x (new - old)`` is 0,
  every importance is 0, and so is the penalty. :class:`CopyingSIPlugin` stores clones.
- **No hidden clamp.** Its ``after_training_exp`` clamps every importance at 0.001 (``clip_to``, a constant of
  the Caffe code it was ported from), whatever the scale of the model's importances. Here the clamp is an
  option, off by default as in Zenke et al., where ``c`` (``si_lambda``) alone sets the penalty's strength.

Options: ``si_lambda`` (the paper's c; a list gives one per task), ``eps`` (the paper's xi, damping of the
importance), ``clip_to`` (Avalanche's clamp on each importance; null = none).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from avalanche.training.plugins import SynapticIntelligencePlugin

from .common import CrossTaskState, after_runner_plugins
from .finetune import Finetune
from .registry import register_strategy


@torch.no_grad()
def _copy_weights(model, target: dict, excluded: set) -> None:
    """Avalanche's ``extract_weights``, storing copies (see the module docstring)."""
    for name, param in SynapticIntelligencePlugin.allowed_parameters(model, excluded):
        target[name].data = param.detach().flatten().clone().cpu()


class CopyingSIPlugin(SynapticIntelligencePlugin):
    """SynapticIntelligencePlugin that snapshots weights by copy, with its importance clamp as an option."""

    def __init__(self, si_lambda: float | list[float], eps: float, clip_to: Optional[float] = None) -> None:
        super().__init__(si_lambda=si_lambda, eps=eps)
        self.clip_to = math.inf if clip_to is None else float(clip_to)

    def before_training_exp(self, strategy, **kwargs) -> None:
        # the parent's create_syn_data + init_batch, with the task's anchor weights copied
        SynapticIntelligencePlugin.create_syn_data(strategy.model, self.ewc_data, self.syn_data, self.excluded_parameters)
        _copy_weights(strategy.model, self.ewc_data[0], self.excluded_parameters)
        for trajectory in self.syn_data["trajectory"].values():
            trajectory.data.fill_(0.0)

    def before_training_iteration(self, strategy, **kwargs) -> None:
        # the parent's pre_update, with the pre-step weights copied
        _copy_weights(strategy.model, self.syn_data["old_theta"], self.excluded_parameters)

    def after_training_exp(self, strategy, **kwargs) -> None:
        # the parent's body without its hard-coded clip_to=0.001
        SynapticIntelligencePlugin.update_ewc_data(
            strategy.model, self.ewc_data, self.syn_data, self.clip_to, self.excluded_parameters, 1, eps=self.eps
        )


@register_strategy("si")
class SI(CrossTaskState, Finetune):
    """Fine-tuning + Synaptic Intelligence."""

    state_objects = ("si",)

    def __init__(
        self,
        *,
        si_lambda: float | list[float] = 1.0,
        eps: float = 1e-7,
        clip_to: Optional[float] = None,
        plugins=None,
        **kwargs,
    ) -> None:
        self.si = CopyingSIPlugin(si_lambda=si_lambda, eps=float(eps), clip_to=clip_to)
        super().__init__(plugins=after_runner_plugins(plugins, self.si), **kwargs)
