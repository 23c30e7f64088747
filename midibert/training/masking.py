"""Masked-language-model corruption of token batches, as MidiBERT pre-trains on.

A CP token is masked whole: every family of a chosen position is predicted, so the model
cannot copy a note's pitch from its own duration. Of the chosen positions 80% become MASK,
10% a random real token and 10% stay as they are (BERT). Padding is never chosen.

    masked, targets, where = mask_tokens(ids, attention_mask, tokenizer.vocab_sizes, generator=g)
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from midibert.model import padding_mask
from midibert.tokenize.base import MASK, SPECIALS
from midibert.tokenize.labels import IGNORE


def per_family(ids: Tensor) -> Tensor:
    """(B, L, F) ids: CP's as they are, REMI's (B, L) as one family, so one code serves both."""
    return ids if ids.dim() == 3 else ids.unsqueeze(-1)


MODES = ("token", "span", "bar")


def mask_tokens(
    input_ids: Tensor,
    attention_mask: Tensor | None,
    vocab_sizes: list[int],
    *,
    rate: float = 0.15,
    mode: str = "token",
    generator: torch.Generator | None = None,
    mean_span: float = 3.0,
    bar_start: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Corrupt `rate` of the real positions of each sequence; returns (masked_input, targets, where).

    input_ids: (B, L, F) for CP or (B, L) for REMI. targets has the same shape, holding the
    original ids at chosen positions and IGNORE elsewhere; where is (B, L) bool.
    mode "token" picks positions independently; "span" picks runs of geometric length (mean
    `mean_span`); "bar" picks whole bars, a bar starting where `bar_start` (B, L) is True (the
    batches carry it: `Tokenizer.is_bar_start`, cached at preparation). The special ids are the
    lowest of every family, so random replacements are drawn above them.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if mode == "bar" and bar_start is None:
        raise ValueError("mode 'bar' needs bar_start, the (B, L) bar lines the batches carry")
    real = padding_mask(input_ids) if attention_mask is None else attention_mask.bool()
    ids3 = per_family(input_ids)
    if mode == "token":
        where = _choose_tokens(real, rate, generator)
    else:
        starts = bar_start.bool() if mode == "bar" else [None] * len(real)
        where = torch.stack([_choose_runs(r, rate, mean_span, s, generator) for r, s in zip(real, starts)])

    action = torch.rand(where.shape, generator=generator, device=where.device)
    to_mask = where & (action < 0.8)
    to_random = where & (action >= 0.8) & (action < 0.9)
    low = len(SPECIALS)
    random_ids = torch.stack(
        [torch.randint(low, v, ids3.shape[:2], generator=generator, device=ids3.device) for v in vocab_sizes], dim=-1
    )

    masked = ids3.clone()
    masked[to_mask] = MASK
    masked[to_random] = random_ids[to_random]
    targets = torch.full_like(ids3, IGNORE)
    targets[where] = ids3[where]
    if input_ids.dim() == 2:
        masked, targets = masked.squeeze(-1), targets.squeeze(-1)
    return masked, targets, where


def _budget(n_real: Tensor, rate: float) -> Tensor:
    """How many positions to choose: rate of the real ones, at least one if any is real."""
    return torch.where(n_real > 0, (n_real * rate).round().clamp(min=1), 0).long()


def _choose_tokens(real: Tensor, rate: float, generator: torch.Generator | None) -> Tensor:
    """Exactly round(rate * n_real) random real positions per row (like MidiBERT, not Bernoulli,
    so short sequences are corrupted at the same rate as long ones)."""
    scores = torch.rand(real.shape, generator=generator, device=real.device).masked_fill(~real, 2.0)
    rank = scores.argsort(dim=1).argsort(dim=1)
    return rank < _budget(real.sum(1), rate)[:, None]


def _choose_runs(
    real: Tensor, rate: float, mean_span: float, bar_start: Tensor | None, generator: torch.Generator | None
) -> Tensor:
    """One row: whole runs of real positions (geometric spans, or bars) until `rate` is reached."""
    where = torch.zeros_like(real)
    idx = real.nonzero().squeeze(1)  # padding may sit anywhere; runs are over real positions only
    n = len(idx)
    budget = int(_budget(torch.tensor(n), rate))
    if bar_start is not None:
        bar = bar_start[idx].long().cumsum(0)  # tokens before the first bar start form bar 0
        chosen = 0
        for b in torch.randperm(int(bar[-1]) + 1 if n else 0, generator=generator, device=real.device):
            if chosen >= budget:
                break
            in_bar = bar == b
            where[idx[in_bar]] = True
            chosen += int(in_bar.sum())
        return where
    stop = 1.0 - 1.0 / mean_span  # chance that a span goes on past each token
    while int(where.sum()) < budget:
        u = 1.0 - float(torch.rand((), generator=generator))  # in (0, 1], so log(u) is finite
        length = 1 + int(math.log(u) / math.log(stop)) if stop > 0 else 1
        start = int(torch.randint(n, (), generator=generator))
        where[idx[start : start + min(length, budget - int(where.sum()))]] = True
    return where


def copy_baselines(
    input_ids: Tensor, where: Tensor, attention_mask: Tensor | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """Trivial predictors of the masked tokens, scored on the very positions `mask_tokens` chose.

    "prev" copies the nearest earlier token the model can see (real and not chosen), "next" the
    nearest later one; a position with no such neighbour counts as wrong. Returns (prev_hits,
    next_hits, n), each (F,) counts per family (F = 1 for REMI), so batches sum exactly. A model
    below these has not learned to use token order.
    """
    ids3 = per_family(input_ids)
    real = padding_mask(input_ids) if attention_mask is None else attention_mask.bool()
    visible = real & ~where
    B, L = where.shape
    pos = torch.arange(L, device=where.device).expand(B, L)

    def hits(source: Tensor) -> Tensor:  # source: (B, L) index of the neighbour, -1 for none
        got = ids3.gather(1, source.clamp(min=0)[..., None].expand_as(ids3))
        ok = where[..., None] & (source >= 0)[..., None] & (got == ids3)
        return ok.sum((0, 1))

    # the last visible index at or before each position, taken one step back: strictly earlier
    last = torch.where(visible, pos, -1).cummax(1).values
    prev = torch.cat([torch.full_like(last[:, :1], -1), last[:, :-1]], 1)
    rev = torch.where(visible.flip(1), pos, -1).cummax(1).values  # same on the reversed row
    nxt = torch.cat([torch.full_like(rev[:, :1], -1), rev[:, :-1]], 1).flip(1)
    nxt = torch.where(nxt >= 0, L - 1 - nxt, -1)
    return hits(prev), hits(nxt), where.sum().expand(ids3.shape[-1]).clone()
