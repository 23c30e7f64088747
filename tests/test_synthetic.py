"""The synthetic corpus: deterministic, labelled consistently, POP909-shaped; the corrupt files really are bad."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import symusic

from midibert.synthetic import EMOTIONS, LABEL_COLUMNS, STYLES, TRACK_NAMES, generate_corpus, write_corrupt_files
from midibert.tokenize.labels import velocity_classes


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _labels(root: Path) -> list[dict[str, str]]:
    with open(root / "labels.csv", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return generate_corpus(tmp_path_factory.mktemp("corpus"), n_pieces=48, seed=0)


@pytest.mark.parametrize("humanize", [0.0, 0.7])
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, humanize):
    a = _files(generate_corpus(tmp_path / "a", n_pieces=8, seed=3, bars=(4, 6), humanize=humanize))
    b = _files(generate_corpus(tmp_path / "b", n_pieces=8, seed=3, bars=(4, 6), humanize=humanize))
    c = _files(generate_corpus(tmp_path / "c", n_pieces=8, seed=4, bars=(4, 6), humanize=humanize))
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a if k.endswith(".mid"))


def test_humanize_changes_timing_not_structure(tmp_path):
    exact = generate_corpus(tmp_path / "exact", n_pieces=8, bars=(8, 8))
    played = generate_corpus(tmp_path / "played", n_pieces=8, bars=(8, 8), humanize=3.0)
    for row in _labels(exact):
        s, p = symusic.Score(str(exact / row["path"])), symusic.Score(str(played / row["path"]))
        assert [t.name for t in s.tracks] == [t.name for t in p.tracks]
        assert [len(t.notes) for t in s.tracks] == [len(t.notes) for t in p.tracks]
        melody = p.tracks[0].notes.numpy()
        assert np.any(melody["time"] % 120)  # off the sixteenth-note grid
        assert np.all(melody["time"][:-1] + melody["duration"][:-1] <= melody["time"][1:])  # still monophonic


def test_labels_match_files(corpus):
    rows = _labels(corpus)
    assert list(rows[0]) == list(LABEL_COLUMNS)
    assert len(rows) == 48 and len({r["id"] for r in rows}) == 48
    on_disk = {str(p.relative_to(corpus)) for p in corpus.rglob("*.mid")}
    assert {r["path"] for r in rows} == on_disk
    for r in rows:
        assert r["path"] == f"midi/{r['style']}/{r['id']}.mid"
        assert r["style"] in STYLES and r["emotion"] in EMOTIONS and r["split"] in ("train", "valid", "test")
    assert not list(corpus.rglob("*.tmp"))


def test_splits_stratified_and_train_covers_every_label(corpus):
    rows = _labels(corpus)
    for style in STYLES:
        splits = [r["split"] for r in rows if r["style"] == style]
        assert splits.count("valid") >= 1 and splits.count("test") >= 1 and splits.count("train") >= 0.7 * len(splits)
    train = [r for r in rows if r["split"] == "train"]
    assert {r["style"] for r in train} == set(STYLES)
    assert {r["emotion"] for r in train} == set(EMOTIONS)
    assert {(r["style"], r["emotion"]) for r in rows} == {(s, e) for s in STYLES for e in EMOTIONS}


def test_small_corpus_train_still_covers_labels(tmp_path):
    train = [r for r in _labels(generate_corpus(tmp_path, n_pieces=12)) if r["split"] == "train"]
    assert {r["style"] for r in train} == set(STYLES) and {r["emotion"] for r in train} == set(EMOTIONS)


def test_pieces_are_pop909_shaped(corpus):
    meters = {}
    for r in _labels(corpus):
        path = corpus / r["path"]
        score = symusic.Score(str(path))
        assert score.ticks_per_quarter == 480
        assert [t.name for t in score.tracks] == list(TRACK_NAMES)
        assert all(t.program == 0 and not t.is_drum for t in score.tracks)
        assert len(score.tracks[0].notes) and len(score.tracks[2].notes)
        melody = score.tracks[0].notes.numpy()
        assert np.all(melody["time"][:-1] + melody["duration"][:-1] <= melody["time"][1:])  # monophonic
        meter = score.time_signatures[0]
        meters.setdefault(r["style"], set()).add((meter.numerator, meter.denominator))
        assert [i.name for i in pretty_midi.PrettyMIDI(str(path)).instruments] == list(TRACK_NAMES)
    assert meters["waltz"] == {(3, 4)} and meters["march"] == {(4, 4)}
    assert len({m for ms in meters.values() for m in ms}) >= 3


def test_labels_are_learnable_but_not_trivial(corpus):
    velocities, melody_on_top, melody_total = [], 0, 0
    for r in _labels(corpus):
        score = symusic.Score(str(corpus / r["path"]))
        tracks = [t.notes.numpy() for t in score.tracks]
        velocities += [v for t in tracks for v in t["velocity"]]
        others = np.concatenate([np.stack([t["time"], t["time"] + t["duration"], t["pitch"]], 1) for t in tracks[1:]])
        for onset, pitch in zip(tracks[0]["time"], tracks[0]["pitch"]):
            sounding = others[(others[:, 0] <= onset) & (onset < others[:, 1])]
            melody_on_top += bool(np.all(sounding[:, 2] < pitch))
            melody_total += 1
    counts = np.bincount(velocity_classes(np.array(velocities)), minlength=6)
    assert np.all(counts > 0.05 * len(velocities))  # every velocity bin is well used
    assert 0.7 < melody_on_top / melody_total < 0.99  # the melody is mostly, not always, the top voice


def test_loud_moods_are_louder(corpus):
    mean = {}
    for r in _labels(corpus):
        score = symusic.Score(str(corpus / r["path"]))
        mean.setdefault(r["emotion"], []).append(np.mean([n.velocity for t in score.tracks for n in t.notes]))
    assert min(np.mean(mean["Q1"]), np.mean(mean["Q2"])) > max(np.mean(mean["Q3"]), np.mean(mean["Q4"])) + 10


def test_bad_arguments_raise(tmp_path):
    with pytest.raises(ValueError):
        generate_corpus(tmp_path, n_pieces=0)
    with pytest.raises(ValueError):
        generate_corpus(tmp_path, bars=(8, 4))


def test_corrupt_files_are_unreadable_or_hold_no_piano_notes(tmp_path):
    paths = write_corrupt_files(tmp_path)
    assert {p.name for p in paths} == {
        "random_bytes.mid",
        "truncated.mid",
        "header_only.mid",
        "zero_tracks.mid",
        "empty.mid",
        "drums_only.mid",
    }
    for path in paths:
        try:
            score = symusic.Score(str(path))
        except Exception:
            continue
        assert sum(len(t.notes) for t in score.tracks if not t.is_drum) == 0, path.name
    assert (tmp_path / "empty.mid").stat().st_size == 0
    drums = symusic.Score(str(tmp_path / "drums_only.mid"))
    assert drums.tracks and all(t.is_drum for t in drums.tracks) and len(drums.tracks[0].notes)
