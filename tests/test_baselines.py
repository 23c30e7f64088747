"""Baselines: BiLSTM shapes and padding invariance, skyline melody, majority class."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from midibert.baselines import BiLSTMSequenceClassifier, BiLSTMTokenClassifier, majority_class, skyline_melody
from midibert.model import BertConfig, Embeddings
from tests.test_model import CP_VOCAB, REMI_VOCAB, batch


@pytest.mark.parametrize("vocab", [CP_VOCAB, REMI_VOCAB], ids=["cp", "remi"])
def test_bilstm_shapes_and_padding_invariance(vocab):
    torch.manual_seed(0)
    ids, mask = batch(vocab)
    pad = torch.full((3, 5) + ids.shape[2:], 7)  # garbage ids under extra padding
    longer, longer_mask = torch.cat([ids, pad], 1), torch.cat([mask, torch.zeros(3, 5, dtype=torch.bool)], 1)
    cfg = BertConfig.preset("bert-tiny", vocab_sizes=vocab)
    tok = BiLSTMTokenClassifier(cfg, 3, hidden=16, layers=2).eval()
    out = tok(ids, mask)
    assert out.shape == (3, 12, 3)
    torch.testing.assert_close(tok(longer, longer_mask)[:, :12][mask], out[mask])
    seq = BiLSTMSequenceClassifier(cfg, 4, hidden=16, layers=2).eval()
    assert seq(ids, mask).shape == (3, 4)
    torch.testing.assert_close(seq(longer, longer_mask), seq(ids, mask))
    torch.testing.assert_close(seq(ids), seq(ids, mask))


def test_bilstm_reuses_the_bert_embedding():
    cfg = BertConfig.preset("bert-small", vocab_sizes=CP_VOCAB)
    embed = BiLSTMTokenClassifier(cfg, 2).lstm.embed
    assert isinstance(embed, Embeddings) and embed.tables[0].embedding_dim == cfg.emb_size
    lstm = BiLSTMTokenClassifier(cfg, 2).lstm.lstm
    assert (lstm.num_layers, lstm.hidden_size, lstm.bidirectional) == (3, 256, True)  # the paper's


def test_skyline_melody():
    #          chord C-E-G at 0,  single note at 1, two notes at 2 (unsorted), repeated top at 3
    pitch = np.array([60, 64, 67, 72, 55, 59, 65, 65, 50])
    onset = np.array([0, 0, 0, 1, 2, 2, 3, 3, 3])
    assert skyline_melody(pitch, onset).tolist() == [0, 0, 1, 1, 0, 1, 1, 1, 0]
    shuffled = np.random.default_rng(0).permutation(len(pitch))
    assert skyline_melody(pitch[shuffled], onset[shuffled]).tolist() == skyline_melody(pitch, onset)[shuffled].tolist()
    assert skyline_melody(np.array([]), np.array([])).tolist() == []


def test_majority_class():
    assert majority_class(np.array([2, 1, 2, 0, 2, 1])) == 2
    assert majority_class(torch.tensor([[1, 1, -100, -100, -100], [0, 1, -100, -100, -100]])) == 1
