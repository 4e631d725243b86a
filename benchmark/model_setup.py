"""The model of one method: backbone (with the method's token mixer), its initial weights and its PET method."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

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
    frames_per_task: Optional[dict[int, int]] = None,
):
    """Backbone (with the method's token mixer, built for ``frames`` input frames) + its initial weights + the
    method's PET method; ``frames_per_task`` gives each task its own input length (and position embedding)."""
    from audio_ticl.models import TaskIncrementalModel, create_model, create_pet
    from audio_ticl.models.convert import CONVERTERS, is_converter_spec, load_pretrained
    from audio_ticl.models.errors import ModelError
    from audio_ticl.models.pos_embed import resample_pos_embed

    from .upstream import backbone_kwargs, pretrained_backbone_state

    try:
        backbone = create_model(
            cfg.model.name,
            input_frames=frames,
            num_mel_bins=cfg.features.num_mel_bins,
            mixer=method.mixer,
            **backbone_kwargs(cfg.model),
        )
    except KeyError as exc:
        raise ConfigError(f"config key 'model.name': {exc}") from None
    init = cfg.model.init
    if init == "upstream":
        ckpt = pretrained_backbone_state(cfg.model, cfg.features.num_mel_bins, default_cache_dir(cfg.features), device, progress)
        state = dict(ckpt["state_dict"])
        if tuple(ckpt["grid"]) != tuple(backbone.patch_grid):
            state["pos_embed"] = resample_pos_embed(
                state["pos_embed"], tuple(ckpt["grid"]), tuple(backbone.patch_grid), backbone.num_prefix_tokens
            )
        backbone.load_state_dict(state)
    elif is_converter_spec(init):  # e.g. timm:vit_base_patch16_384[:/path/to/weights.pth]
        try:
            backbone.load_state_dict(load_pretrained(init, backbone))
        except ModelError as exc:
            raise ConfigError(f"config key 'model.init': {exc}") from exc
    elif init != "random":
        path = Path(init).expanduser()
        if not path.is_file():
            raise ConfigError(
                f"config key 'model.init': expected upstream, random, <source>:<model>[:<file>] (sources: "
                f"{sorted(CONVERTERS)}) or a state-dict file; '{init}' not found"
            )
        backbone.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    pet = None
    if method.pet:
        try:
            pet = create_pet(method.pet, **method.pet_options)
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"config key 'methods.{method.name}.pet': {exc}") from None
    return TaskIncrementalModel(
        backbone, pet, task_frames=frames_per_task, per_task_pos_embed=cfg.model.per_task_pos_embed
    ).to(device)
