"""DataModules and the step sampler: padded batches, masks, mixes and a resumable order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from midibert.tokenize.labels import IGNORE
from midibert.training.datamodule import (
    PretrainDataModule,
    SequenceClassificationDataModule,
    TokenClassificationDataModule,
)
from midibert.training.sampler import StepSampler
from tests.midi_factory import emopia_layout


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("batches")
    return {"path": str(root / "sample"), "cache_dir": str(root / "cache"), "seq_len": 64, "batch_size": 4}


def test_token_batches_pad_mask_and_cover_every_token(sample):
    dm = TokenClassificationDataModule(dataset="sample", label="melody3", **sample)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    ids, mask = batch["input_ids"], batch["attention_mask"]
    assert ids.shape[:2] == mask.shape == batch["labels"].shape and ids.shape[2] == len(dm.tokenizer.families)
    assert (
        (ids[~mask] == 0).all()
        and (batch["labels"][~mask] == IGNORE).all()
        and (batch["note_index"][~mask] == -1).all()
    )
    # training windows tile each piece exactly once
    split = dm.splits["train"]
    assert sum(int(n) for _, _, n in dm.train_set.rows) == int(split.offsets[-1])
    # evaluation windows overlap, so every test note is seen
    seen = {
        (int(p), int(n))
        for b in dm.test_dataloader()
        for p, row in zip(b["piece"], b["note_index"])
        for n in row
        if n >= 0
    }
    assert len(seen) == len(dm.test_targets())


def test_sequence_batches_carry_piece_labels(sample):
    dm = SequenceClassificationDataModule(
        dataset="sample", label_key="emotion", classes=["Q1", "Q2", "Q3", "Q4"], **sample
    )
    dm.setup()
    for b in dm.val_dataloader():
        assert b["labels"].shape == b["piece"].shape
        assert torch.equal(b["labels"], torch.as_tensor(dm.piece_labels["valid"])[b["piece"]])
    assert dm.train_class_counts().sum() == len(dm.splits["train"])
    for ds in (dm.train_set, dm.val_set, dm.test_set):  # no short remainder carries a piece's label
        piece_len = np.diff(ds.split.offsets)[ds.rows[:, 0]]
        assert (ds.lengths == np.minimum(piece_len, dm.seq_len)).all()
    assert (np.diff(dm.train_set.split.offsets) > dm.seq_len).any()


def test_the_run_seed_leaves_the_split_alone(tmp_path):
    """Repeated seeds are compared on one test set: only `split_seed` redraws a seeded split (EMOPIA's)."""
    emopia_layout(tmp_path / "emopia")

    def test_songs(**seeds):
        dm = SequenceClassificationDataModule(
            dataset="emopia",
            path=str(tmp_path / "emopia"),
            cache_dir=str(tmp_path / "cache"),
            label_key="emotion",
            classes=["Q1", "Q2", "Q3", "Q4"],
            seq_len=16,
            **seeds,
        )
        dm.setup()
        return sorted(piece["group"] for piece in dm.splits["test"].pieces)

    assert test_songs(seed=1) == test_songs(seed=2) == test_songs(seed=3, split_seed=42)
    assert test_songs(seed=1, split_seed=7) != test_songs(seed=1)


def test_pretrain_mix_weights(sample):
    one = PretrainDataModule(
        datasets=[{"name": "sample", "path": sample["path"], "weight": 1.0}],
        **{k: v for k, v in sample.items() if k != "path"},
    )
    two = PretrainDataModule(
        datasets=[{"name": "sample", "path": sample["path"], "weight": 2.5}],
        **{k: v for k, v in sample.items() if k != "path"},
    )
    one.setup()
    two.setup()
    assert len(two.train_set) == 2 * len(one.train_set) + round(0.5 * len(one.train_set))


def test_step_sampler_order_is_a_function_of_the_step():
    step = {"n": 0}
    sampler = StepSampler(10, 3, seed=1, step=lambda: step["n"])
    first_pass = list(sampler)
    assert len(first_pass) == 3 and len({i for b in first_pass for i in b}) == 9  # full batches, no repeats
    step["n"] = 2  # resumed after two optimizer steps: the third batch comes next
    assert list(sampler) == first_pass[2:]
    step["n"] = 3  # the next pass is reshuffled, the same way every time
    assert list(sampler) == list(sampler) != first_pass
    with pytest.raises(ValueError, match="fewer than one batch"):
        StepSampler(2, 3)
    assert np.isclose(len(StepSampler(100, 8)), 12)


def test_bucketed_batches_hold_like_lengths_and_stay_a_function_of_the_step():
    lengths = [64] * 14 + [10, 50, 20, 40, 30, 60]  # 14 full windows and 6 pieces' last windows
    step = {"n": 0}
    sampler = StepSampler(20, 4, seed=3, step=lambda: step["n"], lengths=lengths)
    first_pass = list(sampler)
    assert len(first_pass) == 5 and len({i for b in first_pass for i in b}) == 20
    widths = sorted(sorted((lengths[i] for i in b), reverse=True) for b in first_pass)
    # three batches of full windows (no attention mask needed); the short ones sorted into the rest
    assert widths == [[40, 30, 20, 10], [64, 64, 60, 50]] + [[64] * 4] * 3
    padded = sum(4 * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in first_pass)
    unbucketed = StepSampler(20, 4, seed=3).batches(0)
    assert padded < sum(4 * max(lengths[i] for i in b) - sum(lengths[i] for i in b) for b in unbucketed.tolist())
    step["n"] = 2
    assert list(sampler) == first_pass[2:]
    step["n"] = 5
    assert list(sampler) == list(sampler) != first_pass
    with pytest.raises(ValueError, match="lengths"):
        StepSampler(20, 4, lengths=lengths[:-1])


def test_datamodule_buckets_by_length_when_asked(sample):
    dm = TokenClassificationDataModule(dataset="sample", label="melody3", bucket_by_length=True, **sample)
    dm.setup()
    assert dm.train_set.lengths.tolist() == [int(n) for _, _, n in dm.train_set.rows]
    plain = TokenClassificationDataModule(dataset="sample", label="melody3", **sample)
    plain.setup()

    def padding_and_unmasked(module):
        batches = list(module.train_dataloader())
        return sum(int((~b["attention_mask"]).sum()) for b in batches), sum(
            bool(b["attention_mask"].all()) for b in batches
        )

    (padded, unmasked), (padded_before, unmasked_before) = padding_and_unmasked(dm), padding_and_unmasked(plain)
    assert padded < padded_before / 4 and unmasked > unmasked_before
    mix = PretrainDataModule(
        datasets=[{"name": "sample", "path": sample["path"], "weight": 1.5}],
        **{k: v for k, v in sample.items() if k != "path"},
    )
    mix.setup()
    assert mix.train_set.lengths.tolist() == [len(mix.train_set[i]["input_ids"]) for i in range(len(mix.train_set))]


def test_jittered_sampler_keeps_the_order_and_resumes_exactly():
    step = {"n": 0}
    sampler = StepSampler(10, 3, seed=1, step=lambda: step["n"], jitter=5)
    first_pass = list(sampler)
    plain = StepSampler(10, 3, seed=1).batches(0).tolist()
    assert [[i for i, _ in b] for b in first_pass] == plain  # jitter adds shifts, moves nothing else
    shifts = [s for b in first_pass for _, s in b]
    assert all(-5 <= s <= 5 for s in shifts) and len(set(shifts)) > 1
    step["n"] = 2
    assert list(sampler) == first_pass[2:]
    step["n"] = 3  # a new pass draws new shifts
    assert [s for b in sampler for _, s in b] != shifts
    with pytest.raises(ValueError, match="jitter"):
        StepSampler(10, 3, jitter=-1)


def test_a_jittered_window_moves_with_its_labels_inside_its_piece(sample):
    dm = TokenClassificationDataModule(dataset="sample", label="melody3", jitter=16, **sample)
    dm.setup()
    ds = dm.train_set
    # a full window with a neighbour on each side in its piece
    i = next(i for i in range(1, len(ds) - 1) if ds.rows[i - 1, 0] == ds.rows[i, 0] == ds.rows[i + 1, 0])
    piece = ds.split.piece(int(ds.rows[i, 0]))
    whole = {k: np.asarray(v)[piece] for k, v in (("ids", ds.split.ids), ("labels", ds.labels))}
    for shift in (0, 7, -7):
        item, start = ds[(i, shift)], int(ds.rows[i, 1]) + shift - piece.start
        assert np.array_equal(item["input_ids"], whole["ids"][start : start + 64])
        assert np.array_equal(item["labels"], whole["labels"][start : start + 64])
    first, last = ds[(i, -(10**6))], ds[(i, 10**6)]  # as far as the piece allows, the length kept
    assert np.array_equal(first["input_ids"], whole["ids"][:64])
    assert np.array_equal(last["input_ids"], whole["ids"][-64:])
    batch = next(iter(dm.train_dataloader()))
    assert batch["input_ids"].shape[1] <= 64 and (batch["labels"][~batch["attention_mask"]] == IGNORE).all()
    mix = PretrainDataModule(
        datasets=[{"name": "sample", "path": sample["path"]}],
        jitter=16,
        **{k: v for k, v in sample.items() if k != "path"},
    )
    mix.setup()
    j = int(np.flatnonzero(mix.train_set.index[:, 1] == i)[0])
    assert np.array_equal(mix.train_set[(j, 7)]["input_ids"], ds[(i, 7)]["input_ids"])
