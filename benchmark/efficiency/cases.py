"""One measured case: a (size, mixer, PET method) at one geometry, built once, with the callables that are timed.

``encoder`` scope: the whole backbone's ``forward_features`` on a (B, frames, 128) fbank; a train step is
forward, a linear head, cross-entropy, backward and an Adam step over what trains: every parameter with no PET
method (full fine-tuning), else the task's PET modules and the head on a frozen backbone.
``op`` scope: the mixer's attention op alone (``TokenMixer.attend``) on (B, heads, tokens + prefix, head_dim)
q, k, v; a train step is its forward and backward.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from audio_ticl.benchmark.efficiency.choices import NO_PET
from audio_ticl.benchmark.efficiency.geometry import N_MELS, Geometry
from audio_ticl.benchmark.metrics import forward_flops
from audio_ticl.models import create_model, create_pet

SCOPES = ("op", "encoder")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
N_CLASSES = 10  # the head of a train step: its size hardly matters
TASK = 0  # the task whose PET modules are injected and run


@dataclass(frozen=True)
class CaseSpec:
    """What one case measures: a size (``base``), registered under ``model``, a mixer and a PET method."""

    size: str
    model: str
    mixer: str
    pet: str = NO_PET


@dataclass(frozen=True)
class Setup:
    """Settings shared by every case of a run. ``model_kwargs`` override the registered sizes (tiny test models)."""

    scope: str = "encoder"
    batch: int = 2
    train: bool = False
    device: str = "cpu"
    dtype: str = "fp32"
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def torch_device(self) -> torch.device:
        return torch.device(self.device)

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]


@dataclass
class Case:
    """A built case: ``forward`` (no autograd) and ``train_step`` (None unless training), on fixed inputs."""

    spec: CaseSpec
    geometry: Geometry
    modules: list[nn.Module]
    forward: Callable[[], object]
    train_step: Callable[[], object] | None
    #: what the optimizer updates (encoder scope) or the inputs that get gradients (op scope)
    trainable: list[torch.Tensor]
    #: tokens the mixers see: patch tokens and the prefix
    sequence_length: int = 0

    def set_training(self, training: bool) -> None:
        """Train mode for train steps (dropout, batch statistics), eval mode for the forward timings."""
        for module in self.modules:
            module.train(training)

    def flops(self) -> int:
        """FLOPs of one forward, by the convention of ``benchmark.metrics`` (a multiply-add counts 2)."""
        self.set_training(False)
        return forward_flops(self.forward, *self.modules)


def _backbone(spec: CaseSpec, geometry: Geometry, setup: Setup, **extra: Any) -> nn.Module:
    torch.manual_seed(0)  # the same weights for every mixer of a size
    kwargs = {"num_mel_bins": N_MELS, "fstride": geometry.stride, "tstride": geometry.stride, **setup.model_kwargs}
    model = create_model(spec.model, input_frames=geometry.frames, mixer=spec.mixer, **{**kwargs, **extra})
    if tuple(model.patch_grid) != geometry.grid:
        raise AssertionError(f"{spec.model}: grid {model.patch_grid} differs from the geometry's {geometry.grid}")
    return model


def encoder_case(spec: CaseSpec, geometry: Geometry, setup: Setup) -> Case:
    """The whole backbone; with a PET method, its task-0 modules injected and everything else frozen."""
    model = _backbone(spec, geometry, setup)
    task = None
    trainable = list(model.parameters())
    if spec.pet != NO_PET:
        model.requires_grad_(False)
        trainable = create_pet(spec.pet).inject(model, TASK)
        task = TASK
    head = nn.Linear(model.num_features, N_CLASSES)
    dev, dtype = setup.torch_device, setup.torch_dtype
    model.to(dev, dtype)
    head.to(dev, dtype)
    x = torch.randn(setup.batch, geometry.frames, N_MELS, device=dev, dtype=dtype)
    y = torch.randint(N_CLASSES, (setup.batch,), device=dev)

    def forward() -> torch.Tensor:
        with torch.no_grad():
            return model.forward_features(x, task_id=task)

    train_step = None
    if setup.train:
        trainable = [*trainable, *head.parameters()]
        optimizer = torch.optim.Adam(trainable, lr=1e-4)

        def train_step() -> None:
            logits = head(model.forward_head(model.forward_features(x, task_id=task)))
            F.cross_entropy(logits.float(), y).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)  # every call starts without gradients, as a training loop does

    return Case(spec, geometry, [model, head], forward, train_step, trainable,
                geometry.tokens + model.num_prefix_tokens)


def op_case(spec: CaseSpec, geometry: Geometry, setup: Setup) -> Case:
    """The mixer's attention op alone, built by the backbone (a one-block copy) so it gets the backbone's heads."""
    if spec.pet != NO_PET:
        raise ValueError(f"scope 'op' has no PET modules, got pet {spec.pet!r}")
    model = _backbone(spec, geometry, setup, depth=1)
    mixer = model.blocks[0].mixer
    prefix = model.num_prefix_tokens
    shape = (setup.batch, mixer.num_heads, prefix + geometry.tokens, mixer.head_dim)
    dev, dtype = setup.torch_device, setup.torch_dtype
    q, k, v = (torch.randn(shape, device=dev, dtype=dtype) for _ in range(3))

    def forward() -> torch.Tensor:
        with torch.no_grad():
            return mixer.attend(q, k, v, geometry.grid, prefix)

    train_step = None
    leaves: list[torch.Tensor] = []
    if setup.train:
        leaves = [t.clone().requires_grad_(True) for t in (q, k, v)]
        grad = torch.randn(shape, device=dev, dtype=dtype)

        def train_step() -> None:
            torch.autograd.backward(mixer.attend(*leaves, geometry.grid, prefix), grad)
            for t in leaves:
                t.grad = None

    return Case(spec, geometry, [mixer], forward, train_step, leaves, shape[2])


def build_case(spec: CaseSpec, geometry: Geometry, setup: Setup) -> Case:
    if setup.scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got {setup.scope!r}")
    return (op_case if setup.scope == "op" else encoder_case)(spec, geometry, setup)
