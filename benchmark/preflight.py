"""Every config error before any work: each method's model, initial weights, PET method and strategy are built
once, and a zero clip goes through the model, before any feature is extracted or any upstream model trained. A typo
in the last method's strategy options then fails in seconds, naming the key, instead of after the earlier methods
have trained for an hour. ``ticl run --check`` runs only this.

What is not built here: the ``upstream`` init (it trains a model; it is built, and cached, by the run itself) and
converter specs that name a hub model rather than a file (fetching them is the run's first step).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from .config import MethodConfig, RunConfig
from .errors import ConfigError, TICLError

__all__ = ["CHECK_FRAMES", "MethodCheck", "preflight", "describe"]

log = logging.getLogger("ticl")

#: input frames of the dry run when the clip length comes from the data (``features.target_frames: null``)
CHECK_FRAMES = 128


@dataclass(frozen=True)
class MethodCheck:
    """What the dry run built for one method."""

    method: str
    frames: int
    init: str
    #: parameters of the model with one task's head and PET modules
    params: int


def _init_to_check(spec: str) -> str | None:
    """The init spec to load in the dry run: a file, or a converter spec with a file; None for the rest."""
    from audio_ticl.models.convert import is_converter_spec, parse_init_spec

    if spec in ("random", "upstream"):
        return None
    if not is_converter_spec(spec):
        return spec  # a state-dict file (or an unknown name: init_backbone says which)
    _, _, file = parse_init_spec(spec)
    return spec if file is not None else None


def _frames(cfg: RunConfig) -> int:
    return int(cfg.features.target_frames) if cfg.features.target_frames else CHECK_FRAMES


def _check_method(cfg: RunConfig, index: int, method: MethodConfig, device: torch.device) -> MethodCheck:
    from audio_ticl.models import TaskIncrementalModel, create_model, create_pet, init_backbone
    from audio_ticl.models.errors import ModelError
    from audio_ticl.strategies import get_strategy, make_optimizer_factory

    from .front_end import input_bins
    from .upstream import backbone_kwargs

    key = f"methods.{index}"
    frames, bins = _frames(cfg), input_bins(cfg.features)
    try:
        backbone = create_model(cfg.model.name, input_frames=frames, num_mel_bins=bins, mixer=method.mixer,
                                **backbone_kwargs(cfg.model))
    except KeyError as exc:
        raise ConfigError(f"config key 'model.name': {exc}") from None
    except (ModelError, TypeError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"config key 'model' (method '{method.name}', mixer '{method.mixer}', {frames} frames): "
                          f"the backbone cannot be built: {exc}") from None
    spec = _init_to_check(cfg.model.init)
    if spec is not None:
        try:
            init_backbone(backbone, spec)
        except (ModelError, OSError, RuntimeError, ValueError) as exc:
            raise ConfigError(f"config key 'model.init': {exc}") from None
    pet = None
    if method.pet:
        try:
            pet = create_pet(method.pet, **method.pet_options)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"config key '{key}.pet_options' ({method.pet}): {exc}") from None
    try:
        net = TaskIncrementalModel(backbone, pet, per_task_pos_embed=cfg.model.per_task_pos_embed)
        net.add_task(0, 2)
        net.to(device).eval()
        with torch.no_grad():
            net(torch.zeros(1, frames, bins, device=device), torch.zeros(1, dtype=torch.long, device=device))
    except (ModelError, TypeError, ValueError, RuntimeError) as exc:
        raise ConfigError(f"config key '{key}' ({method.name}: pet '{method.pet}', mixer '{method.mixer}'): the "
                          f"model does not run on {frames} frames x {bins} bins: {exc}") from None
    train = cfg.method_train(method)
    try:
        strategy_cls = get_strategy(method.strategy)
        strategy = strategy_cls(
            model=net, optimizer_factory=make_optimizer_factory(train.optimizer, train.lr, train.weight_decay,
                                                                train.momentum),
            train_mb_size=train.batch_size, train_epochs=train.epochs, eval_mb_size=train.eval_batch_size,
            device=device, plugins=[], **method.strategy_options,
        )
    except TICLError as exc:
        where = f"{key}.strategy_options" if method.strategy_options else f"{key}.strategy"
        raise ConfigError(f"config key '{where}' ({method.name}): {exc}") from None
    except TypeError as exc:
        raise ConfigError(f"config key '{key}.strategy_options' ({method.name}, strategy '{method.strategy}'): "
                          f"{exc}") from None
    del strategy
    return MethodCheck(method.name, frames, cfg.model.init, int(sum(p.numel() for p in net.parameters())))


def preflight(cfg: RunConfig) -> list[MethodCheck]:
    """Build every method of ``cfg`` once (see the module docstring); the first problem is a ``ConfigError``
    naming the key. Leaves the global RNG as it found it, so a run's numbers do not depend on it."""
    from .runner import resolve_device

    checks = []
    with torch.random.fork_rng(devices=[]):
        for index, method in enumerate(cfg.methods):
            device = resolve_device(cfg.method_train(method).device)
            checks.append(_check_method(cfg, index, method, device))
    return checks


def describe(checks: list[MethodCheck]) -> str:
    """One line per method, for ``ticl run --check``."""
    lines = [f"{c.method}: built on {c.frames} frames, init {c.init!r} "
             f"{'(not loaded: the run builds it)' if _init_to_check(c.init) is None and c.init != 'random' else ''}"
             f"; {c.params:,} parameters with one task" for c in checks]
    return "\n".join(lines)
