"""A useful frozen backbone without downloads: short supervised pretraining on synthetic classes that no task
uses, cached on disk by everything that determines it.

This stands in for the AudioSet/ImageNet checkpoints of the papers, which cannot be fetched on these machines.
The upstream classes (``UPSTREAM_CLASSES``) are disjoint from the default tasks' classes, so the backbone has
never seen a test class.

Importing this module registers the init source ``upstream`` in ``models.init`` (``model.init: upstream``); the
factory resamples its position embedding from the upstream grid to the target's. The cache file holds only
tensors, numbers, strings, lists and tuples, so it is read back with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from audio_ticl.models import ASTBackbone
from audio_ticl.models.init import InitWeights, register_init

from .audio.cache import FeatureCache, extract_features
from .audio.features import SpecAugment, feature_stats
from .config import FeatureConfig, ModelConfig
from .datasets.synthetic import UPSTREAM_CLASSES, SyntheticSource
from .errors import ConfigError
from .front_end import front_end
from .results import save_torch
from .scenarios import FeatureDataset

#: bump when the upstream recipe changes in a way the config does not capture
UPSTREAM_VERSION = 1
UPSTREAM_SEED = 0


def backbone_kwargs(model_cfg: ModelConfig) -> dict:
    """Geometry overrides of the config (None = the registered size's value)."""
    keys = ("embed_dim", "depth", "num_heads", "mlp_ratio")
    out = {k: getattr(model_cfg, k) for k in keys if getattr(model_cfg, k) is not None}
    out.update(
        fstride=model_cfg.fstride,
        tstride=model_cfg.tstride,
        pooling=model_cfg.pooling,
        distill_token=model_cfg.distill_token,
    )
    if model_cfg.patch_size is not None:  # only when set, so the cache keys of 16 x 16 models stay as they were
        size = model_cfg.patch_size
        if len(size) != 2 or any(int(v) < 1 for v in size):
            raise ConfigError(f"config key 'model.patch_size' must be [frequency, time], two ints >= 1, got {size}")
        out["patch_size"] = (int(size[0]), int(size[1]))
    return out


def upstream_mixer(model: str) -> str:
    """The mixer the upstream backbone trains with: GSA for attention models (every attention mixer then starts
    from the same weights), the model's own for models that declare theirs (SSAMBA: ``mamba``)."""
    from audio_ticl.models.registry import model_mixers

    declared = model_mixers(model)
    return declared[0] if declared else "gsa"


def _cache_key(model_cfg: ModelConfig, features: FeatureConfig, frames: int) -> str:
    spec = {
        "version": UPSTREAM_VERSION,
        "seed": UPSTREAM_SEED,
        "model": model_cfg.name,
        "geometry": backbone_kwargs(model_cfg),
        "upstream": dataclasses.asdict(model_cfg.upstream),
        "classes": UPSTREAM_CLASSES,
        "mel": features.num_mel_bins,
        "frames": frames,
    }
    if features.kind != "fbank":  # only then: fbank backbones keep the keys (and caches) they had before MFCC
        spec["front_end"] = {"kind": features.kind, "n_mfcc": features.n_mfcc}
    return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def pretrained_backbone_state(
    model_cfg: ModelConfig, features: FeatureConfig, cache_dir: Path, device: torch.device, progress: bool = True
) -> dict:
    """The upstream backbone checkpoint ``{"state_dict", "input_frames", "val_accuracy", ...}``, trained once
    and then read from ``cache_dir/upstream/``."""
    from audio_ticl.models import create_model

    up = model_cfg.upstream
    source = SyntheticSource(
        classes=list(UPSTREAM_CLASSES),
        clips_per_class={"train": up.clips_per_class, "val": max(4, up.clips_per_class // 4), "test": 1},
        duration_s=up.duration_s,
        seed=UPSTREAM_SEED + 1000,  # clips distinct from the task data even where a class name were reused
    )
    defaults = source.feature_defaults
    frames = defaults.target_frames  # already scaled to the clip length by the source
    path = Path(cache_dir) / "upstream" / f"{_cache_key(model_cfg, features, frames)}.pt"
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True)

    start = time.perf_counter()
    settings = front_end(features, frames)
    cache = FeatureCache(Path(cache_dir) / "features")
    index = {c: i for i, c in enumerate(UPSTREAM_CLASSES)}
    data = {}
    batches, labels = {}, {}
    for split in ("train", "val"):
        clips = [c for c in source.clips() if c.split == split]
        batches[split] = extract_features(clips, settings, cache, progress=progress,
                                          desc=f"upstream features {split}").features
        labels[split] = torch.tensor([index[c.label] for c in clips])
    # the synthetic source's constants are fbank's; another front end is normalised by its own training clips
    mean, std = (defaults.mean, defaults.std) if features.kind == "fbank" else feature_stats(batches["train"])
    for split in ("train", "val"):
        augment = SpecAugment(defaults.freqm, defaults.timem) if split == "train" else None
        data[split] = FeatureDataset(batches[split], labels[split], mean, std, augment)

    with torch.random.fork_rng():
        torch.manual_seed(UPSTREAM_SEED)
        backbone: ASTBackbone = create_model(
            model_cfg.name, input_frames=frames, num_mel_bins=settings.feature_bins,
            mixer=upstream_mixer(model_cfg.name),
            **backbone_kwargs(model_cfg),
        ).to(device)
        head = nn.Linear(backbone.num_features, len(UPSTREAM_CLASSES)).to(device)
        params = list(backbone.parameters()) + list(head.parameters())
        optimizer = torch.optim.AdamW(params, lr=up.lr, weight_decay=0.05)
        loader = DataLoader(data["train"], batch_size=up.batch_size, shuffle=True, drop_last=True)
        steps = max(1, up.epochs * len(loader))
        schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=up.lr, total_steps=steps, pct_start=0.15)
        bar = tqdm(total=steps, desc="upstream pretraining (cached after this run)", disable=not progress)
        for _ in range(up.epochs):
            backbone.train()
            for x, y in loader:
                x, y = x.to(device), y.to(device)
                loss = nn.functional.cross_entropy(head(backbone(x)), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")
        bar.close()
        backbone.eval()
        correct = total = 0
        with torch.no_grad():
            for x, y in DataLoader(data["val"], batch_size=128):
                pred = head(backbone(x.to(device))).argmax(1).cpu()
                correct += int((pred == y).sum())
                total += len(y)
    checkpoint = {
        "state_dict": {k: v.cpu() for k, v in backbone.state_dict().items()},
        "input_frames": frames,
        "grid": tuple(backbone.patch_grid),
        "num_prefix_tokens": backbone.num_prefix_tokens,
        "val_accuracy": correct / max(total, 1),
        "classes": list(UPSTREAM_CLASSES),
        "seconds": time.perf_counter() - start,
    }
    save_torch(path, checkpoint)
    return checkpoint


@register_init("upstream")
def upstream_init(
    backbone: nn.Module,
    *,
    model_cfg: ModelConfig,
    features: FeatureConfig,
    cache_dir: Path,
    device: torch.device,
    progress: bool = True,
) -> InitWeights:
    """Init source ``upstream``: the cached (or now trained) upstream backbone, with the grid it was trained at."""
    checkpoint = pretrained_backbone_state(model_cfg, features, cache_dir, device, progress)
    return InitWeights(checkpoint["state_dict"], grid=tuple(checkpoint["grid"]))
