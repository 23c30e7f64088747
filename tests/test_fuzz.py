"""Fuzzing the tokenizer: damaged MIDI gives in-vocabulary ids or a MidiError, never anything else.

Seeds are generated files (a short piece, the tick-overflow file) and, where ../shared/data is
present, real ones; hypothesis damages them the way broken files come: flipped bytes, cut or
repeated chunks, huge delta times, odd or zero ticks per quarter.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from midibert import MidiError
from midibert.tokenize import Tokenizer
from tests.conftest import SHARED_DATA
from tests.midi_factory import make_score, overflow_midi

SPECS = ("cp-score", "cp-performance", "remi-score", "remi-performance")
TOKENIZERS = [Tokenizer.from_spec(s) for s in SPECS]
HUGE_DELTA = bytes([0xFF, 0xFF, 0xFF, 0x7F])  # 0x0FFFFFFF ticks, the largest delta a MIDI file holds


def _generated() -> bytes:
    score = make_score(
        {
            "MELODY": [(i * 240, 200, 60 + i % 12, 90) for i in range(16)],
            "PIANO": [(i * 480, 480, 40 + i % 5, 60) for i in range(8)],
        },
        meters=[(0, 3, 4), (2880, 4, 4)],
        tempos=[(0, 96.0), (1920, 132.0)],
    )
    with tempfile.TemporaryDirectory() as d:
        score.dump_midi(str(Path(d) / "g.mid"))
        return (Path(d) / "g.mid").read_bytes()


REAL = (
    "pop909/POP909/001/001.mid",
    "pianist8/midi/Yiruma/Yiruma_Love_Hurts.mid",
    "asap/Bach/Prelude/bwv_846/midi_score.mid",
    "vgmidi/labelled/phrases/The Legend of Zelda_N64_The Legend of Zelda Ocarina of Time_Prelude of Light_0.mid",
)


def _seeds() -> list[bytes]:
    seeds = [_generated(), overflow_midi(480, notes=9), overflow_midi(24, notes=3)]
    # small real files (3 tracks with names; transcribed; a notated score; a sequenced phrase) when
    # ../shared/data is there; without it the generated seeds still run
    return seeds + [(SHARED_DATA / rel).read_bytes() for rel in REAL if (SHARED_DATA / rel).is_file()]


SEEDS = _seeds()

mutation = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.floats(0, 1), st.integers(1, 400)),
    st.tuples(st.just("repeat"), st.floats(0, 1), st.integers(1, 64)),
    st.tuples(st.just("delta"), st.floats(0, 1), st.integers(1, 8)),
    st.tuples(st.just("tpq"), st.floats(0, 1), st.sampled_from([0, 1, 3, 7, 0x7FFF, 0x8000, 0xE250, 0xFFFF])),
)


def mutate(data: bytes, mutations: list[tuple]) -> bytes:
    b = bytearray(data)
    for kind, where, n in mutations:
        at = int(where * max(len(b) - 1, 0))
        if kind == "flip" and b:
            b[at] ^= n
        elif kind == "cut":
            del b[at : at + n]
        elif kind == "repeat":
            b[at:at] = b[at : at + n]
        elif kind == "delta":  # huge deltas where an event's delta time would be read
            b[at:at] = HUGE_DELTA * n
        elif kind == "tpq" and len(b) >= 14:  # the header's division field
            b[12:14] = n.to_bytes(2, "big")
    return bytes(b)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, len(SEEDS) - 1),
    mutations=st.lists(mutation, min_size=1, max_size=4),
    tok=st.sampled_from(TOKENIZERS),
)
def test_encode_gives_vocabulary_ids_or_a_midi_error(seed, mutations, tok):
    data = mutate(SEEDS[seed], mutations)
    try:
        enc = tok.encode(data, max_tokens=200_000)  # a lower limit keeps each example fast
    except MidiError:
        return
    ids = np.asarray(enc.ids).reshape(len(enc.ids), -1)
    assert ids.dtype.kind == "i" and (ids >= 0).all() and (ids < np.asarray(tok.vocab_sizes)).all()
    assert len(enc.note_index) == len(ids) and enc.note_index.max(initial=-1) < len(enc.notes)


@pytest.mark.parametrize("tok", TOKENIZERS, ids=SPECS)
def test_every_seed_encodes_or_is_refused(tok):
    """The seeds themselves: the generated piece encodes, the overflowing file is refused, the one
    of three notes each held for 2**28 ticks encodes in few tokens."""
    assert len(tok.encode(SEEDS[0])) > 0
    with pytest.raises(MidiError, match="do not fit 32-bit ticks"):
        tok.encode(SEEDS[1])
    assert len(tok.encode(SEEDS[2])) <= 3 * (tok.config.max_empty_bars + 1) * max(tok.token_cost)
