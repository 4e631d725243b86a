"""The pretraining loop: the objective's step (SSAST's joint MSPM, or masked frame reconstruction) over the
clips, a linear warm-up and cosine learning rate, a checkpoint written atomically every ``checkpoint_every`` steps
(or epoch), and a resume that gives the bits of an uninterrupted run: the data order of an epoch and the masks of
a step are drawn from generators seeded by (seed, epoch) and (seed, step), and the model, optimiser, schedule and
torch RNG are restored.

Files in the output folder: ``state.pt`` (everything a resume needs), ``ssast.pth`` or ``amba.pth`` (the backbone
and heads in the source project's layout: ``model.init: ssast:<folder>/ssast.pth`` plugs it into ``ticl run``),
``history.csv`` (one row per step), ``source.diff`` when the source tree had local changes and, when done,
``summary.json`` (with the commit, as ``ticl run`` records it).
"""
from __future__ import annotations

import dataclasses
import logging
import math
import time
from pathlib import Path

import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from audio_ticl.benchmark.audio.features import normalize
from audio_ticl.benchmark.checkpoint import plain_config
from audio_ticl.benchmark.errors import CheckpointError
from audio_ticl.benchmark.front_end import input_bins
from audio_ticl.benchmark.pretrain.data import PretrainData, load_pretrain_data
from audio_ticl.benchmark.pretrain.schema import PretrainConfig
from audio_ticl.benchmark.results import provenance, save_torch, write_csv, write_json, write_text
from audio_ticl.benchmark.upstream import backbone_kwargs, upstream_mixer
from audio_ticl.models import create_model
from audio_ticl.models.convert.export import pretraining_state_dict, source_layout
from audio_ticl.models.frame_reconstruction import FrameReconstruction
from audio_ticl.models.mspm import MSPM

__all__ = ["pretrain", "STATE_FILE", "export_name"]

log = logging.getLogger("ticl")
STATE_FILE = "state.pt"
STATE_VERSION = 1


def export_name(layout: str) -> str:
    return "amba.pth" if layout == "ssamba" else "ssast.pth"


def _schedule(step: int, total: int, warmup: int) -> float:
    """Learning-rate factor: linear warm-up over ``warmup`` steps, then cosine decay to zero at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def _generator(*parts: int) -> torch.Generator:
    seed = 0
    for part in parts:
        seed = (seed * 1_000_003 + int(part)) % (2**63 - 1)
    return torch.Generator().manual_seed(seed)


def _build(cfg: PretrainConfig, data: PretrainData) -> MSPM | FrameReconstruction:
    """The backbone inside its objective's module (the pretraining heads beside it)."""
    torch.manual_seed(cfg.seed)
    backbone = create_model(cfg.model.name, input_frames=data.features.shape[1], num_mel_bins=input_bins(cfg.features),
                            mixer=upstream_mixer(cfg.model.name), **backbone_kwargs(cfg.model))
    if cfg.objective == "frame_reconstruction":
        return FrameReconstruction(backbone, **dataclasses.asdict(cfg.reconstruction))
    return MSPM(backbone, cfg.n_mask)


def _export(objective: MSPM | FrameReconstruction) -> dict[str, torch.Tensor]:
    """The backbone in its source layout, with SSAST's heads for MSPM (the reconstruction head has no place in
    SSAST's layout: it stays in ``state.pt``)."""
    heads = objective.heads if isinstance(objective, MSPM) else None
    return pretraining_state_dict(objective.backbone, heads)


def _config_dict(cfg: PretrainConfig) -> dict:
    return plain_config(dataclasses.asdict(cfg))


def _restore(path: Path, cfg: PretrainConfig, objective: nn.Module, optimizer,
             scheduler) -> tuple[int, list[dict], float]:
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("version") != STATE_VERSION:
        raise CheckpointError(f"{path}: pretraining state version {state.get('version')}, this suite writes "
                              f"{STATE_VERSION}; start a new --out")
    saved = state["config"]
    if saved != _config_dict(cfg):
        changed = sorted(k for k in set(saved) | set(_config_dict(cfg)) if saved.get(k) != _config_dict(cfg).get(k))
        raise CheckpointError(f"{path} was written by another config (differs in {', '.join(changed)}); resume with "
                              "the same preset and --set values, or start a new --out")
    objective.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"]), list(state["history"]), float(state["seconds"])


def pretrain(cfg: PretrainConfig, out: Path, progress: bool = True, resume: bool = False) -> dict:
    """Pretrain as ``cfg`` says into ``out``; returns the summary. ``resume`` continues from ``out/state.pt``."""
    out = Path(out)
    state_path = out / STATE_FILE
    if not resume and state_path.exists():
        raise CheckpointError(f"{out} already holds a pretraining run; pass --resume to continue it or choose "
                              "another --out")
    source = provenance()  # the code this process runs: a checkpoint can then be traced to it, as a run can
    if source.dirty:
        write_text(out / "source.diff", source.diff)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    data = load_pretrain_data(cfg, progress)
    sources = ", ".join(f"{name}: {count}" for name, count in data.counts.items())
    log.info("pretraining on %d examples of %d frames from %d clips (%s)", len(data.features), data.features.shape[1],
             data.clips, sources)
    if len(data.features) < cfg.batch_size:
        raise CheckpointError(f"{len(data.features)} examples are fewer than one batch of {cfg.batch_size}")
    objective = _build(cfg, data)
    optimizer = torch.optim.Adam(objective.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.95, 0.999))
    steps_per_epoch = len(data.features) // cfg.batch_size
    total = steps_per_epoch * cfg.epochs
    warmup = int(cfg.warmup * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _schedule(s, total, warmup))
    start, history, seconds = 0, [], 0.0
    if resume and state_path.exists():
        start, history, seconds = _restore(state_path, cfg, objective, optimizer, scheduler)
        log.info("resuming %s at step %d of %d", out, start, total)
    every = cfg.checkpoint_every or steps_per_epoch
    layout = source_layout(objective.backbone)
    bar = tqdm(total=total, initial=start, desc=f"pretraining ({cfg.objective})", disable=not progress, unit="step")
    began = time.perf_counter()
    objective.train()
    order, order_epoch = None, -1
    for step in range(start, total):
        epoch, k = divmod(step, steps_per_epoch)
        if epoch != order_epoch:  # one data order per epoch, from (seed, epoch): a resume draws the same
            order, order_epoch = torch.randperm(len(data.features), generator=_generator(cfg.seed, epoch)), epoch
        batch = normalize(data.features[order[k * cfg.batch_size:(k + 1) * cfg.batch_size]], data.mean, data.std)
        parts = objective(batch, _generator(cfg.seed, 1_000_000 + step))
        optimizer.zero_grad(set_to_none=True)
        parts["loss"].backward()
        optimizer.step()
        scheduler.step()
        history.append({"step": step + 1, "epoch": epoch + 1, "lr": scheduler.get_last_lr()[0],
                        **{key: float(value.detach()) for key, value in parts.items()}})
        bar.update(1)
        elapsed = seconds + time.perf_counter() - began
        shown = {"loss": f"{history[-1]['loss']:.3f}"}
        if "accuracy" in history[-1]:
            shown["acc"] = f"{history[-1]['accuracy']:.2f}"
        bar.set_postfix(**shown,
                        clips_per_s=f"{(step + 1 - start) * cfg.batch_size / max(elapsed - seconds, 1e-9):.1f}")
        if (step + 1) % every == 0 or step + 1 == total:
            save_torch(state_path, {
                "version": STATE_VERSION, "step": step + 1, "config": _config_dict(cfg),
                "model": objective.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "torch_rng": torch.get_rng_state(), "history": history, "seconds": elapsed,
            })
            save_torch(out / export_name(layout), _export(objective))
            write_csv(out / "history.csv", pd.DataFrame(history))
    bar.close()
    seconds += time.perf_counter() - began
    last = history[-1] if history else {}
    summary = {
        "steps": total, "epochs": cfg.epochs, "clips": data.clips, "examples": len(data.features),
        "sources": data.counts,
        "seconds": seconds, "checkpoint": export_name(layout), "init": f"{layout}:{out / export_name(layout)}",
        "objective": cfg.objective,
        "final": {key: value for key, value in last.items() if key not in ("step", "epoch", "lr")},
        "normalisation": {"mean": data.mean, "std": data.std},
        # of the process that finished the run (a resume may run newer code than the steps before it)
        "git_commit": source.commit, "dirty": source.dirty,
    }
    write_json(out / "summary.json", summary)
    write_json(out / "config.json", _config_dict(cfg))
    return summary
