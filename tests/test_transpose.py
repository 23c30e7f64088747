"""Moving pitches. Random transposition of training windows: one shift per window, every note kept
on the keyboard, nothing but pitches moved, and only while training. Key normalisation: every
window's most used pitch class moved to C, whatever key it came in, in training and prediction."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from midibert.tokenize import PAD, Tokenizer
from midibert.training.finetuner import FineTuner
from midibert.transpose import normalize_key, transpose

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
    column, first, count, _ = CP.pitch_ids()
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
    column, first, count, _ = CP.pitch_ids()
    ids = torch.zeros(2000, 3, len(CP.families), dtype=torch.long)
    ids[..., column] = first + torch.tensor([40, 43, 47])  # a chord in the middle of the keyboard
    ids[0, :, column] = first + torch.tensor([0, 43, count - 1])  # a window spanning every key: cannot move
    torch.manual_seed(0)
    shifts = (transpose(ids, CP.pitch_ids(), 6)[..., column] - ids[..., column])[:, 0]
    assert shifts[0] == 0
    assert set(shifts[1:].tolist()) == set(range(-6, 7))  # uniform over -6..6, none outside


def test_remi_moves_pitch_tokens_only():
    _, first, count, _ = REMI.pitch_ids()
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


def midi_pitches(ids: torch.Tensor, tok: Tokenizer = CP) -> torch.Tensor:
    column, first, _, lowest = tok.pitch_ids()
    return ids[..., column] - first + lowest


def cp_melody(pitches: list[list[int]]) -> torch.Tensor:
    """One CP window per row of MIDI pitches (other families at a fixed real value)."""
    column, first, _, lowest = CP.pitch_ids()
    ids = torch.full((len(pitches), len(pitches[0]), len(CP.families)), 3, dtype=torch.long)
    ids[..., column] = first + torch.tensor(pitches) - lowest
    return ids


def test_key_normalisation_moves_the_most_used_class_to_c_by_the_nearer_shift():
    g_major = [67, 71, 74, 67, 79, 62, 67]  # G most used: up 5 (to C) rather than down 7
    d_minor = [62, 65, 69, 62, 74, 61, 62]  # D: down 2 rather than up 10
    low_a = [21, 24, 21, 28, 21, 33, 21]  # A0 cannot go down 9: up 3
    high_c = [108, 96, 108, 100, 103, 108, 91]  # already C
    ids = cp_melody([g_major, d_minor, low_a, high_c])
    out = midi_pitches(normalize_key(ids, torch.ones(ids.shape[:2], dtype=torch.bool), CP.pitch_ids()))
    assert out.tolist() == [
        [p + 5 for p in g_major],
        [p - 2 for p in d_minor],
        [p + 3 for p in low_a],
        high_c,
    ]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), shift=st.integers(-12, 12))
def test_key_normalisation_forgets_the_key_a_window_came_in(seed, shift):
    """A window and its transposition come out in C alike, but for whole octaves; only real pitch
    tokens move and count (padding, MASK, NONE and the other families stay)."""
    column, first, count, _ = CP.pitch_ids()
    ids = cp_windows(seed)
    ids[..., column] = first + 30 + ids[..., column] % 40  # room to move
    ids[:, 3:13] = ids[:, 3:4]  # one pitch class clearly the most used (a tie is broken by class)
    ids[:, -5:] = PAD
    ids[:, :3, column] = torch.tensor([0, 1, 2])  # PAD, MASK, NONE among the pitches
    mask = torch.ones(ids.shape[:2], dtype=torch.bool)
    mask[:, -5:] = False
    moved = ids.clone()
    moved[..., column] = torch.where(ids[..., column] >= first, ids[..., column] + shift, ids[..., column])
    a, b = (normalize_key(x, mask, CP.pitch_ids()) for x in (ids, moved))
    is_pitch = (ids[..., column] >= first) & mask
    assert (((a - b)[..., column][is_pitch]) % 12 == 0).all()
    for window, one in zip(a[..., column], is_pitch):
        classes = (window[one] - first + CP.pitch_ids()[3]) % 12
        counts = torch.bincount(classes, minlength=12)
        assert counts[0] == counts.max() and (window[one] < first + count).all()
    others = [f for f in range(ids.shape[-1]) if f != column]
    assert torch.equal(a[..., others], ids[..., others]) and torch.equal(a[~is_pitch], ids[~is_pitch])


def test_remi_key_normalisation():
    _, first, _, lowest = REMI.pitch_ids()
    bar = REMI.vocab["Token"].index("Bar")
    ids = torch.tensor([[bar, first + 62 - lowest, first + 65 - lowest, first + 62 - lowest, PAD]])
    out = normalize_key(ids, ids != PAD, REMI.pitch_ids())
    assert out.tolist() == [[bar, first + 60 - lowest, first + 63 - lowest, first + 60 - lowest, PAD]]


def test_fine_tuning_reads_every_window_in_c_when_told():
    seen = []

    class Spy(torch.nn.Module):
        def forward(self, ids, mask):
            seen.append(ids.clone())
            return torch.zeros(len(ids), 4, requires_grad=True)

    ids = cp_melody([[67, 71, 74, 67], [62, 65, 69, 62]])
    mask = torch.ones(ids.shape[:2], dtype=torch.bool)
    batch = {"input_ids": ids, "attention_mask": mask, "labels": torch.zeros(2).long()}
    for key_to_c in (True, False):
        module = FineTuner(Spy(), "sequence", 4, {"lr": 1e-3}, pitch_ids=CP.pitch_ids(), key_to_c=key_to_c)
        module.log = lambda *a, **k: None
        module.training_step(batch, 0)
        module.predict_step(batch, 0)
    in_c = normalize_key(ids, mask, CP.pitch_ids())
    assert not torch.equal(in_c, ids)
    assert torch.equal(seen[0], in_c) and torch.equal(seen[1], in_c)
    assert torch.equal(seen[2], ids) and torch.equal(seen[3], ids)
