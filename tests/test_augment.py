"""Augmented training copies: what each augmentation changes and keeps, which pieces get copies,
and that a preparation holds them in its training split only."""

from __future__ import annotations

import numpy as np
import pytest
import symusic

from midibert import augment as aug
from midibert.datasets import read
from midibert.datasets.prepare import load_split, prepare
from midibert.tokenize.labels import melody_classes


def _score(n: int = 64) -> symusic.Score:
    """A tune over an accompaniment, two tracks, on sixteenths at 480 ticks a quarter."""
    s = symusic.Score(480)
    rng = np.random.default_rng(0)
    for name, low in (("MELODY", 64), ("PIANO", 40)):
        t = symusic.Track(name)
        on = np.sort(rng.integers(0, 64, n)) * 120 + 480
        t.notes = symusic.Note.from_numpy(
            time=on.astype(np.int32),
            duration=np.full(n, 240, np.int32),
            pitch=rng.integers(low, low + 12, n).astype(np.int8),
            velocity=np.full(n, 80, np.int8),
        )
        s.tracks.append(t)
    return s


def _notes(score: symusic.Score) -> list[dict]:
    return [t.notes.numpy() for t in score.tracks]


@pytest.mark.parametrize("name", [n for n in aug.AUGMENTATIONS if n not in ("harmony", "octave")])
def test_every_augmentation_keeps_tracks_and_notes_and_is_reproducible(name):
    src = _score()
    out = aug.augment(src, [name], aug.rng_for("song@aug1"))
    assert [t.name for t in out.tracks] == ["MELODY", "PIANO"]
    assert [len(t.notes) for t in out.tracks] == [len(t.notes) for t in src.tracks]
    again = aug.augment(src, [name], aug.rng_for("song@aug1"))
    other = aug.augment(src, [name], aug.rng_for("song@aug2"))
    same = all(np.array_equal(a["time"], b["time"]) and np.array_equal(a["pitch"], b["pitch"])
               for a, b in zip(_notes(out), _notes(again)))  # fmt: skip
    differs = any(not (np.array_equal(a["time"], b["time"]) and np.array_equal(a["pitch"], b["pitch"]))
                  for a, b in zip(_notes(out), _notes(other)))  # fmt: skip
    assert same and differs
    # the source is never changed in place    assert np.array_equal(_notes(src)[0]["time"], _notes(_score())[0]["time"])


def test_what_each_augmentation_changes():
    src, rng = _score(), aug.rng_for("x")
    before = _notes(src)
    stretched = _notes(aug.stretch(src, rng))
    ratio = stretched[0]["time"][-1] / before[0]["time"][-1]
    assert 1 / aug.STRETCH - 0.01 <= ratio <= aug.STRETCH + 0.01 and abs(ratio - 1) > 1e-3
    assert np.allclose(stretched[1]["time"], before[1]["time"] * ratio, atol=1)  # one factor for every track
    jittered = _notes(aug.jitter(src, rng))
    moved = np.concatenate([j["time"] - b["time"] for j, b in zip(jittered, before)])
    assert np.abs(moved).max() <= aug.JITTER_BEATS * 480 and moved.any()
    warped = _notes(aug.tempo(src, rng))
    assert all((np.diff(w["time"]) >= 0).all() for w in warped)  # order kept: the warp is monotonic
    ratios = warped[0]["time"][1:] / before[0]["time"][1:]
    assert ratios.std() > 0.005  # not one stretch: the tempo changes along the piece
    for _ in range(5):
        moved = [
            a["pitch"].astype(int) - b["pitch"].astype(int) for a, b in zip(_notes(aug.register(src, rng)), before)
        ]
        assert all(len(set(m)) == 1 and m[0] in (-12, 0, 12) for m in moved)


def _in_c() -> symusic.Score:
    """A tune running up and down C major in eighths over a C major accompaniment."""
    s = symusic.Score(480)
    steps = [0, 2, 4, 5, 7, 9, 11]
    tune = [72 + 12 * (k // 7) + steps[k % 7] for k in [*range(10), *range(10, 0, -1)] * 3]
    for name, pitches, every in (("MELODY", tune, 240), ("PIANO", [48, 52, 55, 60] * 15, 240)):
        t = symusic.Track(name)
        n = len(pitches)
        t.notes = symusic.Note.from_numpy(time=(np.arange(n) * every).astype(np.int32),
                                          duration=np.full(n, every, np.int32), pitch=np.array(pitches, np.int8),
                                          velocity=np.full(n, 80, np.int8))  # fmt: skip
        s.tracks.append(t)
    return s


def test_harmony_adds_a_second_voice_under_the_tune_in_its_scale_labelled_accompaniment():
    src = _in_c()
    c_major = np.isin(np.arange(12), [0, 2, 4, 5, 7, 9, 11])
    assert np.array_equal(aug._scale(src), c_major)
    intervals = set()
    for copy in range(8):
        out = aug.augment(src, ["harmony"], aug.rng_for(f"song@aug{copy}"))
        assert [t.name for t in out.tracks] == ["MELODY", "PIANO", "HARMONY"]
        assert [len(t.notes) for t in out.tracks[:2]] == [len(t.notes) for t in src.tracks]  # the song is kept
        assert list(melody_classes(np.array([t.name for t in out.tracks]))) == [0, 2, 2]
        tune, voice = out.tracks[0].notes.numpy(), out.tracks[2].notes.numpy()
        assert 0 < len(voice["time"]) < len(tune["time"])  # now and then it holds a note where the tune moves
        at = np.searchsorted(tune["time"], voice["time"])
        assert np.array_equal(tune["time"][at], voice["time"])  # struck with the tune
        below = tune["pitch"][at].astype(int) - voice["pitch"].astype(int)
        assert set(below) <= {3, 4} or set(below) <= {8, 9}  # a third or a sixth all through
        assert c_major[voice["pitch"] % 12].all()  # in the scale: minor or major as the key has it
        assert (voice["time"] + voice["duration"] <= tune["time"][-1] + tune["duration"][-1]).all()
        intervals.add(int(below.max()))
    assert intervals == {4, 9}  # both thirds and sixths are drawn
    again = aug.augment(src, ["harmony"], aug.rng_for("song@aug1")).tracks[2].notes.numpy()
    first = aug.augment(src, ["harmony"], aug.rng_for("song@aug1")).tracks[2].notes.numpy()
    assert np.array_equal(again["time"], first["time"]) and np.array_equal(again["pitch"], first["pitch"])


def test_harmony_leaves_a_piece_without_a_tune_as_it_is():
    s = _score()
    s.tracks[0].name = "RIGHT HAND"
    out = aug.harmony(s, aug.rng_for("x"))
    assert [t.name for t in out.tracks] == ["RIGHT HAND", "PIANO"] and len(out.tracks[0].notes) == 64


def test_register_keeps_notes_on_the_keyboard():
    s = _score()
    t = s.tracks[0]
    n = t.notes.numpy()
    t.notes = symusic.Note.from_numpy(time=n["time"], duration=n["duration"],
                                      pitch=np.full(len(n["time"]), 100, np.int8), velocity=n["velocity"])  # fmt: skip
    for seed in range(10):
        top = aug.register(s, aug.rng_for(str(seed))).tracks[0].notes.numpy()["pitch"]
        assert top.max() <= aug.PIANO[1]


def test_octave_moves_the_whole_piece_up_where_it_fits():
    src = _score()
    out = aug.augment(src, ["octave"], aug.rng_for("x"))
    assert [t.name for t in out.tracks] == ["MELODY", "PIANO"]
    for a, b in zip(_notes(out), _notes(src)):
        assert np.array_equal(a["time"], b["time"]) and (a["pitch"].astype(int) - b["pitch"] == 12).all()
    high = _score()
    n = high.tracks[1].notes.numpy()
    n["pitch"][0] = 100  # an octave up would leave the keyboard: the piece stays where it is
    high.tracks[1].notes = symusic.Note.from_numpy(**n)
    assert all(np.array_equal(a["pitch"], b["pitch"]) for a, b in zip(_notes(aug.octave(high, None)), _notes(high)))


def test_unknown_augmentation_is_refused_naming_the_known_ones():
    with pytest.raises(ValueError, match="unknown augmentation 'reverse'; known: stretch, tempo"):
        aug.check(["stretch", "reverse"])


def test_reader_adds_copies_of_training_pieces_only(tmp_path):
    plain = read("sample", tmp_path / "s", n_pieces=12)
    copied = read("sample", tmp_path / "s", n_pieces=12, augment=["jitter"], augment_copies=2)
    train = [p for p in plain if p.split == "train"]
    assert len(copied) == len(plain) + 2 * len(train)
    assert [p for p in copied if not p.augment] == plain
    first = copied.index(train[0])
    assert [p.id for p in copied[first : first + 3]] == [train[0].id, f"{train[0].id}@aug1", f"{train[0].id}@aug2"]
    assert all(p.split == "train" and p.augment == ("jitter",) for p in copied if "@aug" in p.id)
    assert {p.group for p in copied if "@aug" in p.id} <= {p.group or p.id for p in train}
    with pytest.raises(ValueError, match="augment_copies"):
        read("sample", tmp_path / "s", n_pieces=12, augment=["jitter"], augment_copies=0)


def test_preparation_holds_augmented_copies_in_training_only(tmp_path):
    kw = dict(tokenizer="cp-score", workers=1, progress=False, n_pieces=12)
    plain = prepare("sample", tmp_path / "s", tmp_path / "a", **kw)
    augmented = prepare("sample", tmp_path / "s", tmp_path / "b", augment=["stretch", "register"], **kw)
    for split in ("valid", "test"):
        a, b = load_split(plain, split), load_split(augmented, split)
        assert np.array_equal(a.ids, b.ids) and a.pieces == b.pieces
    a, b = load_split(plain, "train"), load_split(augmented, "train")
    assert len(b) == 2 * len(a)
    original, copy = b.piece(0), b.piece(1)
    assert b.pieces[1]["id"] == b.pieces[0]["id"] + "@aug1"
    assert not np.array_equal(b.ids[original], b.ids[copy][: len(b.ids[original])])
    # labels come from the copy's own tracks: as many labelled notes as in the original
    mel = np.asarray(b.labels["melody3"])
    assert (mel[original] >= 0).sum() == (mel[copy] >= 0).sum()
