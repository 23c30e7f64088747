"""The optimizer midibert trains with: AdamW with weight decay on matrices only, and the fused
kernel when every parameter is on CUDA; `adamw_with_schedule` adds warmup and cosine decay for a
LightningModule. Benchmarks build the very same optimizer from here without Lightning (only the
schedule reads the trainer, and imports Lightning when called)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    import pytorch_lightning as pl


def decay_groups(named_params, weight_decay: float) -> list[dict]:
    """AdamW parameter groups: weight decay on matrices, none on biases and norms; frozen ones left out."""
    named = [(n, p) for n, p in named_params if p.requires_grad]
    return [
        {"params": [p for _, p in named if p.ndim >= 2], "weight_decay": weight_decay},
        {"params": [p for _, p in named if p.ndim < 2], "weight_decay": 0.0},
    ]


def adamw(groups: list[dict], lr: float, betas=(0.9, 0.98), fused: bool | None = None) -> torch.optim.AdamW:
    """AdamW over parameter `groups`, with the fused kernel (a few launches per step instead of
    several per tensor) when every parameter is a CUDA float tensor, unless `fused` says otherwise."""
    if fused is None:
        params = [p for g in groups for p in g["params"]]
        fused = bool(params) and all(p.is_cuda and p.is_floating_point() for p in params)
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), fused=fused)


def adamw_with_schedule(
    module: pl.LightningModule,
    groups: list[dict],
    lr: float,
    warmup_steps: int,
    betas=(0.9, 0.98),
    min_lr_ratio: float = 0.0,
):
    """AdamW over parameter `groups`, linear warmup, then cosine decay to the trainer's max_steps;
    a trainer that stops on time alone (`max_time`, `max_steps=-1`) decays to its time budget
    instead, so a time-budgeted run ends at zero learning rate whatever its speed.

    The schedule scales every group's own learning rate (a group's "lr", else `lr`), so layer-wise
    learning rates keep their ratios through warmup and decay.
    """
    # Lightning refuses to clip the gradients of a fused optimizer under mixed precision (it takes
    # such an optimizer to unscale them itself): a trainer that clips gets the unfused kernels
    trainer = module.trainer
    clips = bool(trainer.gradient_clip_val) and "mixed" in str(trainer.precision)
    opt = adamw(groups, lr=lr, betas=betas, fused=False if clips else None)
    progress = _decay_progress(module.trainer, warmup_steps)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress(step)))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _decay_progress(trainer: pl.Trainer, warmup_steps: int) -> Callable[[int], float]:
    """Share of the decay done at a step after warmup: by steps, or by the trainer's Timer when
    only time bounds the run (the decay then starts at the time warmup ends)."""
    from pytorch_lightning.callbacks import Timer

    timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
    if trainer.max_steps <= 0 and timer is not None and timer.time_remaining() is not None:
        budget = timer.time_elapsed() + timer.time_remaining()
        start: list[float] = []

        def by_time(step: int) -> float:
            now = timer.time_elapsed()
            start[:] = start or [now]
            return min(1.0, (now - start[0]) / max(budget - start[0], 1e-9))

        return by_time
    total = max(1, trainer.max_steps if trainer.max_steps > 0 else trainer.estimated_stepping_batches)
    return lambda step: min(1.0, (step - warmup_steps) / max(1, total - warmup_steps))
