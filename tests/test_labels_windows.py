"""Per-token labels through note_index, and windows that keep the token -> note links."""

from __future__ import annotations

import numpy as np
import pytest

from midibert.tokenize import Tokenizer
from midibert.tokenize.labels import IGNORE, melody_classes, melody_labels, velocity_classes, velocity_labels
from midibert.tokenize.windows import make_windows, window_starts
from tests.midi_factory import make_score


def test_melody_classes_from_track_names():
    names = np.array(["MELODY", "Bridge", "PIANO", "Left Hand", "melody 2"])
    assert melody_classes(names, 3).tolist() == [0, 1, 2, 2, 0]
    assert melody_classes(names, 2).tolist() == [0, 1, 1, 1, 0]
    with pytest.raises(ValueError):
        melody_classes(names, 4)


def test_velocity_bins_match_midibert_edges():
    v = np.array([1, 31, 32, 47, 48, 63, 64, 79, 80, 95, 96, 127])
    assert velocity_classes(v).tolist() == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]


def test_labels_follow_note_index():
    score = make_score({"MELODY": [(0, 480, 72, 100)], "PIANO": [(0, 480, 48, 40), (3840, 480, 50, 70)]})
    for spec in ("cp-score", "remi-performance"):
        enc = Tokenizer.from_spec(spec).encode(score)
        mel, vel = melody_labels(enc), velocity_labels(enc)
        assert ((mel == IGNORE) == (enc.note_index < 0)).all()
        for t in np.flatnonzero(enc.note_index >= 0):
            note = enc.note_index[t]
            assert mel[t] == (0 if enc.notes.pitch[note] == 72 else 2)
            assert vel[t] == velocity_classes(enc.notes.velocity[note : note + 1])[0]


def test_windows_pad_mask_and_keep_links(songs):
    tok = Tokenizer.create("cp", kind="score")
    enc = tok.encode(songs[0])
    w = make_windows(enc.ids, enc.note_index, length=256, overlap=64)
    assert len(w) > 1 and w.ids.shape[1:] == (256, 4) and w.attention_mask.sum(1).tolist() == w.lengths.tolist()
    assert (w.ids[~w.attention_mask] == 0).all() and (w.note_index[~w.attention_mask] == -1).all()
    covered = np.unique(w.note_index[w.attention_mask])
    assert np.array_equal(covered[covered >= 0], np.unique(enc.note_index[enc.note_index >= 0]))
    labels = w.take(melody_labels(enc))
    for i in range(len(w)):
        s, n = w.starts[i], w.lengths[i]
        assert np.array_equal(labels[i, :n], melody_labels(enc)[s : s + n])
    assert (w.starts[1:] - w.starts[:-1] == 192).all()


def test_windows_cut_at_bar_lines(songs):
    tok = Tokenizer.create("remi", kind="score")
    enc = tok.encode(songs[0])
    w = make_windows(enc.ids, enc.note_index, length=256, bar_start=enc.bar_start)
    assert len(w) > 1 and w.lengths.sum() == len(enc)  # no overlap: every token exactly once
    assert all(enc.bar_start[s] for s in w.starts)
    assert (w.lengths <= 256).all()


def test_window_arguments_checked():
    with pytest.raises(ValueError):
        make_windows(np.zeros(10), np.zeros(10), length=4, overlap=4)


@pytest.mark.parametrize(
    ("n", "expected"), [(600, [(0, 256), (256, 256), (344, 256)]), (512, [(0, 256), (256, 256)]), (100, [(0, 100)])]
)
def test_end_aligned_windows_leave_no_short_remainder(n, expected):
    starts, lengths = window_starts(n, 256, end_aligned=True)
    assert list(zip(starts.tolist(), lengths.tolist())) == expected
    assert window_starts(600, 256)[1].tolist() == [256, 256, 88]  # the default keeps the remainder


def test_end_aligned_windows_cover_a_piece_cut_at_bar_lines(songs):
    enc = Tokenizer.create("cp", kind="score").encode(songs[0])
    w = make_windows(enc.ids, enc.note_index, length=256, bar_start=enc.bar_start, end_aligned=True)
    assert len(enc) > 256 and w.lengths[-1] == 256 and w.starts[-1] + 256 == len(enc)
    assert all(enc.bar_start[s] for s in w.starts[:-1])
    covered = np.unique(w.note_index[w.attention_mask])
    assert np.array_equal(covered[covered >= 0], np.unique(enc.note_index[enc.note_index >= 0]))
