"""A deterministic synthetic piano corpus with labels for every task, so demos and tests need no downloads.

Each piece is a type-1 MIDI file (480 ticks per quarter) whose tracks are named ``MELODY``,
``BRIDGE`` and ``PIANO`` as in POP909, so per-note melody labels come from track names and
velocity labels from the notes themselves; style and emotion per piece go to ``labels.csv``.

Example::

    from midibert.synthetic import generate_corpus
    root = generate_corpus("/tmp/toy", n_pieces=48, seed=0)   # root / "labels.csv", root / "midi/..."
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from midibert.fsutil import write_atomic

TPQ = 480
TRACK_NAMES = ("MELODY", "BRIDGE", "PIANO")
EMOTIONS = ("Q1", "Q2", "Q3", "Q4")
LABEL_COLUMNS = ("id", "path", "style", "emotion", "split")

# Quadrants of Russell's valence/arousal plane as EMOPIA numbers them:
# Q1 happy (major, fast, loud), Q2 tense (minor, fast, loud), Q3 sad (minor, slow, soft), Q4 calm (major, slow, soft).
_MOODS = {"Q1": (False, 1.2, 82), "Q2": (True, 1.2, 82), "Q3": (True, 0.8, 50), "Q4": (False, 0.8, 50)}
_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_MINOR = (0, 2, 3, 5, 7, 8, 10)  # natural minor; the V chord and its leading tone are raised in _pitch
# Four-bar progressions as scale degrees (0 = tonic); each reads sensibly in major and minor.
_PROGRESSIONS = ((0, 3, 4, 0), (0, 5, 3, 4), (0, 4, 5, 3), (0, 1, 4, 0), (0, 3, 1, 4), (5, 3, 0, 4))

Note = tuple[float, float, int, float]  # onset (beats), duration (beats), pitch, loudness offset
TickNote = tuple[int, int, int, int]  # onset (ticks), duration (ticks), pitch, velocity
Chord = tuple[int, int, bool]  # root degree, tonic pitch class, minor


def _pitch(step: int, chord: Chord) -> int:
    """MIDI pitch of diatonic step ``step`` (0 = tonic in octave -1), with the leading tone raised under V in minor."""
    _, tonic, minor = chord
    scale = _MINOR if minor else _MAJOR
    pitch = tonic + 12 * (step // 7) + scale[step % 7]
    if minor and chord[0] == 4 and step % 7 == 6:
        pitch += 1
    return pitch


def _chord_steps(chord: Chord) -> tuple[int, int, int]:
    """Scale degrees (0..6) of the triad's root, third and fifth."""
    root = chord[0]
    return root, (root + 2) % 7, (root + 4) % 7


def _chord_tone(
    chord: Chord, target: float, *, at_most: float = 127, at_least: float = 0, which: int | None = None
) -> int:
    """Chord-tone pitch nearest ``target`` inside [at_least, at_most]; ``which`` picks root/third/fifth only."""
    degrees = _chord_steps(chord) if which is None else (_chord_steps(chord)[which],)
    pitches = [_pitch(s, chord) for s in range(7 * 11) if s % 7 in degrees]
    allowed = [p for p in pitches if at_least <= p <= at_most] or pitches
    return min(allowed, key=lambda p: (abs(p - target), p))


def _oompah(chord: Chord, beats: int, variant: int) -> list[Note]:
    """Waltz: bass on the downbeat, light chords on the other beats (or one held chord)."""
    bass = [(0.0, 1.0 if variant == 0 else float(beats), _chord_tone(chord, 43, which=0), 4)]
    voicing = [_chord_tone(chord, 55, which=k) for k in range(3)]
    if variant == 0:
        return bass + [(float(b), 0.6, p, -4) for b in range(1, beats) for p in voicing]
    return bass + [(1.0, beats - 1.0, p, -6) for p in voicing]


def _march(chord: Chord, beats: int, variant: int) -> list[Note]:
    """March: bass / chord alternation on the beats, or an Alberti bass in eighths."""
    root, third, fifth = (_chord_tone(chord, 50, which=k) for k in range(3))
    if variant == 1:
        return [(i / 2, 0.5, p, -2 if i % 2 else 0) for i, p in enumerate([root, fifth, third, fifth] * (beats // 2))]
    notes: list[Note] = []
    for beat in range(beats):
        if beat % 2 == 0:
            bass = _chord_tone(chord, 38, which=0) if beat == 0 else _chord_tone(chord, 43, which=2)
            notes.append((float(beat), 1.0, bass, 4))
        else:
            notes += [(float(beat), 0.5, p, -4) for p in (root, third, fifth)]
    return notes


def _arpeggio(chord: Chord, beats: int, variant: int) -> list[Note]:
    """Nocturne: wide broken chords in eighths, held like a sustain pedal to the end of each half bar.

    The wider variant climbs into the melody's register, so "highest note = melody" is sometimes wrong.
    """
    low = _chord_tone(chord, 40, which=0)
    span = [low, low + 7, low + 12, _chord_tone(chord, low + 16, which=1), low + 19]
    shape = span + span[3:0:-1] if variant == 0 else span + [low + 24, _chord_tone(chord, low + 28, which=1), low + 31]
    half = beats / 2
    notes = []
    for i in range(beats * 2):
        onset = i / 2
        end = half * (1 + int(onset // half))
        notes.append((onset, end - onset, shape[i % len(shape)], 0 if i % 4 == 0 else -5))
    return notes


def _stride(chord: Chord, beats: int, variant: int) -> list[Note]:
    """Ragtime: stride bass (low octave or single note) on the beats, a chord on each offbeat."""
    voicing = [_chord_tone(chord, 57, which=k) for k in range(3)]
    notes: list[Note] = []
    for beat in range(beats):
        bass = _chord_tone(chord, 36, which=0 if beat % 2 == 0 else 2)
        notes.append((float(beat), 0.5, bass, 5))
        if variant == 0:
            notes.append((float(beat), 0.5, bass + 12, 2))
        notes += [(beat + 0.5, 0.5, p, -3) for p in voicing]
    return notes


@dataclass(frozen=True)
class _Style:
    beats: int  # quarter notes per bar; the time signature is beats/4
    qpm: float  # tempo before the mood scales it
    melody: tuple[int, int]  # pitch range of the melody
    bridge: tuple[int, int]  # pitch range of the bridge line, normally below the melody
    rhythms: tuple[tuple[float, ...], ...]  # one-bar melody rhythms in quarter notes
    accompaniment: Callable[[Chord, int, int], list[Note]]


STYLES: dict[str, _Style] = {
    "waltz": _Style(3, 160, (67, 84), (55, 69), ((1, 1, 1), (2, 1), (1.5, 0.5, 1), (0.5, 0.5, 1, 1), (3,)), _oompah),
    "march": _Style(
        4,
        112,
        (62, 79),
        (52, 66),
        ((1, 1, 1, 1), (0.75, 0.25, 1, 0.75, 0.25, 1), (2, 1, 1), (1, 0.5, 0.5, 2), (0.75, 0.25, 0.75, 0.25, 2)),
        _march,
    ),
    "nocturne": _Style(
        4,
        60,
        (70, 91),
        (58, 72),
        ((2, 1, 1), (3, 1), (1.5, 0.5, 2), (1, 0.5, 0.5, 0.25, 0.25, 0.25, 0.25, 1)),
        _arpeggio,
    ),
    "ragtime": _Style(
        2,
        92,
        (67, 88),
        (55, 70),
        ((0.25, 0.5, 0.25, 0.5, 0.5), (0.25, 0.5, 0.25, 1), (0.5, 0.25, 0.5, 0.25, 0.5), (0.75, 0.75, 0.5)),
        _stride,
    ),
}


def _compose(
    rng: np.random.Generator, style: _Style, emotion: str, n_bars: int
) -> tuple[list[list[tuple[float, float, int, int]]], float, int, bool]:
    """Notes per track as (onset beats, duration beats, pitch, velocity), plus tempo (qpm), tonic and mode."""
    minor, tempo_scale, loudness = _MOODS[emotion]
    tonic = int(rng.integers(12))
    qpm = round(style.qpm * tempo_scale * rng.uniform(0.95, 1.05))
    n_phrases = -(-n_bars // 4)
    progression = [d for _ in range(n_phrases) for d in _PROGRESSIONS[rng.integers(len(_PROGRESSIONS))]][:n_bars]
    progression[-2:] = [4, 0][-n_bars:]  # close every piece on a V-I cadence
    chords: list[Chord] = [(d, tonic, minor) for d in progression]
    # Each phrase gets its own dynamic level, so loudness (and the velocity label) depends on context.
    phrase_level = [loudness + float(rng.choice([-12.0, 0.0, 10.0])) for _ in range(n_phrases)]

    def velocity(onset: float, pitch: int, role: float, centre: int) -> int:
        bar, pos = divmod(onset, style.beats)
        phrase_pos = (bar % 4 + pos / style.beats) / 4
        accent = 5 if pos == 0 else 2 if pos == int(pos) else 0
        hairpin = 8 * np.sin(np.pi * phrase_pos)  # swell to mid-phrase, ease off at its end
        level = phrase_level[int(bar) // 4] + role + accent + hairpin + 0.3 * (pitch - centre) + rng.normal(0, 3)
        return int(np.clip(round(level), 1, 127))

    melody: list[tuple[float, float, int]] = []
    lo, hi = style.melody
    step = next(s for s in range(7 * 11) if _pitch(s, chords[0]) >= (lo + hi) // 2)
    for bar, chord in enumerate(chords):
        phrase_end = bar % 4 == 3 or bar == n_bars - 1
        rhythm = (float(style.beats),) if phrase_end else style.rhythms[rng.integers(len(style.rhythms))]
        onset = float(bar * style.beats)
        for i, dur in enumerate(rhythm):
            if i and rng.random() < 0.08:  # a rest now and then, so the skyline picks up other voices
                onset += dur
                continue
            if onset == int(onset):  # beats land on chord tones, the rest move stepwise or leap
                pitch = _chord_tone(chord, _pitch(step + int(rng.integers(-2, 3)), chord), at_least=lo, at_most=hi)
                if bar == n_bars - 1:
                    pitch = _chord_tone(chord, pitch, at_least=lo, at_most=hi, which=0)
                step = next(s for s in range(7 * 11) if _pitch(s, chord) >= pitch)
            else:
                step += int(rng.choice([-2, -1, -1, 1, 1, 2, 3]))
                step += 2 if _pitch(step, chord) < lo else -2 if _pitch(step, chord) > hi else 0
                pitch = _pitch(step, chord)
            melody.append((onset, dur, pitch))
            onset += dur

    def melody_at(t: float) -> int:
        sounding = [p for o, d, p in melody if o <= t < o + d]
        return sounding[0] if sounding else lo

    bridge: list[tuple[float, float, int]] = []
    for bar, chord in enumerate(chords):
        pattern = (float(style.beats),) if rng.random() < 0.5 else (style.beats / 2,) * 2
        if rng.random() < 0.3:
            continue
        onset = float(bar * style.beats)
        for dur in pattern:
            top = melody_at(onset)
            if rng.random() < 0.12:  # the bridge crosses above the melody for a moment, as real inner voices do
                pitch = _chord_tone(chord, top + 4, at_least=top + 1)
            else:
                target = rng.uniform(*style.bridge)
                pitch = _chord_tone(chord, target, at_least=style.bridge[0], at_most=min(style.bridge[1], top - 2))
            bridge.append((onset, dur, pitch))
            onset += dur

    piano: list[tuple[float, float, int, float]] = []
    variant = 0
    for bar, chord in enumerate(chords):
        if bar % 4 == 0:  # the texture may change at each phrase
            variant = int(rng.integers(2))
        if bar == n_bars - 1:
            final = [_chord_tone(chord, 40, which=0)] + [_chord_tone(chord, 55, which=k) for k in range(3)]
            piano += [(bar * style.beats, float(style.beats), p, 0) for p in final]
        else:
            pattern = style.accompaniment(chord, style.beats, variant)
            piano += [(bar * style.beats + o, d, p, acc) for o, d, p, acc in pattern]

    centre = (lo + hi) // 2
    tracks = [
        [(o, d, p, velocity(o, p, 8, centre)) for o, d, p in melody],
        [(o, d, p, velocity(o, p, -4, centre)) for o, d, p in bridge],
        [(o, d, p, velocity(o, p, -12 + acc, centre)) for o, d, p, acc in piano],
    ]
    return tracks, qpm, tonic, minor


def _humanize(rng: np.random.Generator, notes: list[TickNote], amount: float, monophonic: bool) -> list[TickNote]:
    """Jitter onsets, durations and velocities like a performer; a monophonic line stays monophonic."""
    out = []
    for onset, dur, pitch, vel in notes:
        # Capped at 50 ticks, under half a sixteenth (120), so a line's notes keep their order and never coincide.
        onset = max(0, onset + int(np.clip(round(rng.normal(0, 25 * amount)), -50, 50)))
        dur = max(10, int(round(dur * (1 + rng.normal(0, 0.1 * amount)))))
        vel = int(np.clip(round(vel + rng.normal(0, 8 * amount)), 1, 127))
        out.append((onset, dur, pitch, vel))
    out.sort()
    if monophonic:
        out = [(o, min(d, nxt[0] - o) if nxt else d, p, v) for (o, d, p, v), nxt in zip(out, out[1:] + [None])]
    return out


def _vlq(n: int) -> bytes:
    """MIDI variable-length quantity."""
    out = [n & 0x7F]
    n >>= 7
    while n:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    return bytes(reversed(out))


def _meta(kind: int, data: bytes) -> bytes:
    return bytes([0xFF, kind]) + _vlq(len(data)) + data


def _track_chunk(name: str, channel: int, notes: list[TickNote], meta: tuple[bytes, ...] = ()) -> bytes:
    """One MTrk chunk: meta events, name, program 0, then the notes (ticks)."""
    # Overlapping notes of one pitch would pair note-offs ambiguously, so an earlier one ends where the next begins.
    notes = sorted(notes)
    last: dict[int, int] = {}
    kept: list[list[int]] = []
    for onset, dur, pitch, vel in notes:
        if pitch in last and kept[last[pitch]][0] + kept[last[pitch]][1] > onset:
            kept[last[pitch]][1] = onset - kept[last[pitch]][0]
        last[pitch] = len(kept)
        kept.append([onset, dur, pitch, vel])
    head = (*meta, _meta(0x03, name.encode()), bytes([0xC0 | channel, 0]))
    events = [(0, -1, i, data) for i, data in enumerate(head)]
    for onset, dur, pitch, vel in kept:
        if dur > 0:
            events.append((onset, 1, pitch, bytes([0x90 | channel, pitch, vel])))
            events.append((onset + dur, 0, pitch, bytes([0x80 | channel, pitch, 0])))  # offs sort before ons at a tick
    events.sort(key=lambda e: e[:3])
    body, now = io.BytesIO(), 0
    for tick, _, _, data in events:
        body.write(_vlq(tick - now) + data)
        now = tick
    body.write(_vlq(0) + _meta(0x2F, b""))
    return b"MTrk" + len(body.getvalue()).to_bytes(4, "big") + body.getvalue()


def _midi_bytes(chunks: list[bytes]) -> bytes:
    """A type-1 MIDI file from track chunks."""
    header = (6).to_bytes(4, "big") + (1).to_bytes(2, "big") + len(chunks).to_bytes(2, "big") + TPQ.to_bytes(2, "big")
    return b"MThd" + header + b"".join(chunks)


def _piece_bytes(seed: int, index: int, style_name: str, emotion: str, bars: tuple[int, int], humanize: float) -> bytes:
    """One piece as MIDI bytes; it depends only on (seed, index, style, emotion, bars, humanize)."""
    rng = np.random.default_rng([seed, index])
    style = STYLES[style_name]
    n_bars = int(rng.integers(bars[0], bars[1] + 1))
    tracks, qpm, tonic, minor = _compose(rng, style, emotion, n_bars)
    ticks = [[(round(o * TPQ), round(d * TPQ), p, v) for o, d, p, v in notes] for notes in tracks]
    if humanize > 0:
        ticks = [_humanize(rng, notes, humanize, monophonic=k == 0) for k, notes in enumerate(ticks)]
    sharps = ((tonic + (3 if minor else 0)) * 7) % 12  # the relative major's place on the circle of fifths
    conductor = (
        _meta(0x51, round(60_000_000 / qpm).to_bytes(3, "big")),
        _meta(0x58, bytes([style.beats, 2, 24, 8])),
        _meta(0x59, bytes([(sharps - 12 if sharps > 6 else sharps) & 0xFF, int(minor)])),
    )
    # Tempo, meter and key ride on the first (MELODY) track so the file has exactly the three named tracks.
    chunks = [
        _track_chunk(name, k, notes, conductor if k == 0 else ())
        for k, (name, notes) in enumerate(zip(TRACK_NAMES, ticks))
    ]
    return _midi_bytes(chunks)


def _splits(n: int, rng: np.random.Generator) -> list[str]:
    """Split labels for one style's pieces (in generation order), about 80/10/10.

    The first four stay in train: they carry four different emotions, so train sees every emotion.
    """
    n_held = max(1, round(0.1 * n)) if n >= 3 else 0
    order = list(range(min(n, 4))) + [4 + int(i) for i in rng.permutation(max(n - 4, 0))]
    split = ["train"] * n
    for rank, i in enumerate(reversed(order[n - 2 * n_held :])):
        split[i] = "test" if rank < n_held else "valid"
    return split


def generate_corpus(
    out_dir: str | os.PathLike,
    *,
    n_pieces: int = 48,
    seed: int = 0,
    bars: tuple[int, int] = (8, 16),
    humanize: float = 0.0,
) -> Path:
    """Write ``out_dir/midi/{style}/{id}.mid`` and ``out_dir/labels.csv``; same arguments give byte-identical files.

    Pieces cycle through the styles and, shifted by one each round, the emotions, so any 4 pieces cover
    every style and every emotion, and 16 cover every pair. ``humanize`` > 0 renders the pieces as
    performances: onsets jitter by about 25 * humanize ticks and velocities by about 8 * humanize.
    """
    if n_pieces < 1 or not 1 <= bars[0] <= bars[1] or humanize < 0:
        raise ValueError(
            f"need n_pieces >= 1, 1 <= bars[0] <= bars[1], humanize >= 0; got {n_pieces}, {bars}, {humanize}"
        )
    root = Path(out_dir)
    names = list(STYLES)
    rows = []
    for i in range(n_pieces):
        style = names[i % len(names)]
        emotion = EMOTIONS[(i + i // len(names)) % len(EMOTIONS)]
        piece_id = f"{style}_{i:04d}"
        rel = f"midi/{style}/{piece_id}.mid"
        write_atomic(root / rel, _piece_bytes(seed, i, style, emotion, bars, humanize))
        rows.append({"id": piece_id, "path": rel, "style": style, "emotion": emotion})
    split_rng = np.random.default_rng([seed, 2**32 - 1])  # a stream apart from every piece's [seed, index]
    for style in names:
        mine = [r for r in rows if r["style"] == style]
        for row, split in zip(mine, _splits(len(mine), split_rng)):
            row["split"] = split
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=LABEL_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_atomic(root / "labels.csv", text.getvalue().encode())
    return root


def write_corrupt_files(out_dir: str | os.PathLike) -> list[Path]:
    """Write MIDI files that readers must reject or find empty: random bytes, truncated, header only,
    zero tracks, an empty file, and a drum-only file (channel 10, nothing to tokenize as piano)."""
    root = Path(out_dir)
    good = _piece_bytes(0, 0, "march", "Q1", (4, 4), 0.0)
    header = b"MThd" + (6).to_bytes(4, "big")
    drums = [(i * TPQ // 2, TPQ // 4, 36 if i % 2 == 0 else 42, 90) for i in range(16)]
    files = {
        "random_bytes.mid": bytes(np.random.default_rng(0).integers(0, 256, 512, dtype=np.uint8)),
        # Cut inside the first track: the chunk promises more bytes than the file holds.
        "truncated.mid": good[: 14 + 8 + 40],
        "header_only.mid": header + (1).to_bytes(2, "big") + (1).to_bytes(2, "big") + TPQ.to_bytes(2, "big"),
        "zero_tracks.mid": header + (1).to_bytes(2, "big") + (0).to_bytes(2, "big") + TPQ.to_bytes(2, "big"),
        "empty.mid": b"",
        "drums_only.mid": _midi_bytes([_track_chunk("DRUMS", 9, drums)]),
    }
    paths = []
    for name, data in files.items():
        write_atomic(root / name, data)
        paths.append(root / name)
    return paths
