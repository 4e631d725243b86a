"""EWC and online EWC (Kirkpatrick et al. 2017; Schwarz et al. 2018) on Avalanche's ``EWCPlugin``.

Trains what fine-tuning trains (shared weights + the current task's head/PET modules) with the quadratic penalty
(lambda / 2) sum_i F_i (theta_i - theta*_i)^2 pulling every parameter an earlier task trained towards its value
after that task (Kirkpatrick et al. 2017, eq. 3; Avalanche adds ``ewc_lambda * sum F (theta - theta*)^2``, so
``ewc_lambda`` is the paper's lambda / 2). F is the diagonal Fisher information of that task, computed once at
the end of the task, on the weights the runner keeps (the plugin runs after the runner's epoch selection).

**The Fisher.** Kirkpatrick et al. define F_i = E_x E_{y ~ p(y|x)} [(d log p(y|x) / d theta_i)^2]: a square
taken *per sample*, then averaged. Avalanche 0.6's ``EWCPlugin.compute_importances`` instead squares the
gradient of each mini-batch's *mean* loss and averages those squares; near a minimum, where per-sample
gradients largely cancel, that is smaller than the per-sample Fisher by about the batch size (and it depends on
the batch size at all). :meth:`TaskAwareEWCPlugin.compute_importances` computes the per-sample diagonal with
``torch.func`` (``functional_call`` + ``vmap(grad)``, ``fisher_chunk`` samples at a time):

- ``fisher: "empirical"`` (default): y is the sample's true label, F_i = mean_n (d log p(y_n|x_n)/d theta_i)^2,
  the variant most EWC implementations use;
- ``fisher: "true"``: y drawn from the model's own softmax, one label per clip, by inverse-CDF sampling with
  u_n = ``torch.rand(N, generator=Generator().manual_seed(fisher_seed + task))[n]`` (one uniform per clip in
  dataset order, so the result does not depend on ``fisher_chunk`` and a run is deterministic). A one-sample
  Monte-Carlo estimate of the expectation over y rather than its exact value: the exact sum over classes costs
  one backward pass per class and clip, and tasks of the ``dataset_sequence`` protocol have up to 50 classes,
  whereas the sampled estimate costs what the empirical Fisher costs and is unbiased.

The pass reads the task's training data un-augmented (``adapted_dataset.eval()``: SpecAugment sits in the train
transform group; under ``train.max_batches`` that is the subset the task trained on), model in eval mode (each
module's mode is restored after), draws nothing from the global RNG, and gives importances only to parameters
the task trained (``requires_grad``): earlier tasks' frozen heads get none, and a later task's head or PET
modules have no anchor, so they are free.

**Online EWC** (Schwarz et al. 2018, "Progress & Compress", sec. 2, online EWC): one running importance
F* <- gamma F* + F_t and one anchor, the weights after the last task. Avalanche merges the old and new
importances by *position* (``zip_longest`` over ``named_parameters``) and asserts that the names match; a PET
method injects each new task's modules inside the backbone, i.e. in the middle of the parameter order, so the
assertion fails. :class:`TaskAwareEWCPlugin` merges by name (a parameter this task did not train keeps
gamma times its old importance).

Options and defaults (``strategy_options``):

- ``ewc_lambda`` = 100: Avalanche's weight, i.e. the paper's lambda / 2. Kirkpatrick et al. 2017 give no
  transferable value (lambda is tuned per experiment, and it scales with the Fisher's normalisation); values in
  the literature span 1 to 1e4+, so search it (Lee et al. 2024: tune on the first tasks, then fix it).
- ``decay_factor`` (online) = 0.9: Schwarz et al. 2018's gamma (sec. 2, online EWC: gamma < 1 down-weights older
  tasks' Fisher); a hyperparameter of theirs too, so search it with ``ewc_lambda``.
- ``fisher`` = "empirical"; ``fisher_chunk`` = 8 (samples per vmapped per-sample-gradient pass: memory, not
  the result); ``fisher_seed`` = 0 (only for ``fisher: "true"``).
"""
from __future__ import annotations

import warnings
from collections import defaultdict
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from avalanche.training.plugins import EWCPlugin
from avalanche.training.utils import ParamData
from torch.func import functional_call, grad, vmap
from torch.utils.data import DataLoader

from .avalanche_compat import criterion
from .common import CrossTaskState, after_runner_plugins
from .errors import StrategyError
from .finetune import Finetune
from .registry import register_strategy
from .state import RestoreContext, param_data, param_tensors

FISHER_KINDS = ("empirical", "true")


def sample_labels_from_model(probs: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draw: for each row of ``probs`` (N, C) the class k with cdf[k-1] <= u < cdf[k]."""
    cdf = probs.cumsum(dim=1)
    return (cdf <= u.unsqueeze(1).to(cdf)).sum(dim=1).clamp(max=probs.shape[1] - 1)


def _module_modes(model: torch.nn.Module) -> list[tuple[torch.nn.Module, bool]]:
    return [(m, m.training) for m in model.modules()]


def fisher_diagonal(
    model: torch.nn.Module,
    dataset,
    names: Iterable[str],
    device: torch.device | str,
    *,
    kind: str = "empirical",
    chunk: int = 8,
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Per-sample diagonal Fisher of ``model`` (``forward(x, task_label)``) over ``dataset`` (``(x, y, task)``),
    for the parameters ``names``: ``{name: mean_n (d log p(y_n | x_n) / d theta)^2}`` (module docstring)."""
    if kind not in FISHER_KINDS:
        raise StrategyError(f"fisher must be one of {FISHER_KINDS}, got '{kind}'")
    names = list(names)
    named = dict(model.named_parameters())
    params = {n: named[n].detach() for n in names}
    constants = {n: p.detach() for n, p in named.items() if n not in params}
    constants.update(dict(model.named_buffers()))

    def log_prob(p, x, y, task: int):
        logits = functional_call(model, (p, constants), (x.unsqueeze(0), task))
        return -F.cross_entropy(logits, y.unsqueeze(0))  # log p(y | x)

    sums = {n: torch.zeros_like(p) for n, p in params.items()}
    n_total = len(dataset)
    u_all = None
    if kind == "true":
        u_all = torch.rand(n_total, generator=torch.Generator().manual_seed(int(seed)))
    modes = _module_modes(model)
    model.eval()
    try:
        loader = DataLoader(
            dataset, batch_size=max(1, int(chunk)), shuffle=False,
            collate_fn=getattr(dataset, "collate_fn", None), generator=torch.Generator().manual_seed(0),
        )
        start = 0
        for batch in loader:
            x, y, tasks = batch[0].to(device), batch[1].to(device), torch.as_tensor(batch[-1])
            end = start + x.shape[0]
            for task in torch.unique(tasks).tolist():
                idx = torch.nonzero(tasks == task).flatten()
                xs, ys = x[idx.to(device)], y[idx.to(device)]
                if kind == "true":
                    with torch.no_grad():
                        probs = torch.softmax(model(xs, int(task)), dim=-1)
                    ys = sample_labels_from_model(probs, u_all[start:end][idx]).to(device)
                with warnings.catch_warnings():  # vmap's per-sample fallback for fused attention kernels
                    warnings.filterwarnings("ignore", message="There is a performance drop")
                    per_sample = vmap(grad(log_prob), in_dims=(None, 0, 0, None))(params, xs, ys, int(task))
                for n in names:
                    sums[n] += per_sample[n].pow(2).sum(dim=0)
            start = end
    finally:
        for module, training in modes:
            module.train(training)
    return {n: s / max(n_total, 1) for n, s in sums.items()}


class TaskAwareEWCPlugin(EWCPlugin):
    """EWCPlugin with the per-sample Fisher (empirical or true) and a by-name online merge (module docstring)."""

    def __init__(
        self, ewc_lambda: float, mode: str = "separate", decay_factor=None, *,
        fisher: str = "empirical", fisher_chunk: int = 8, fisher_seed: int = 0, **kwargs,
    ) -> None:
        super().__init__(ewc_lambda=ewc_lambda, mode=mode, decay_factor=decay_factor, **kwargs)
        if fisher not in FISHER_KINDS:
            raise StrategyError(f"strategy option 'fisher' must be one of {FISHER_KINDS}, got '{fisher}'")
        if int(fisher_chunk) < 1:
            raise StrategyError(f"strategy option 'fisher_chunk' must be >= 1, got {fisher_chunk}")
        self.fisher = fisher
        self.fisher_chunk = int(fisher_chunk)
        self.fisher_seed = int(fisher_seed)

    def compute_importances(
        self, model, criterion, optimizer, dataset, device, batch_size, num_workers=0
    ) -> dict[str, ParamData]:
        """The per-sample diagonal Fisher over ``dataset`` for the parameters that train (``requires_grad``).

        Same signature as Avalanche's (``criterion``, ``optimizer``, ``batch_size`` and ``num_workers`` are not
        used: the loss is the log-likelihood, and ``fisher_chunk`` sets the pass's chunk size)."""
        names = [n for n, p in model.named_parameters() if p.requires_grad]
        labels = getattr(dataset, "targets_task_labels", None)
        task = int(labels[0]) if labels is not None and len(dataset) else 0
        fisher = fisher_diagonal(
            model, dataset, names, device, kind=self.fisher, chunk=self.fisher_chunk, seed=self.fisher_seed + task
        )
        return {n: ParamData(f"imp_{n}", f.shape, init_tensor=f, device=f.device) for n, f in fisher.items()}

    def after_training_exp(self, strategy, **kwargs):
        """Importances on the task's un-augmented training data; anchors for exactly the parameters with one."""
        t = strategy.clock.train_exp_counter
        dataset = getattr(strategy, "adapted_dataset", None)
        if dataset is None:
            dataset = strategy.experience.dataset
        importances = self.compute_importances(
            strategy.model, criterion(strategy), strategy.optimizer, dataset.eval(), strategy.device,
            strategy.train_mb_size,
        )
        self.update_importances(importances, t)
        params = dict(strategy.model.named_parameters())
        self.saved_params[t] = {
            k: ParamData(k, params[k].shape, init_tensor=params[k].detach().clone(), device=params[k].device)
            for k in self.importances[t]
            if k in params
        }
        if t > 0 and not self.keep_importance_data:
            self.saved_params.pop(t - 1, None)

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
        for name, imp in old.items():  # trained before, not by this task: F_t = 0 there, so gamma * F*
            if name not in merged:
                merged[name] = ParamData(
                    f"imp_{name}", imp.shape, init_tensor=self.decay_factor * imp.data, device=imp.device
                )
        self.importances[t] = merged
        if not self.keep_importance_data:
            del self.importances[t - 1]

    def cl_state(self) -> dict:
        """Per earlier task (Avalanche's experience counter): the importances and the anchor weights, by name."""
        return {
            "importances": {int(t): param_tensors(imp) for t, imp in self.importances.items()},
            "saved_params": {int(t): param_tensors(saved) for t, saved in self.saved_params.items()},
        }

    def load_cl_state(self, state: dict, context: RestoreContext) -> None:
        self.importances = defaultdict(dict)
        self.saved_params = defaultdict(dict)
        for t, tensors in state["importances"].items():
            self.importances[int(t)] = param_data(tensors, context.device, prefix="imp_")
        for t, tensors in state["saved_params"].items():
            self.saved_params[int(t)] = param_data(tensors, context.device)

    def penalty(self, strategy) -> torch.Tensor:
        """The (unweighted by lambda) EWC penalty of the model as it is now; 0 before the second task."""
        loss = strategy.loss
        try:
            strategy.loss = torch.zeros((), device=strategy.device)
            self.before_backward(strategy)
            return strategy.loss / self.ewc_lambda if self.ewc_lambda else strategy.loss
        finally:
            strategy.loss = loss


def _fisher_options(fisher: str, fisher_chunk: int, fisher_seed: int) -> dict:
    return {"fisher": str(fisher), "fisher_chunk": int(fisher_chunk), "fisher_seed": int(fisher_seed)}


@register_strategy("ewc")
class EWC(CrossTaskState, Finetune):
    """Fine-tuning + EWC with one penalty per earlier task (``mode="separate"``; Kirkpatrick et al. 2017)."""

    state_objects = ("ewc",)

    def __init__(
        self, *, ewc_lambda: float = 100.0, fisher: str = "empirical", fisher_chunk: int = 8, fisher_seed: int = 0,
        plugins=None, **kwargs,
    ) -> None:
        self.ewc = TaskAwareEWCPlugin(
            ewc_lambda=float(ewc_lambda), mode="separate", **_fisher_options(fisher, fisher_chunk, fisher_seed)
        )
        super().__init__(plugins=after_runner_plugins(plugins, self.ewc), **kwargs)


@register_strategy("online_ewc")
class OnlineEWC(CrossTaskState, Finetune):
    """Fine-tuning + online EWC (Schwarz et al. 2018): one running importance, decayed by ``decay_factor``."""

    state_objects = ("ewc",)

    def __init__(
        self, *, ewc_lambda: float = 100.0, decay_factor: float = 0.9, fisher: str = "empirical",
        fisher_chunk: int = 8, fisher_seed: int = 0, plugins=None, **kwargs,
    ) -> None:
        self.ewc = TaskAwareEWCPlugin(
            ewc_lambda=float(ewc_lambda), mode="online", decay_factor=float(decay_factor),
            **_fisher_options(fisher, fisher_chunk, fisher_seed),
        )
        super().__init__(plugins=after_runner_plugins(plugins, self.ewc), **kwargs)
