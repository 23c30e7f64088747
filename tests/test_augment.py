"""Random transposition of training windows: one shift per window, every note kept on the keyboard,
nothing but pitches moved, and only while training."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from midibert.tokenize import PAD, Tokenizer
from midibert.training.augment import transpose
from midibert.training.finetuner import FineTuner

CP = Tokenizer.from_spec("cp-score")
REMI = Tokenizer.from_spec("remi-score")


def cp_windows(seed: int, B: int = 6, L: int = 40) -> torch.Tensor:
    """Real CP tokens of random values, some rows specials (empty bars: Pitch NONE), right padded."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.stack([torch.randint(0, v, (B, L), generator=g) for v in CP.vocab_sizes], dim=-1)
    ids[:, -5:] = PAD
    return ids


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), most=st.integers(0, 12))
def test_one_shift_per_window_within_the_keyboard(seed, most):
    column, first, count = CP.pitch_ids()
    ids = cp_windows(seed)
    torch.manual_seed(seed)
    out = transpose(ids, CP.pitch_ids(), most)
    others = [f for f in range(ids.shape[-1]) if f != column]
    assert torch.equal(out[..., others], ids[..., others])
    for before, after in zip(ids[..., column], out[..., column]):
        is_pitch = (before >= first) & (before < first + count)
        assert torch.equal(after[~is_pitch], before[~is_pitch])  # PAD, MASK, NONE stay
        shifts = (after - before)[is_pitch].unique()
        assert len(shifts) <= 1 and all(abs(int(s)) <= most for s in shifts)
        assert ((after[is_pitch] >= first) & (after[is_pitch] < first + count)).all()


def test_shifts_are_drawn_from_every_amount_that_fits():
    column, first, count = CP.pitch_ids()
    ids = torch.zeros(2000, 3, len(CP.families), dtype=torch.long)
    ids[..., column] = first + torch.tensor([40, 43, 47])  # a chord in the middle of the keyboard
    ids[0, :, column] = first + torch.tensor([0, 43, count - 1])  # a window spanning every key: cannot move
    torch.manual_seed(0)
    shifts = (transpose(ids, CP.pitch_ids(), 6)[..., column] - ids[..., column])[:, 0]
    assert shifts[0] == 0
    assert set(shifts[1:].tolist()) == set(range(-6, 7))  # uniform over -6..6, none outside


def test_remi_moves_pitch_tokens_only():
    _, first, count = REMI.pitch_ids()
    assert REMI.vocab["Token"][first] == "Pitch_21" and REMI.vocab["Token"][first + count - 1] == "Pitch_108"
    ids = torch.randint(0, len(REMI.vocab["Token"]), (8, 64))
    torch.manual_seed(1)
    out = transpose(ids, REMI.pitch_ids(), 5)
    is_pitch = (ids >= first) & (ids < first + count)
    assert torch.equal(out[~is_pitch], ids[~is_pitch]) and not torch.equal(out, ids)


def test_fine_tuning_transposes_training_batches_only():
    column = CP.pitch_ids()[0]
    seen = []

    class Spy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))

        def forward(self, ids, mask):
            seen.append(ids.clone())
            return torch.zeros(len(ids), 4) + self.w

    module = FineTuner(Spy(), "sequence", 4, {"lr": 1e-3, "weight_decay": 0.0}, transpose=6, pitch_ids=CP.pitch_ids())
    ids = torch.zeros(64, 4, len(CP.families), dtype=torch.long)
    ids[..., column] = CP.pitch_ids()[1] + 40
    batch = {"input_ids": ids, "attention_mask": torch.ones(64, 4, dtype=torch.bool), "labels": torch.zeros(64).long()}
    module.log = lambda *a, **k: None  # no trainer attached
    module.training_step(batch, 0)
    module.validation_step(batch, 0)
    assert not torch.equal(seen[0], ids) and torch.equal(seen[1], ids)
