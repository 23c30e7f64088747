"""Monteverdi's madrigals from music21's corpus as melody-labelled MIDI: every part a track, the
canto named MELODY, every note of the score kept; converted once."""

from __future__ import annotations

import numpy as np
import pytest
import symusic

from midibert.datasets import madrigals
from midibert.tokenize.labels import melody_classes

pytest.importorskip("music21", reason="music21 (pip install midibert[bench]) holds the madrigals")


def test_two_madrigals_become_labelled_training_pieces_converted_once(tmp_path, monkeypatch):
    from music21 import corpus, harmony

    paths = madrigals.madrigals()
    assert len(paths) >= 40 and all(p.endswith(".mxl") for p in paths)
    monkeypatch.setattr(madrigals, "madrigals", lambda: paths[:2])
    pieces = madrigals.read(tmp_path)
    assert [p.id for p in pieces] == ["madrigal.3.1", "madrigal.3.10"] and {p.split for p in pieces} == {"train"}
    for piece, path in zip(pieces, paths):
        score, source = symusic.Score(str(piece.path)), corpus.parse(path)
        assert [t.name for t in score.tracks] == ["MELODY", *madrigals.part_names(source)[1:]]
        struck = [n for n in source.parts[0].flatten().notes if n.tie is None or n.tie.type == "start"]
        canto = [n.pitch.midi for n in struck if not isinstance(n, harmony.Harmony)]  # a chord symbol is not played
        assert [n.pitch for n in score.tracks[0].notes] == canto  # the canto's notes, a tied note once
        names = np.concatenate([[t.name] * len(t.notes) for t in score.tracks])
        assert (melody_classes(names) == 0).sum() == len(canto) and set(melody_classes(names)) == {0, 2}
    written = pieces[0].path.stat().st_mtime_ns
    assert madrigals.read(tmp_path)[0].path.stat().st_mtime_ns == written  # read again, not converted again
    assert sorted(p.name for p in tmp_path.iterdir()) == ["madrigal.3.1.mid", "madrigal.3.10.mid"]  # no temp files left
