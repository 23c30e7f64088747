"""benchmarks/melody_cross_domain.py: parts merged into one track keep which notes are the melody,
the model's labels land on the notes they belong to, and (with music21) the whole run on two
files per genre."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import symusic

from tests.conftest import ROOT, script

SCRIPT = ROOT / "benchmarks" / "melody_cross_domain.py"


def _script():
    return script(SCRIPT)


def _track(name: str, notes: list[tuple[int, int, int]]) -> symusic.Track:
    track = symusic.Track(name, 0, False)
    a = np.array(notes)
    track.notes = symusic.Note.from_numpy(
        time=a[:, 0].astype(np.int32),
        duration=a[:, 1].astype(np.int32),
        pitch=a[:, 2].astype(np.int8),
        velocity=np.full(len(a), 80, dtype=np.int8),
    )
    return track


@pytest.fixture(scope="module")
def two_parts() -> symusic.Score:
    """A tune over an accompaniment that doubles its first note and once rises above it."""
    score = symusic.Score(480)
    score.time_signatures.append(symusic.TimeSignature(0, 3, 4))
    tune = [(0, 480, 72), (480, 480, 74), (960, 480, 76), (1440, 1440, 77)]
    accompaniment = [(0, 480, 48), (0, 960, 72), (480, 480, 79), (960, 480, 55), (1440, 1440, 53), (1440, 1440, 60)]
    score.tracks.extend([_track("Violin I", tune), _track("Viola", accompaniment)])
    return score


@pytest.fixture(scope="module")
def clf():
    from midibert.classify import Classifier

    return Classifier.from_pretrained("melody")


def test_merge_keeps_every_note_once_in_one_track_with_the_melody_marked(two_parts):
    m = _script()
    merged, part, duplicates = m.merge(two_parts)
    melody = part == 0
    assert len(merged.tracks) == 1 and merged.tpq == 480 and merged.time_signatures[0].numerator == 3
    notes = merged.tracks[0].notes.numpy()
    got = list(zip(notes["time"].tolist(), notes["pitch"].tolist(), melody.tolist()))
    assert got == [(0, 48, False), (0, 72, True), (480, 74, True), (480, 79, False), (960, 55, False),
                   (960, 76, True), (1440, 53, False), (1440, 60, False), (1440, 77, True)]  # fmt: skip
    assert duplicates == 1 and notes["duration"][1] == 480  # the doubled note is the tune's copy
    # the melody may be any track: then the viola's doubled note is the one kept
    other, part, _ = m.merge(two_parts, melody_track=1)
    viola = part == 1
    assert viola.sum() == 6 and viola[1] and not viola[2] and other.tracks[0].notes[1].duration == 960


def test_predictions_land_on_the_notes_they_label(two_parts, clf):
    m = _script()
    merged, part, _ = m.merge(two_parts)
    melody = part == 0
    model, line, unlabelled = m.predict(clf, merged)
    pred = clf.predict(merged)
    by_note = dict(zip(zip(pred.onset.tolist(), pred.pitch.tolist()), pred.labels))
    notes = merged.tracks[0].notes.numpy()
    expected = [by_note[t, p] == "melody" for t, p in zip(notes["time"].tolist(), notes["pitch"].tolist())]
    assert model.tolist() == [int(e) for e in expected] and unlabelled == 0 and len(model) == len(melody)
    assert line.tolist() == (np.asarray(pred.line().labels) == "melody").astype(int).tolist()
    assert set(line.nonzero()[0]) <= set(model.nonzero()[0])  # the line is of the notes called tune
    got = m.scores(melody.astype(int), model=model, skyline=model)
    assert set(got) >= {"notes", "melody_notes", "model", "skyline"} and got["f1_difference"] == 0


def test_a_prediction_for_other_notes_is_refused(two_parts):
    m = _script()
    merged, _, _ = m.merge(two_parts)
    notes = merged.tracks[0].notes.numpy()
    shuffled = SimpleNamespace(pitch=notes["pitch"][::-1], onset=notes["time"], labels=["melody"] * len(notes))
    with pytest.raises(ValueError, match="not the file's notes"):
        m.predict(SimpleNamespace(predict=lambda _: shuffled), merged)


def test_parts_become_tracks_with_ties_joined_and_the_pickup_completed():
    pytest.importorskip("music21", reason="music21 (pip install midibert[bench]) converts the corpus scores")
    from music21 import chord, meter, note, stream, tie

    m = _script()
    score = stream.Score()
    for name, pitches in (("Soprano", ["G4", "C5", "C5"]), ("Alto", ["E4", "E4", "G4"]),
                          ("Tenor", ["C4", "C4", "C4"]), ("Bass", ["C3", "C3", "C3"])):  # fmt: skip
        pickup, bar = stream.Measure(number=0), stream.Measure(number=1)
        pickup.append(meter.TimeSignature("4/4"))
        pickup.append(note.Note(pitches[0], quarterLength=1))
        pickup.paddingLeft = 3.0
        first, second = note.Note(pitches[1], quarterLength=2), note.Note(pitches[2], quarterLength=2)
        if pitches[1] == pitches[2]:
            first.tie, second.tie = tie.Tie("start"), tie.Tie("stop")
        bar.append([first, second])
        part = stream.Part()
        part.append([pickup, bar])
        part.partName = name
        score.insert(0, part)
    score.parts[3].getElementsByClass(stream.Measure).last().append(chord.Chord(["C3", "G3"], quarterLength=1))
    out = m.to_score(score, "chorale")
    assert [t.name for t in out.tracks] == ["soprano", "alto", "tenor", "bass"]
    soprano = [(n.time, n.duration, n.pitch) for n in out.tracks[0].notes]
    assert soprano == [(1440, 480, 67), (1920, 1920, 72)]  # the pickup is beat 4; the tie is one note
    bass = [(n.time, n.duration, n.pitch) for n in out.tracks[3].notes]
    assert bass == [(1440, 480, 48), (1920, 1920, 48), (3840, 480, 48), (3840, 480, 55)]  # a chord: its notes
    assert m.to_score(score, "string quartet") is None


def test_two_files_per_genre_give_the_table_and_its_files(tmp_path, monkeypatch):
    pytest.importorskip("music21", reason="music21 (pip install midibert[bench]) holds the corpus this run reads")
    m = _script()
    listed = m.candidates
    # the quartets in sorted order start with Beethoven's longest; Haydn's op. 1 movements are short,
    # and the third has notes of one pitch overlapping in a part, whose ends MIDI pairs its own way
    short = ("haydn/opus1no1/movement3.mxl", "haydn/opus1no1/movement4.mxl")
    monkeypatch.setattr(m, "candidates", lambda g: [p for p in listed(g) if g == "chorale" or p in short])
    result = m.main(["--limit", "2", "--out", str(tmp_path / "out"), "--cache", str(tmp_path / "cache")])
    assert [(g, s["files"]) for g, s in result["genres"].items()] == [("chorale", 2), ("string quartet", 2), ("all", 4)]
    assert [f["path"] for f in result["files"]][2:] == list(short)
    overall = result["genres"]["all"]
    assert overall["notes"] == sum(f["notes"] for f in result["files"]) > 0
    assert 0 < overall["model"]["f1"] <= 1 and 0 < overall["skyline"]["f1"] <= 1 and not result["skipped"]
    written = json.loads((tmp_path / "out" / "cross_domain.json").read_text())
    assert written["genres"]["all"]["notes"] == overall["notes"]
    assert "| string quartet | 2 |" in (tmp_path / "out" / "cross_domain.md").read_text()
    assert len(list((tmp_path / "cache").glob("*.mid"))) == 4
    again = m.main(["--limit", "2", "--cache", str(tmp_path / "cache")])  # from the cache: the same notes, labels
    assert again["genres"] == result["genres"]


def test_measure_pools_the_files_of_every_genre_and_names_what_it_skipped(two_parts):
    """Without music21: the readers are given. The result names the weights it scored, so that an
    export attaches it to that model alone."""
    from midibert.bundle import weights_digest
    from midibert.classify import Classifier
    from midibert.pretrained import resolve

    m = _script()

    def read(path: str):
        if path == "broken":
            raise ValueError("no notes")
        return None if path == "trio" else two_parts

    genres = {"duet": (["a", "trio", "broken", "b"], read), "again": (["c"], read)}
    result = m.measure("melody", genres, "generated duets", {"duet": "two parts", "again": "two parts"})
    assert [(g, s["files"]) for g, s in result["genres"].items()] == [("duet", 2), ("again", 1), ("all", 3)]
    assert result["skipped"] == [{"genre": "duet", "path": "broken", "reason": "ValueError: no notes"}]
    assert result["excluded"] == [{"genre": "duet", "path": "trio"}]
    assert result["genres"]["all"]["notes"] == 3 * 9 and result["genres"]["all"]["melody_notes"] == 3 * 4
    assert result["weights_sha256"] == weights_digest(resolve("melody")) and result["corpus"] == "generated duets"
    assert result["parts"] == {"duet": ["Violin I", "Viola"], "again": ["Violin I", "Viola"]}
    shares = result["genres"]["duet"]["model_tune_share_by_part"]
    merged, part, _ = m.merge(two_parts)
    model, _, _ = m.predict(Classifier.from_pretrained("melody"), merged)
    assert shares == [model[part == 0].mean(), model[part == 1].mean()]
    assert "model_tune_share_by_part" not in result["genres"]["all"]


def test_the_check_never_reads_the_music_the_melody_model_trains_on():
    from midibert.datasets import madrigals

    assert madrigals.COMPOSER not in {folder for folders in _script().FOLDERS.values() for folder in folders}
