"""mask_tokens: whole compound tokens, rate, 80/10/10, padding untouched, modes, determinism."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from midibert.tokenize import IGNORE
from midibert.training.masking import mask_tokens

VOCAB = [8, 20, 30, 40]


def cp_batch(B=8, L=200, seed=0, bar_every=10):
    """Random CP tokens, right padded to different lengths, a new bar (Bar id 4) every few tokens."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.stack([torch.randint(3, v, (B, L), generator=g) for v in VOCAB], dim=-1)
    ids[..., 0] = 3  # Bar_Continue
    ids[:, ::bar_every, 0] = 4  # Bar_New
    lengths = torch.randint(L // 2, L + 1, (B,), generator=g)
    lengths[0] = L
    mask = torch.arange(L)[None] < lengths[:, None]
    ids[~mask] = 0
    return ids, mask


def bars(ids):
    """Where CP bars begin (Bar_New), as the batches carry it (Tokenizer.is_bar_start, cached)."""
    return ids[..., 0] == 4


@pytest.mark.parametrize("mode", ["token", "span", "bar"])
def test_rate_and_padding(mode):
    ids, mask = cp_batch()
    masked, targets, where = mask_tokens(
        ids, mask, VOCAB, mode=mode, generator=torch.Generator().manual_seed(0), bar_start=bars(ids)
    )
    assert not where[~mask].any()
    assert (masked[~mask] == 0).all() and (targets[~mask] == IGNORE).all()
    rate = where.sum(1).float() / mask.sum(1)
    tol = 0.01 if mode != "bar" else 0.06  # whole bars overshoot by up to one bar
    assert ((rate - 0.15).abs() <= tol).all(), rate
    # every family of a chosen position is predicted, nothing else is
    assert ((targets != IGNORE) == where[..., None]).all()
    assert (targets[where] == ids[where]).all()
    assert (masked[~where] == ids[~where]).all()


def test_80_10_10():
    ids, mask = cp_batch(B=64, L=500)
    masked, _, where = mask_tokens(ids, mask, VOCAB, generator=torch.Generator().manual_seed(3))
    n = where.sum().item()
    is_mask = (masked[where] == 1).all(-1)
    kept = (masked[where] == ids[where]).all(-1)
    changed = ~is_mask & ~kept
    assert abs(is_mask.sum().item() / n - 0.8) < 0.02
    # a random token can by chance equal the original in every family (rare with these vocabs)
    assert abs(changed.sum().item() / n - 0.1) < 0.02
    assert abs(kept.sum().item() / n - 0.1) < 0.02
    # random replacements are real tokens of each family, never special ones
    rnd = masked[where][changed]
    assert (rnd >= 3).all() and (rnd < torch.tensor(VOCAB)).all()


def test_remi_and_default_mask():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 60, (4, 100), generator=g)
    ids[1, 70:] = 0
    masked, targets, where = mask_tokens(ids, None, [60], generator=g)
    assert masked.shape == targets.shape == ids.shape and where.shape == (4, 100)
    assert not where[1, 70:].any() and where[1].sum() == round(0.15 * 70)


def test_bar_mode_masks_whole_bars_of_remi():
    ids, mask = cp_batch(B=4, L=120, bar_every=12)
    remi_like = ids[..., 1].clamp(min=4)
    remi_like[:, ::12] = 3  # REMI "Bar" token id, found nowhere else
    remi_like[~mask] = 0
    _, _, where = mask_tokens(
        remi_like, mask, [20], mode="bar", bar_start=remi_like == 3, generator=torch.Generator().manual_seed(0)
    )
    for row, real in zip(where, mask):
        bars = row[real][: real.sum() // 12 * 12].view(-1, 12)
        assert (bars.all(1) | ~bars.any(1)).all()  # each complete bar fully in or fully out


def test_span_mode_makes_runs():
    ids, mask = cp_batch(B=16, L=400)
    _, _, where = mask_tokens(ids, mask, VOCAB, mode="span", mean_span=4.0, generator=torch.Generator().manual_seed(0))
    starts = (where[:, 1:] & ~where[:, :-1]).sum() + where[:, 0].sum()
    assert where.sum() / starts > 2.5  # mean run length well above single tokens


def test_deterministic_with_generator():
    ids, mask = cp_batch()
    for mode in ("token", "span", "bar"):
        a = mask_tokens(ids, mask, VOCAB, mode=mode, generator=torch.Generator().manual_seed(7), bar_start=bars(ids))
        b = mask_tokens(ids, mask, VOCAB, mode=mode, generator=torch.Generator().manual_seed(7), bar_start=bars(ids))
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    with pytest.raises(ValueError):
        mask_tokens(ids, mask, VOCAB, mode="whole")
    with pytest.raises(ValueError, match="bar_start"):
        mask_tokens(ids, mask, VOCAB, mode="bar")


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 30), min_size=1, max_size=5),
    seed=st.integers(0, 2**16),
    mode=st.sampled_from(["token", "span", "bar"]),
    rate=st.floats(0.05, 1.0),
)
def test_never_touches_padding(lengths, seed, mode, rate):
    g = torch.Generator().manual_seed(seed)
    L = max(lengths) + 1
    ids = torch.stack([torch.randint(3, v, (len(lengths), L), generator=g) for v in VOCAB], dim=-1)
    mask = torch.arange(L)[None] < torch.tensor(lengths)[:, None]
    ids[~mask] = 0
    ids[:, ::4, 0] = 4  # Bar_New every 4 tokens
    ids[~mask] = 0
    masked, targets, where = mask_tokens(ids, mask, VOCAB, rate=rate, mode=mode, generator=g, bar_start=bars(ids))
    assert not where[~mask].any() and (masked[~mask] == 0).all()
    assert ((where.sum(1) > 0) == (mask.sum(1) > 0)).all()  # any real token -> at least one chosen


def test_copy_baselines_on_a_hand_made_sequence():
    from midibert.training.masking import copy_baselines

    # families (Position, Pitch); position 4 is padding, positions 1, 2 and 5 are masked
    ids = torch.tensor([[[5, 40], [5, 41], [6, 41], [6, 43], [0, 0]], [[7, 50], [7, 50], [8, 52], [8, 52], [9, 53]]])
    where = torch.tensor([[False, True, True, False, False], [False, False, False, False, True]])
    real = torch.tensor([[True, True, True, True, False], [True] * 5])
    prev, nxt, n = copy_baselines(ids, where, real)
    # row 0: pos 1 copies pos 0 (5, 40): Position right; its next visible is pos 3 (6, 43): nothing.
    #        pos 2 copies pos 0 (masked pos 1 is skipped): nothing; next pos 3 (6, 43): Position.
    # row 1: pos 4 copies pos 3 (8, 52): nothing; no next token: wrong.
    assert prev.tolist() == [1, 0] and nxt.tolist() == [1, 0] and n.tolist() == [3, 3]
    # REMI (one family) works the same
    prev, nxt, n = copy_baselines(ids[..., 0], where, real)
    assert prev.tolist() == [1] and nxt.tolist() == [1] and n.tolist() == [3]
