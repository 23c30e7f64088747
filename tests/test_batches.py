"""DataModules and the step sampler: padded batches, masks, mixes and a resumable order."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from midibert.datamodule import PretrainDataModule, SequenceClassificationDataModule, TokenClassificationDataModule
from midibert.sampler import StepSampler
from midibert.tokenize.labels import IGNORE


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
    assert (ids[~mask] == 0).all() and (batch["labels"][~mask] == IGNORE).all() and (batch["note_index"][~mask] == -1).all()
    # training windows tile each piece exactly once
    split = dm.splits["train"]
    assert sum(int(n) for _, _, n in dm.train_set.rows) == int(split.offsets[-1])
    # evaluation windows overlap, so every test note is seen
    seen = {(int(p), int(n)) for b in dm.test_dataloader() for p, row in zip(b["piece"], b["note_index"]) for n in row if n >= 0}
    assert len(seen) == len(dm.test_targets())


def test_sequence_batches_carry_piece_labels(sample):
    dm = SequenceClassificationDataModule(dataset="sample", label_key="emotion", classes=["Q1", "Q2", "Q3", "Q4"], **sample)
    dm.setup()
    for b in dm.val_dataloader():
        assert b["labels"].shape == b["piece"].shape
        assert torch.equal(b["labels"], torch.as_tensor(dm.piece_labels["valid"])[b["piece"]])
    assert dm.train_class_counts().sum() == len(dm.splits["train"])


def test_pretrain_mix_weights(sample):
    one = PretrainDataModule(datasets=[{"name": "sample", "path": sample["path"], "weight": 1.0}], **{k: v for k, v in sample.items() if k != "path"})
    two = PretrainDataModule(datasets=[{"name": "sample", "path": sample["path"], "weight": 2.5}], **{k: v for k, v in sample.items() if k != "path"})
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
