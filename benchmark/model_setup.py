"""The model of one method, from the run config: a thin adapter onto ``models``' factory.

Config keys map to the factory's arguments (``model.name`` and the geometry -> ``create_model``, ``model.init`` ->
``init_backbone``, ``methods.<name>.pet`` -> ``create_pet``); the factory's errors come back as ``ConfigError``
naming the key. ``benchmark.upstream`` registers the ``upstream`` init source on import.
"""
from __future__ import annotations

import torch

from .config import MethodConfig, RunConfig
from .errors import ConfigError
from .scenarios import default_cache_dir


def build_model(
    cfg: RunConfig,
    method: MethodConfig,
    frames: int,
    device: torch.device,
    progress: bool,
    frames_per_task: dict[int, int] | None = None,
):
    """Backbone (with the method's token mixer, built for ``frames`` input frames) + its initial weights + the
    method's PET method; ``frames_per_task`` gives each task its own input length (and position embedding)."""
    from audio_ticl.models import TaskIncrementalModel, create_model, create_pet, init_backbone
    from audio_ticl.models.errors import ModelError

    from .front_end import input_bins
    from .upstream import backbone_kwargs

    try:
        backbone = create_model(
            cfg.model.name,
            input_frames=frames,
            num_mel_bins=input_bins(cfg.features),
            mixer=method.mixer,
            **backbone_kwargs(cfg.model),
        )
    except KeyError as exc:
        raise ConfigError(f"config key 'model.name': {exc}") from None
    upstream = {
        "model_cfg": cfg.model,
        "features": cfg.features,
        "cache_dir": default_cache_dir(cfg.features),
        "device": device,
        "progress": progress,
    }
    try:
        init_backbone(backbone, cfg.model.init, {"upstream": upstream})
    except ModelError as exc:
        raise ConfigError(f"config key 'model.init': {exc}") from None
    pet = None
    if method.pet:
        try:
            pet = create_pet(method.pet, **method.pet_options)
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"config key 'methods.{method.name}.pet': {exc}") from None
    return TaskIncrementalModel(
        backbone, pet, task_frames=frames_per_task, per_task_pos_embed=cfg.model.per_task_pos_embed
    ).to(device)
