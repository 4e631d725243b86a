"""Synaptic Intelligence (Zenke et al. 2017) through Avalanche's ``SynapticIntelligencePlugin``.

Trains what fine-tuning trains, with a quadratic penalty whose per-parameter importance is the path integral
of gradient x update accumulated online while earlier tasks trained (no extra pass over the data).

Avalanche's plugin works with our multi-head model unchanged: it tracks only parameters with
``requires_grad`` at each step, so earlier tasks' frozen heads/PET modules simply stop contributing to the
penalty (they cannot change anyway), and a new task's parameters are registered when that task starts. Its
importances are anchored to the weights at ``after_training_exp``; the plugin is appended after the runner's,
so that is the epoch the runner's validation-based model selection kept. Note: the plugin keeps its state on
the CPU and copies all trainable weights there twice per iteration, which is slow for large backbones on GPU.

Options: ``si_lambda`` (penalty weight; a list gives one per task), ``eps`` (damping of the importance).
"""
from __future__ import annotations

from avalanche.training.plugins import SynapticIntelligencePlugin

from .common import CrossTaskState, after_runner_plugins
from .finetune import Finetune
from .registry import register_strategy


@register_strategy("si")
class SI(CrossTaskState, Finetune):
    """Fine-tuning + Synaptic Intelligence."""

    state_objects = ("si",)

    def __init__(self, *, si_lambda: float | list[float] = 1.0, eps: float = 1e-7, plugins=None, **kwargs) -> None:
        self.si = SynapticIntelligencePlugin(si_lambda=si_lambda, eps=float(eps))
        super().__init__(plugins=after_runner_plugins(plugins, self.si), **kwargs)
