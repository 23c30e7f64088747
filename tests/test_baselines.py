"""Baselines: BiLSTM shapes and padding invariance, skyline melody, note statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from midibert.baselines import (
    BiLSTM,
    BiLSTMSequenceClassifier,
    BiLSTMTokenClassifier,
    note_features,
    note_statistics,
    skyline_melody,
    top_line,
)
from midibert.model import BertConfig, Embeddings
from midibert.tokenize import Tokenizer
from tests.factories import CP_VOCAB, REMI_VOCAB, batch
from tests.midi_factory import make_score


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
    lstm = BiLSTMTokenClassifier(cfg, 2).lstm
    assert (lstm.num_layers, lstm.hidden_size, len(lstm.backward_lstms)) == (3, 256, 3)  # the paper's


def test_bilstm_equals_a_packed_bidirectional_lstm():
    """Our unpacked layers compute exactly what nn.LSTM(bidirectional) gives on packed sequences."""
    torch.manual_seed(0)
    ids, mask = batch(CP_VOCAB)
    assert len(set(mask.sum(1).tolist())) > 1  # unequal lengths, where packing matters
    ours = BiLSTM(BertConfig.preset("bert-tiny", vocab_sizes=CP_VOCAB), hidden=8, layers=2).eval()
    ref = nn.LSTM(8, 8, 2, batch_first=True, bidirectional=True).eval()
    with torch.no_grad():
        for k in range(2):
            for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                getattr(ours.forward_lstms[k], f"{name}_l0").copy_(getattr(ref, f"{name}_l{k}"))
                getattr(ours.backward_lstms[k], f"{name}_l0").copy_(getattr(ref, f"{name}_l{k}_reverse"))
        packed = pack_padded_sequence(ours.embed(ids), mask.sum(1), batch_first=True, enforce_sorted=False)
        expected = pad_packed_sequence(ref(packed)[0], batch_first=True, total_length=ids.shape[1])[0]
        torch.testing.assert_close(ours(ids, mask)[mask], expected[mask])


def test_skyline_melody():
    #          chord C-E-G at 0,  single note at 1, two notes at 2 (unsorted), repeated top at 3
    pitch = np.array([60, 64, 67, 72, 55, 59, 65, 65, 50])
    onset = np.array([0, 0, 0, 1, 2, 2, 3, 3, 3])
    assert skyline_melody(pitch, onset).tolist() == [0, 0, 1, 1, 0, 1, 1, 1, 0]
    shuffled = np.random.default_rng(0).permutation(len(pitch))
    assert skyline_melody(pitch[shuffled], onset[shuffled]).tolist() == skyline_melody(pitch, onset)[shuffled].tolist()
    assert skyline_melody(np.array([]), np.array([])).tolist() == []


def test_top_line_is_the_top_voice_not_every_note_struck_under_it():
    # soprano holds 72 over the alto's two notes, then 74 over a chord; a lower note of no length
    pitch = np.array([72, 64, 65, 74, 60, 67, 40])
    onset = np.array([0, 0, 480, 960, 960, 960, 1200])
    end = np.array([960, 480, 960, 1440, 1440, 1440, 1200])
    assert skyline_melody(pitch, onset).tolist() == [1, 0, 1, 1, 0, 0, 1]  # takes the alto under the held note
    assert top_line(pitch, onset, end).tolist() == [1, 0, 0, 1, 0, 0, 0]
    # among the notes the soprano is not one of, the alto is the top line until the 74
    among = np.array([0, 1, 1, 1, 1, 1, 1])
    assert top_line(pitch, onset, end, among=among).tolist() == [0, 1, 1, 1, 0, 0, 0]
    # released notes no longer count: after the 74 ends, a low note is the top line
    assert top_line(np.array([74, 50]), np.array([0, 480]), np.array([480, 960])).tolist() == [1, 1]
    assert top_line(np.array([]), np.array([]), np.array([])).tolist() == []
    assert top_line(pitch, onset, end, among=np.zeros(len(pitch))).tolist() == [0] * len(pitch)


def test_top_line_tokens_mark_the_top_voice_from_the_tokens():
    """The note feature a melody head may read: the top-line rule on the notes the tokens hold."""
    # soprano holds 72 over the alto's two notes, then 74 over a chord
    score = make_score(
        {"s": [(0, 960, 72, 80), (960, 480, 74, 80)], "a": [(0, 480, 64, 80), (480, 480, 65, 80), (960, 480, 60, 80)]}
    )
    tok = Tokenizer.from_spec("cp-score")
    enc = tok.encode(score)
    flags = note_features(tok, enc.ids, ["top_line"])
    assert flags.shape == (len(enc), 1)
    on = {int(enc.notes.pitch[i]) for i in enc.note_index[flags[:, 0] == 1]}
    assert on == {72, 74} and (flags[enc.note_index < 0] == 0).all()
    with pytest.raises(ValueError, match="unknown note features"):
        note_features(tok, enc.ids, ["skyline"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 8), st.integers(0, 4), st.integers(40, 50), st.booleans()), max_size=30))
def test_top_line_is_the_definition(notes):
    """Against the rule as stated, note by note: no other weighed note sounding as it starts is higher."""
    onset, length, pitch, among = (np.array([n[k] for n in notes], dtype=np.int64) for k in range(4))
    end = onset + length
    sounds = np.maximum(end, onset + 1)
    expected = [
        int(among[i] and not any(among[j] and j != i and onset[j] <= onset[i] < sounds[j] and pitch[j] > pitch[i]
                                 for j in range(len(notes))))
        for i in range(len(notes))
    ]  # fmt: skip
    assert top_line(pitch, onset, end, among=among).tolist() == expected


def test_note_statistics_read_only_what_the_tokens_carry():
    tok = Tokenizer.create("cp", kind="score")
    pitches = [60, 64, 67, 60, 62, 60, 65, 60] * 2  # C the most used pitch class
    notes = [(i * 240, 240, p, 40 + i) for i, p in enumerate(pitches)]
    enc = tok.encode(make_score({"PIANO": notes}))
    up = tok.encode(make_score({"PIANO": [(s, d, p + 5, v) for s, d, p, v in notes]}))
    res = tok.config.resolution
    row, moved = (note_statistics(e.notes, res, velocity=False) for e in (enc, up))
    assert row[0] == pytest.approx(2.0) and row[2] == 1  # eighth notes: 2 per quarter, one per onset
    assert row[3] + 5 == pytest.approx(moved[3])
    assert np.allclose(row[8:], moved[8:]) and row[8] == 8 / 16  # the profile starts at its tonic, whatever the key
    assert len(note_statistics(enc.notes, res, velocity=True)) == len(row) + 2
