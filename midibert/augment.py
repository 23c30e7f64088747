"""Note-level augmentations: extra training copies of a piece made the way users' files differ.

A user's MIDI is rarely on a beat grid that matches its bar lines: it was played against a click
it does not follow, stretched to another tempo, humanised, voiced with the accompaniment above
the tune, or with other lines as tuneful as the tune. Each augmentation below changes a symusic
Score in one of those ways, keeping every note's track (so labels read from track names stay right):

    stretch   every time scaled by one factor in [1/1.25, 1.25]: the file's beat is not the music's
    tempo     the music speeds up and slows down every few beats (x0.85 .. x1.15) against a
              fixed-tempo file: bar lines drift through the piece
    jitter    each onset moved by up to an eighth of a beat: timing off the sixteenth grid
    register  each track moved by -1, 0 or +1 octave (within the piano's range): the
              accompaniment may sit above the tune
    octave    the whole piece an octave up, every track together, where it fits under the
              piano's top: the voices keep their order, and part music's top voice sings in a
              violin's register rather than a voice's
    harmony   a second voice a third or a sixth under the tune, in the piece's scale, holding a
              note now and then where the tune moves: a line that sings like the tune and is not
              it, as a chorale's alto or a quartet's second violin

All but `harmony` keep every note in its track; `harmony` adds its voice as a track of its own
("HARMONY"), which the melody labels count as accompaniment.

Datasets get augmented copies of their training pieces through the reader options `augment`
(names above) and `augment_copies` (`datasets.base.read`); valid and test pieces are never
augmented, so figures stay comparable.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

import numpy as np
import symusic

STRETCH = 1.25  # largest factor either way
TEMPO = 0.15  # largest local tempo change either way
TEMPO_SEGMENT_BEATS = 4  # how often the local tempo changes
JITTER_BEATS = 0.125
PIANO = (21, 108)
HARMONY_BELOW = ((3, 4), (8, 9))  # a third or a sixth under the tune: (minor, major) in semitones
HARMONY_HOLD = 0.3  # share of the tune's notes the second voice does not follow, holding its note


def _map_times(score: symusic.Score, warp: Callable[[np.ndarray], np.ndarray]) -> symusic.Score:
    """A copy of `score` whose note onsets and ends go through `warp` (ticks -> ticks)."""
    out = score.copy()
    for track in out.tracks:
        n = track.notes.numpy()
        if not len(n["time"]):
            continue
        on = warp(n["time"].astype(np.float64))
        off = warp((n["time"] + n["duration"]).astype(np.float64))
        on = np.clip(np.rint(on), 0, None)
        track.notes = symusic.Note.from_numpy(
            time=on.astype(np.int32),
            duration=np.maximum(np.rint(off) - on, 1).astype(np.int32),
            pitch=n["pitch"],
            velocity=n["velocity"],
        )
    return out


def stretch(score: symusic.Score, rng: np.random.Generator) -> symusic.Score:
    factor = float(np.exp(rng.uniform(-np.log(STRETCH), np.log(STRETCH))))
    return _map_times(score, lambda t: t * factor)


def tempo(score: symusic.Score, rng: np.random.Generator) -> symusic.Score:
    seg = TEMPO_SEGMENT_BEATS * score.tpq
    end = max(int(score.end()), 1)
    rates = rng.uniform(1 - TEMPO, 1 + TEMPO, size=end // seg + 2)
    knots = np.arange(len(rates) + 1, dtype=np.float64) * seg
    warped = np.concatenate([[0.0], np.cumsum(rates * seg)])  # time after warping at each knot
    return _map_times(score, lambda t: np.interp(t, knots, warped))


def jitter(score: symusic.Score, rng: np.random.Generator) -> symusic.Score:
    out = score.copy()
    width = JITTER_BEATS * score.tpq
    for track in out.tracks:
        n = track.notes.numpy()
        if not len(n["time"]):
            continue
        on = np.clip(n["time"] + np.rint(rng.uniform(-width, width, len(n["time"]))), 0, None)
        track.notes = symusic.Note.from_numpy(
            time=on.astype(np.int32), duration=n["duration"], pitch=n["pitch"], velocity=n["velocity"]
        )
    return out


def register(score: symusic.Score, rng: np.random.Generator) -> symusic.Score:
    out = score.copy()
    for track in out.tracks:
        if track.is_drum or not len(track.notes):
            continue
        pitches = track.notes.numpy()["pitch"]
        fits = [s for s in (-12, 0, 12) if pitches.min() + s >= PIANO[0] and pitches.max() + s <= PIANO[1]]
        track.shift_pitch(int(rng.choice(fits)), inplace=True)
    return out


def octave(score: symusic.Score, rng: np.random.Generator) -> symusic.Score:
    out = score.copy()
    tracks = [t for t in out.tracks if not t.is_drum and len(t.notes)]
    if tracks and max(int(t.notes.numpy()["pitch"].max()) for t in tracks) + 12 <= PIANO[1]:
        for track in tracks:
            track.shift_pitch(12, inplace=True)
    return out


def _scale(score: symusic.Score) -> np.ndarray:
    """(12,) bool: the piece's seven pitch classes that sound longest, the scale its key most likely has."""
    weight = np.zeros(12)
    for track in score.tracks:
        n = track.notes.numpy()
        if not track.is_drum and len(n["pitch"]):
            np.add.at(weight, n["pitch"] % 12, n["duration"].astype(np.float64))
    scale = np.zeros(12, dtype=bool)
    scale[np.argsort(weight, kind="stable")[-7:]] = True
    return scale


def harmony(score: symusic.Score, rng: np.random.Generator) -> symusic.Score:
    from midibert.tokenize.labels import melody_classes  # the one reading of which track is the tune

    out = score.copy()
    classes = melody_classes([t.name for t in out.tracks])
    tune = next((t for t, c in zip(out.tracks, classes) if c == 0 and len(t.notes)), None)
    if tune is None:  # nothing to harmonise: the copy stays as read
        return out
    n = tune.notes.numpy()
    order = np.argsort(n["time"], kind="stable")
    on, end, pitch = n["time"][order], (n["time"] + n["duration"])[order], n["pitch"][order].astype(int)
    small, large = HARMONY_BELOW[rng.integers(len(HARMONY_BELOW))]
    # the interval whose lower note is in the scale: a diatonic third (or sixth), minor or major
    below = np.where(_scale(out)[(pitch - small) % 12], pitch - small, pitch - large)
    struck = rng.random(len(on)) >= HARMONY_HOLD
    struck[0] = True
    voice = np.cumsum(struck) - 1  # each tune note's harmony note: the last one struck
    ends = np.zeros(voice[-1] + 1, dtype=np.int64)
    np.maximum.at(ends, voice, end.astype(np.int64))
    start, low, loud = on[struck], below[struck], n["velocity"][order][struck].astype(int)
    keep = low >= PIANO[0]
    track = symusic.Track("HARMONY", tune.program, False)
    track.notes = symusic.Note.from_numpy(
        time=start[keep].astype(np.int32),
        duration=np.maximum(ends - start, 1)[keep].astype(np.int32),
        pitch=low[keep].astype(np.int8),
        velocity=np.maximum(loud[keep] * 4 // 5, 1).astype(np.int8),
    )
    out.tracks.append(track)
    return out


AUGMENTATIONS: dict[str, Callable[[symusic.Score, np.random.Generator], symusic.Score]] = {
    "stretch": stretch,
    "tempo": tempo,
    "jitter": jitter,
    "register": register,
    "octave": octave,
    "harmony": harmony,
}


def check(names: Sequence[str]) -> tuple[str, ...]:
    """`names` as a tuple, or a ValueError naming the unknown ones and the known ones."""
    names = (names,) if isinstance(names, str) else tuple(names)
    unknown = [n for n in names if n not in AUGMENTATIONS]
    if unknown:
        raise ValueError(f"unknown augmentation {', '.join(map(repr, unknown))}; known: {', '.join(AUGMENTATIONS)}")
    return names


def rng_for(piece_id: str) -> np.random.Generator:
    """The same random draws for the same piece copy in every run and worker process."""
    return np.random.default_rng(zlib.crc32(piece_id.encode()))


def augment(score: symusic.Score, names: Sequence[str], rng: np.random.Generator) -> symusic.Score:
    """`score` through each augmentation in `names`, in order."""
    for name in check(names):
        score = AUGMENTATIONS[name](score, rng)
    return score


__all__ = ["AUGMENTATIONS", "augment", "check", "rng_for"]
