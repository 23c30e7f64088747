"""MIDI source -> one merged, quantized piano note stream with its bar grid.

Everything representation-specific (CP, REMI) starts from what this module returns, so the
hard cases MidiBERT-Piano's users hit (odd ticks-per-quarter, 3/4 and changing meters, tempo
changes, out-of-range pitches, zero-length notes, drum tracks) are handled once, here.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import symusic

from midibert.errors import MidiError
from midibert.tokenize.config import TokenizerConfig

MidiSource = Any  # path, bytes, symusic.Score, miditoolkit.MidiFile or pretty_midi.PrettyMIDI


@dataclass
class Notes:
    """Per-note arrays of one piece, sorted by (onset, pitch, duration, track).

    `onset` / `duration` are in grid steps of the tokenizer (a silence of more than the config's
    `max_empty_bars` bars shortened to that many); `start` / `end` are the source's own
    ticks (at `tpq`), kept so predictions can be written back onto the original timing.
    `pitch` is the source pitch (never clamped); `tokenized` says which notes have tokens.
    """

    onset: np.ndarray
    duration: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray
    track: np.ndarray  # index into track_names (source track order, drums excluded)
    start: np.ndarray
    end: np.ndarray
    tokenized: np.ndarray
    source_index: np.ndarray  # position in the file: track by track, in each track's own order
    track_names: list[str] = field(default_factory=list)
    tpq: int = 480

    def __len__(self) -> int:
        return len(self.pitch)

    @property
    def track_name(self) -> np.ndarray:
        """The source track name of every note."""
        return np.asarray(self.track_names, dtype=object)[self.track] if len(self) else np.array([], dtype=object)


@dataclass
class Grid:
    """The bar grid of a piece in tokenizer steps: where bars start and which meter each has."""

    bar_starts: np.ndarray  # (n_bars,) grid step of each bar line
    bar_meters: list[tuple[int, int]]  # (numerator, denominator) of each bar


def describe(src: MidiSource) -> str:
    """A name for a source in error messages: its path, or its type for in-memory objects."""
    if isinstance(src, (str, os.PathLike)):
        return str(src)
    return f"<{type(src).__module__}.{type(src).__name__}>"


def read_score(src: MidiSource) -> symusic.Score:
    """Parse any supported source into a tick-time symusic Score, or raise MidiError naming it."""
    name = describe(src)
    try:
        if isinstance(src, symusic.Score):
            score = src
        elif isinstance(src, (str, os.PathLike)):
            path = Path(src)
            if not path.is_file():
                raise MidiError(f"{name}: no such file")
            if path.stat().st_size == 0:
                raise MidiError(f"{name}: empty file (0 bytes)")
            score = symusic.Score(str(path))
        elif isinstance(src, (bytes, bytearray, memoryview)):
            if len(src) == 0:
                raise MidiError(f"{name}: empty bytes")
            score = symusic.Score.from_midi(bytes(src))
        elif hasattr(src, "instruments") and hasattr(src, "ticks_per_beat"):  # miditoolkit
            buf = io.BytesIO()
            src.dump(file=buf)
            score = symusic.Score.from_midi(buf.getvalue())
        elif hasattr(src, "instruments") and hasattr(src, "resolution"):  # pretty_midi
            buf = io.BytesIO()
            src.write(buf)
            score = symusic.Score.from_midi(buf.getvalue())
        else:
            raise MidiError(
                f"{name}: unsupported source type; give a path, bytes, symusic.Score, "
                "miditoolkit.MidiFile or pretty_midi.PrettyMIDI"
            )
    except MidiError:
        raise
    except Exception as e:  # the parsers raise RuntimeError, IOError, struct errors ...
        raise MidiError(f"{name}: not a readable MIDI file ({type(e).__name__}: {e})") from e
    if score.ttype != "Tick" and str(score.ttype).lower() != "tick":
        score = score.to("tick")
    if score.tpq <= 0:
        raise MidiError(f"{name}: invalid ticks per quarter {score.tpq}")
    return score


def _to_grid(ticks: np.ndarray, tpq: int, res: int) -> np.ndarray:
    """Round source ticks to the nearest grid step (integer arithmetic: exact for any tpq)."""
    t = ticks.astype(np.int64) * res
    return (2 * t + tpq) // (2 * tpq)


# symusic keeps ticks in int32: delta times that add up past this wrap round to negative times.
MAX_TICK = 2**31 - 1


def _check_times(score: symusic.Score, start: np.ndarray, end: np.ndarray, name: str) -> None:
    """Refuse a file whose times overflowed the tick counter, before any array is sized by them."""
    meta = [e.time for e in (*score.tempos, *score.time_signatures)]
    bad = np.flatnonzero((start < 0) | (end < start) | (end > MAX_TICK))
    if len(bad) or (meta and min(meta) < 0):
        where = (
            f"note {bad[0]} starts at tick {start[bad[0]]}, ends at {end[bad[0]]}"
            if len(bad)
            else f"a tempo or meter at tick {min(meta)}"
        )
        raise MidiError(
            f"{name}: times do not fit 32-bit ticks ({where}): its delta times add up past {MAX_TICK} ticks"
        )


def _check_size(n_tokens: int, n_bars: int, n_notes: int, max_tokens: int, name: str) -> None:
    if n_tokens > max_tokens:
        raise MidiError(
            f"{name}: too long to tokenize: up to {n_tokens:,} tokens ({n_notes:,} notes, "
            f"{n_bars:,} bars), over the limit of {max_tokens:,}"
        )


def extract(
    src: MidiSource, cfg: TokenizerConfig, max_tokens: int | None = None, cost: tuple[int, int] = (1, 1)
) -> tuple[Notes, Grid, np.ndarray, dict]:
    """Merge the non-drum tracks of `src` into one quantized note stream.

    Returns the notes, the bar grid, the tempo (BPM) sounding at each note and counters of what
    was changed to fit the vocabulary (clamped / dropped pitches, clamped durations, ...).
    With `max_tokens`, a piece that could make more tokens than that, at `cost` = (tokens per
    bar, tokens per note) at most, is refused before its bar grid is built: a few notes far
    apart would otherwise make millions of empty bars.
    """
    score = read_score(src)
    name = describe(src)
    tpq, res = score.tpq, cfg.resolution
    parts, names = [], []
    for track in score.tracks:
        if track.is_drum or len(track.notes) == 0:
            continue
        a = track.notes.numpy()
        parts.append((a, len(names)))
        names.append(track.name)
    if not parts:
        drums = sum(1 for t in score.tracks if t.is_drum and len(t.notes))
        why = "only drum tracks" if drums else "no notes"
        raise MidiError(f"{name}: nothing to tokenize ({why})")

    start = np.concatenate([a["time"] for a, _ in parts]).astype(np.int64)
    end = start + np.concatenate([a["duration"] for a, _ in parts]).astype(np.int64)
    pitch = np.concatenate([a["pitch"] for a, _ in parts]).astype(np.int64)
    velocity = np.concatenate([a["velocity"] for a, _ in parts]).astype(np.int64)
    track = np.concatenate([np.full(len(a["time"]), i, dtype=np.int64) for a, i in parts])
    stats = {"notes": int(len(pitch)), "tpq": int(tpq)}
    _check_times(score, start, end, name)
    if max_tokens is not None:
        _check_size(cost[1] * len(pitch), 0, len(pitch), max_tokens, name)

    onset = _to_grid(start, tpq, res)
    # Zero-length and sub-grid notes still sound: they get one step rather than vanishing.
    duration = _to_grid(end, tpq, res) - onset
    stats["short_durations"] = int((duration < 1).sum())
    max_dur = cfg.max_duration_quarters * res
    stats["clamped_durations"] = int((duration > max_dur).sum())
    duration = np.clip(duration, 1, max_dur)

    lo, hi = cfg.pitch_range
    out = (pitch < lo) | (pitch > hi)
    stats["out_of_range_pitches"] = int(out.sum())
    tokenized = ~out if cfg.out_of_range == "drop" else np.ones(len(pitch), dtype=bool)

    # Sort on the pitch the tokens will carry, so decoding and re-encoding give the same order.
    order = np.lexsort((track, duration, np.clip(pitch, lo, hi), onset))
    notes = Notes(
        onset=onset[order],
        duration=duration[order],
        pitch=pitch[order],
        velocity=velocity[order],
        track=track[order],
        start=start[order],
        end=end[order],
        tokenized=tokenized[order],
        source_index=order,
        track_names=names,
        tpq=int(tpq),
    )
    if not notes.tokenized.any():
        raise MidiError(f"{name}: no note within pitch range {cfg.pitch_range}")

    onsets = notes.onset[notes.tokenized]
    plan = bar_plan(score, cfg, last=int(onsets.max()), stats=stats)
    if max_tokens is not None:  # an upper bound, before any array is sized by the bars
        n_notes = len(onsets)
        n_bars = min(sum(n for _, _, n, _ in plan), n_notes * (cfg.max_empty_bars + 1))
        _check_size(cost[0] * n_bars + cost[1] * n_notes, n_bars, n_notes, max_tokens, name)
    grid, source_starts = bar_grid(plan, onsets, cfg.max_empty_bars)
    stats["dropped_empty_bars"] = sum(n for _, _, n, _ in plan) - len(grid.bar_starts)
    tempo = tempo_at(score, notes.onset, res)  # looked up on the source's timeline
    bar = np.clip(np.searchsorted(source_starts, notes.onset, side="right") - 1, 0, None)
    length = np.diff(np.append(grid.bar_starts, grid.bar_starts[-1] + bar_steps(grid.bar_meters[-1], res)))
    notes.onset = grid.bar_starts[bar] + np.minimum(notes.onset - source_starts[bar], length[bar] - 1)
    return notes, grid, tempo, stats


def supported_meters(cfg: TokenizerConfig) -> list[tuple[int, int]]:
    """Meters whose bar is a whole number of grid steps and fits the Position family."""
    res, out = cfg.resolution, []
    for den in (1, 2, 4, 8, 16, 32):
        for num in range(1, 4 * cfg.max_bar_quarters * den // 4 + 1):
            steps = 4 * res * num / den
            if steps == int(steps) and 1 <= steps <= cfg.max_bar_quarters * res:
                out.append((num, den))
    return out


def bar_steps(meter: tuple[int, int], res: int) -> int:
    num, den = meter
    return 4 * res * num // den


def bar_plan(
    score: symusic.Score, cfg: TokenizerConfig, last: int, stats: dict
) -> list[tuple[int, int, int, tuple[int, int]]]:
    """Bar lines from the file's time signatures, covering every onset up to `last`, as runs of
    (first bar line, bar length, number of bars, meter): nothing allocated per bar yet.

    A meter the vocabulary can't index (bar too long, or not a whole number of steps) is
    replaced by 4/4: timing stays exact, only the bar lines move. A meter change that falls
    inside a bar takes effect at the next bar line, so every bar is whole. Changes after the
    last onset make no bars.
    """
    res = cfg.resolution
    ok = set(supported_meters(cfg))
    changes = sorted(
        {
            (int(_to_grid(np.array([ts.time]), score.tpq, res)[0]), ts.numerator, ts.denominator)
            for ts in score.time_signatures
        }
    )
    if not changes or changes[0][0] > 0:
        changes.insert(0, (0, 4, 4))
    stats["unsupported_meters"] = 0
    plan = []
    pos = 0  # where the next bar line falls
    for i, (_, num, den) in enumerate(changes):
        meter = (num, den)
        if meter not in ok:
            stats["unsupported_meters"] += 1
            meter = (4, 4)
        if pos > last:
            continue
        step = bar_steps(meter, res)
        stop = min(changes[i + 1][0], last + 1) if i + 1 < len(changes) else last + 1
        n = max(0, -(-(stop - pos) // step))  # bars needed to reach the next change
        plan.append((pos, step, n, meter))
        pos += step * n
    return plan


def bar_grid(
    plan: list[tuple[int, int, int, tuple[int, int]]], onsets: np.ndarray, max_empty_bars: int
) -> tuple[Grid, np.ndarray]:
    """The bar lines of a `bar_plan` that the notes need: every bar holding an onset, and of each
    run of empty bars before one, the last `max_empty_bars`; then where each kept bar starts in
    the source.

    A long silence (or a note held for hours before the next) so costs a bounded number of bar
    tokens: the work follows the notes, not the time span. The grid closes the dropped bars up,
    so the tokens (and `Notes.onset`) tell a shortened silence.
    """
    first = np.cumsum([0] + [n for _, _, n, _ in plan])  # global index of each run's first bar
    pos = np.array([p for p, _, _, _ in plan], dtype=np.int64)
    step = np.array([s for _, s, _, _ in plan], dtype=np.int64)
    run = np.searchsorted(pos, onsets, side="right") - 1
    occupied = np.unique(first[run] + (onsets - pos[run]) // step[run])
    previous = np.concatenate([[-1], occupied[:-1]])
    lead = np.minimum(occupied - previous - 1, max_empty_bars)  # empty bars kept before each occupied one
    starts = np.repeat(occupied - lead, lead + 1)
    bars = starts + np.arange(len(starts)) - np.repeat(np.cumsum(lead + 1) - (lead + 1), lead + 1)
    r = np.searchsorted(first, bars, side="right") - 1
    closed = np.concatenate([[0], np.cumsum(step[r])[:-1]]).astype(np.int64)
    return Grid(bar_starts=closed, bar_meters=[plan[i][3] for i in r]), pos[r] + (bars - first[r]) * step[r]


def tempo_at(score: symusic.Score, steps: np.ndarray, res: int) -> np.ndarray:
    """Tempo in BPM in force at each grid step; 120 where none is set.

    Looked up on the grid, not the source ticks, so notes that share an onset share a tempo.
    """
    if not len(score.tempos):
        return np.full(len(steps), 120.0)
    t = _to_grid(np.array([tp.time for tp in score.tempos], dtype=np.int64), score.tpq, res)
    q = np.array([tp.qpm for tp in score.tempos], dtype=np.float64)
    order = np.argsort(t, kind="stable")
    t, q = t[order], q[order]
    idx = np.searchsorted(t, steps, side="right") - 1
    return np.where(idx >= 0, q[np.clip(idx, 0, None)], q[0])
