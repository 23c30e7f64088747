"""Note-level augmentations: extra training copies of a piece made the way users' files differ.

A user's MIDI is rarely on a beat grid that matches its bar lines: it was played against a click
it does not follow, stretched to another tempo, humanised, or voiced with the accompaniment above
the tune. Each augmentation below changes a symusic Score in one of those ways, keeping every
note's track (so labels read from track names stay right):

    stretch   every time scaled by one factor in [1/1.25, 1.25]: the file's beat is not the music's
    tempo     the music speeds up and slows down every few beats (x0.85 .. x1.15) against a
              fixed-tempo file: bar lines drift through the piece
    jitter    each onset moved by up to an eighth of a beat: timing off the sixteenth grid
    register  each track moved by -1, 0 or +1 octave (within the piano's range): the
              accompaniment may sit above the tune

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


AUGMENTATIONS: dict[str, Callable[[symusic.Score, np.random.Generator], symusic.Score]] = {
    "stretch": stretch,
    "tempo": tempo,
    "jitter": jitter,
    "register": register,
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
