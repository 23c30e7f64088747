"""Readers: full counts and published splits on the real data (listing only), EMOPIA on a
fixture with its layout, split rules, POP909 beat quantisation."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import symusic

from midibert.datasets import SPLITS, Piece, assign_splits, read
from midibert.datasets.asap import pairs
from midibert.datasets.base import check_groups
from midibert.datasets.pop909 import beat_times, quantize_to_beats
from tests.conftest import SHARED_DATA, shared
from tests.midi_factory import emopia_layout


def _counts(pieces):
    return tuple(Counter(p.split for p in pieces)[s] for s in SPLITS)


def test_pop909_qualified_songs_and_published_split():
    pieces = read("pop909", shared("pop909").parent)
    assert len(pieces) == 865 and _counts(pieces) == (693, 86, 86)
    assert all(p.path.exists() for p in pieces[:10])
    assert len(read("pop909", SHARED_DATA, qualified_only=False)) == 909


def test_pianist8_composers_and_split():
    pieces = read("pianist8", shared("pianist8"))
    assert len(pieces) == 411 and _counts(pieces) == (337, 37, 37)
    assert len({p.labels["composer"] for p in pieces}) == 8


def test_asap_scores_performances_pairs_and_group_split():
    pieces = read("asap", shared("asap"))
    kinds = Counter(p.kind for p in pieces)
    assert kinds == {"score": 235, "performance": 1067}
    assert len({p.labels["composer"] for p in pieces}) == 16
    check_groups(pieces)
    assert len(pairs(pieces)) == 1067
    assert len(read("asap", SHARED_DATA, which="pretrain")) == 65


def test_other_readers_list_every_file():
    assert len(read("pop1k7", shared("pop1k7"))) == 1748
    vg = read("vgmidi", shared("vgmidi"))
    assert Counter(p.labels["emotion"] for p in vg) == {"Q1": 76, "Q2": 39, "Q3": 27, "Q4": 62}
    check_groups(vg)
    gm = read("giantmidi", shared("giantmidi_piano_eval"))
    assert len(gm) == 52 and len({p.labels["composer"] for p in gm}) == 11


def _write_midi(path, pitch=60):
    s = symusic.Score(480)
    t = symusic.Track("Piano", 0, False)
    t.notes.append(symusic.Note(0, 480, pitch, 80))
    s.tracks.append(t)
    s.dump_midi(str(path))


def test_emopia_layout_song_disjoint_seeded(tmp_path):
    songs = emopia_layout(tmp_path / "emopia")
    a, b = read("emopia", tmp_path, seed=1), read("emopia", tmp_path, seed=1)
    assert a == b and len(a) == 36 and all(_counts(a))
    check_groups(a)
    assert {p.group for p in a} == set(songs)
    assert Counter(p.labels["emotion"] for p in a) == {"Q1": 9, "Q2": 9, "Q3": 9, "Q4": 9}
    assert [p.split for p in read("emopia", tmp_path, seed=2)] != [p.split for p in a]


def test_emopia_holdout_is_the_same_songs_for_every_split_seed_and_in_no_split(tmp_path):
    emopia_layout(tmp_path / "emopia")
    plain = read("emopia", tmp_path, seed=1)
    held = {s: read("emopia", tmp_path, seed=s, holdout=0.3) for s in (1, 2, 3)}
    out = {p.id for p in held[1] if p.split == "holdout"}
    assert out and all({p.id for p in h if p.split == "holdout"} == out for h in held.values())
    assert len(out) < len(plain) and all(_counts([p for p in held[1] if p.split != "holdout"]))
    check_groups(held[1])  # whole songs: no song both held out and in a split
    assert [p.id for p in held[1]] == [p.id for p in plain]
    with pytest.raises(ValueError, match="holdout is a share of the songs"):
        read("emopia", tmp_path, holdout=1.0)


def test_emopia_refit_trains_on_every_other_song_and_tests_on_the_held_out_ones(tmp_path):
    emopia_layout(tmp_path / "emopia")
    held = read("emopia", tmp_path, seed=1, holdout=0.3)
    refit = read("emopia", tmp_path, seed=42, holdout=0.3, refit=True)
    assert {p.id for p in refit if p.split == "test"} == {p.id for p in held if p.split == "holdout"}
    rest = Counter(p.split for p in refit if p.split != "test")
    assert set(rest) == {"train", "valid"} and rest["train"] > rest["valid"] > 0
    check_groups(refit)
    with pytest.raises(ValueError, match="refit tests on the held-out songs"):
        read("emopia", tmp_path, refit=True)


def test_folder_reader_labels_from_subfolders_and_csv(tmp_path):
    for label in ("jazz", "pop"):
        (tmp_path / label).mkdir()
        for i in range(4):
            _write_midi(tmp_path / label / f"{i}.mid")
    pieces = read("folder", tmp_path)
    assert Counter(p.labels["label"] for p in pieces) == {"jazz": 4, "pop": 4}
    (tmp_path / "labels.csv").write_text("path,mood,split\njazz/0.mid,calm,test\npop/1.mid,happy,\n")
    rows = read("folder", tmp_path, labels_csv="labels.csv")
    assert [(p.labels, p.split is not None) for p in rows] == [({"mood": "calm"}, True), ({"mood": "happy"}, True)]
    assert rows[0].split == "test"


def test_assign_splits_deterministic_and_group_disjoint():
    pieces = [Piece(id=str(i), path=None, group=f"g{i // 3}") for i in range(60)]
    a, b = assign_splits(pieces, seed=3), assign_splits(pieces, seed=3)
    assert a == b
    check_groups(a)
    assert _counts(a) == (48, 6, 6)
    assert assign_splits(pieces, seed=4) != a


def test_pop909_beat_quantisation_puts_beats_on_the_grid():
    path = shared("pop909", "POP909", "001", "001.mid")
    beats = beat_times(path)
    q = quantize_to_beats(symusic.Score(str(path)), beats)
    assert q.ticks_per_quarter == 480 and [t.name for t in q.tracks] == ["MELODY", "BRIDGE", "PIANO"]
    on = np.concatenate([t.notes.numpy()["time"] for t in q.tracks])
    assert (on % 120 == 0).mean() > 0.8  # most onsets land on sixteenths once beats are straight
    assert sum(len(t.notes) for t in q.tracks) == sum(len(t.notes) for t in symusic.Score(str(path)).tracks)


def test_unknown_dataset_lists_known_ones():
    with pytest.raises(ValueError, match="pop909"):
        read("nope")


def test_pop909_extra_training_pieces_join_its_training_split_only(tmp_path):
    # listing reads no file: an empty folder stands for POP909, the generated sample corpus for the extra data
    (tmp_path / "pop909").mkdir()
    base = read("pop909", tmp_path, timing="both")
    extra = read("sample", tmp_path / "sample")
    pieces = read(
        "pop909", tmp_path, timing="both", extra_train="sample", extra_path=str(tmp_path / "sample"), extra_copies=2
    )
    added = [p for p in pieces if p.id.startswith("sample/")]
    train = [p for p in extra if p.split == "train"]
    assert len(pieces) == len(base) + 2 * len(train) and len(added) == 2 * len(train) > 0
    assert {p.split for p in added} == {"train"} and {p.reading for p in added} == {"raw"}  # never realigned
    assert _counts([p for p in pieces if p not in added]) == _counts(base)
    assert sorted({p.id.rsplit("@", 1)[0] for p in added}) == sorted(f"sample/{p.id}" for p in train)
    check_groups(pieces)
    with pytest.raises(ValueError, match="extra_train='pop1k7' has no melody labels"):
        read("pop909", tmp_path, extra_train="pop1k7", extra_path=str(tmp_path))
    with pytest.raises(ValueError, match="extra_copies must be at least 1"):
        read("pop909", tmp_path, extra_train="sample", extra_path=str(tmp_path / "sample"), extra_copies=0)
    # with extra_augment, as many copies, half of each piece's read through the augmentation
    octave = dict(extra_train="sample", extra_path=str(tmp_path / "sample"), extra_augment=["octave"])
    mixed = [p for p in read("pop909", tmp_path, extra_copies=4, **octave) if p.id.startswith("sample/")]
    assert len(mixed) == 4 * len(train) and sorted({p.augment for p in mixed}) == [(), ("octave",)]
    assert sum(p.augment == ("octave",) for p in mixed) == 2 * len(train)
    assert {p.group for p in mixed} == {f"sample/{p.group or p.id}" for p in train}  # a copy stays in its piece's group
    with pytest.raises(ValueError, match="extra_copies=3 is odd"):
        read("pop909", tmp_path, extra_copies=3, **octave)


def test_data_a_reader_makes_goes_to_the_cache_unless_it_is_beside_the_datasets(tmp_path, monkeypatch):
    from midibert.datasets.base import dataset_dir

    (tmp_path / "data").mkdir()
    monkeypatch.setenv("MIDIBERT_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MIDIBERT_CACHE", str(tmp_path / "cache"))
    assert dataset_dir("pop909") == tmp_path / "data" / "pop909"  # a download: where the datasets are
    assert dataset_dir("madrigals") == tmp_path / "cache" / "data" / "madrigals"  # never written beside them
    (tmp_path / "data" / "sample").mkdir()
    assert dataset_dir("sample") == tmp_path / "data" / "sample"  # one already there is read there
