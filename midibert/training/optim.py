"""The optimizer midibert trains with, without Lightning: AdamW with weight decay on matrices
only, and the fused kernel when every parameter is on CUDA. `midibert.mlm.adamw_with_schedule`
adds the learning-rate schedule; benchmarks build the very same optimizer from here."""

from __future__ import annotations

import torch


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
