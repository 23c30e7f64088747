"""Part music from music21's bundled corpus as MIDI, one track per part; and Monteverdi's madrigals
from it as melody-labelled training data.

POP909 calls the sung line the melody, and its pop accompaniment often sounds above it. In part
music the tune is the top part: a chorale's soprano, a madrigal's canto. A melody model trained on
POP909 alone follows POP909's convention on part music too and calls the voice under the tune
tune (docs/wild.md). Monteverdi's madrigals (books 3 to 5, 49 of them, five or six voices, 43,000
notes; `pip install music21`, no network) teach the other convention: the first part, the canto,
is named MELODY, the other voices and the continuo keep their names and count as accompaniment.
The canto is the top part by its clef, not at every moment (the quinto crosses it), so the label
is the part's, as a chorale's soprano is in the cross-domain check. The corpus's Bach, Beethoven,
Haydn, Mozart and Schumann (the cross-domain check's music) are never read here.

    pieces = read("madrigals", path=cache_root() / "data" / "madrigals")   # converted once, then read

Every madrigal is a training piece: melody models are selected and tested on POP909.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import symusic

from midibert.datasets.base import DatasetInfo, Piece, register
from midibert.fsutil import atomic_path

TPQ = 480
COMPOSER = "monteverdi"  # the corpus folder read
MELODY = "MELODY"  # the first part's track name: the melody labels' convention (tokenize/labels.py)


def part_notes(part, shift: float) -> np.ndarray:
    """(start tick, duration ticks, pitch) of every played note of a music21 part, chords spread
    into their notes, tied notes joined into one, starting `shift` quarters late. Ties are joined
    here: music21's `stripTies` takes seconds per part of a quartet movement."""
    from music21 import chord, harmony, note

    rows: list[list[int]] = []
    tied: dict[int, int] = {}  # pitch -> its row, while a tie is open
    for n in part.flatten().notes:
        if not isinstance(n, (note.Note, chord.Chord)) or isinstance(n, harmony.Harmony):
            continue  # unpitched percussion; a chord symbol, which no one plays
        start = round(float(n.offset + shift) * TPQ)
        end = start + round(float(n.quarterLength) * TPQ)
        for x in n.notes if isinstance(n, chord.Chord) else (n,):
            pitch, tie = x.pitch.midi, x.tie.type if x.tie is not None else None
            if tie in ("continue", "stop") and pitch in tied:
                row = rows[tied[pitch]]
                row[1] = max(row[1], end - row[0])
                if tie == "stop":
                    del tied[pitch]
                continue
            if tie in ("start", "continue"):
                tied[pitch] = len(rows)
            rows.append([start, max(end - start, 1), pitch])  # a grace note still sounds
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def track(name: str, time, duration, pitch, velocity) -> symusic.Track:
    """A piano track of the given note columns."""
    out = symusic.Track(name, 0, False)
    out.notes = symusic.Note.from_numpy(
        time=np.asarray(time, dtype=np.int32),
        duration=np.asarray(duration, dtype=np.int32),
        pitch=np.asarray(pitch, dtype=np.int8),
        velocity=np.asarray(velocity, dtype=np.int8),
    )
    return out


def to_score(score, names: list[str]) -> symusic.Score:
    """A music21 score as one symusic track per part, named `names` in score order, with its time
    signatures and a pickup bar completed by a rest, so bar lines fall where the score has them."""
    from music21 import meter, stream

    first = score.parts[0].getElementsByClass(stream.Measure).first()
    shift = float(first.paddingLeft) if first is not None else 0.0  # a pickup ends where bar 1 starts
    out = symusic.Score(TPQ)
    for ts in score.parts[0].flatten().getElementsByClass(meter.TimeSignature):
        tick = round(float(ts.offset + shift) * TPQ) if ts.offset else 0
        out.time_signatures.append(symusic.TimeSignature(tick, ts.numerator, ts.denominator))
    for part, name in zip(score.parts, names):
        notes = part_notes(part, shift)
        out.tracks.append(track(name, notes[:, 0], notes[:, 1], notes[:, 2], np.full(len(notes), 80)))
    return out


def part_names(score) -> list[str]:
    """The lower-cased names of a music21 score's parts, in score order."""
    return [(p.partName or "").lower() for p in score.parts]


def convert(path: str, midi: Path, names) -> Path | None:
    """Corpus file `path` written once as the MIDI file `midi` (`to_score`, track names from
    `names(part_names)`, None: not wanted), or None when it is not."""
    if not midi.is_file():
        from music21 import corpus

        score = corpus.parse(path)
        named = names(part_names(score))
        if named is None:
            return None
        with atomic_path(midi) as tmp:
            to_score(score, named).dump_midi(str(tmp))
    return midi


def madrigal_parts(names: list[str]) -> list[str] | None:
    """Track names of a madrigal's parts: the first, the canto, as MELODY; None for fewer than three."""
    return [MELODY, *names[1:]] if len(names) >= 3 else None


def madrigals() -> list[str]:
    """Corpus paths (sorted) of Monteverdi's madrigals as MusicXML (the corpus also has their
    harmonic analyses, which hold no notes)."""
    try:
        from music21 import corpus
    except ImportError as e:
        raise ImportError('madrigals: music21\'s corpus holds them: pip install "midibert[bench]"') from e

    return sorted(p for p in (str(q) for q in corpus.getComposer(COMPOSER)) if p.endswith(".mxl"))


def read(root: Path, *, seed: int = 0) -> list[Piece]:
    """Every madrigal as a training piece, converted into `root` the first time."""
    root.mkdir(parents=True, exist_ok=True)
    pieces = []
    for path in madrigals():
        name = Path(path).name.removesuffix(".mxl")
        midi = convert(path, root / f"{name}.mid", madrigal_parts)
        if midi is not None:
            pieces.append(Piece(id=name, path=midi, group=name, kind="score", split="train"))
    return pieces


INFO = register(
    DatasetInfo(
        name="madrigals",
        folder="madrigals",
        read=read,
        kind="score",
        note_labels=True,
        generated=True,
        licence="public-domain music; the encodings come with music21 (BSD), by their encoders' permission, "
        "not stated further (music21's corpus notes that some of its encodings may not be used commercially)",
    )
)
