"""POP909: 909 pop songs whose MELODY / BRIDGE / PIANO tracks give per-note melody labels.

MidiBERT-Piano kept the 865 songs in 4/4 and split them 693 / 86 / 86; it also realigned
every song to its annotated beats, which `quantize_to_beats` reproduces so the played
(unquantised) MIDI can be tokenized as a score. A user's file has no beat annotations: reading
the raw file too (`timing="raw"` or `"both"`) trains and tests a model on what it will meet.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import symusic

from midibert.datasets.base import SPLITS, DatasetInfo, Piece, published_split, register

TPQ = 480
BEATS_PER_BAR = 4  # all 865 qualified songs are in 4/4
TIMINGS = ("beats", "raw", "both")


def read(
    root: Path,
    *,
    seed: int = 0,
    qualified_only: bool = True,
    timing: str = "beats",
    extra_train: str | None = None,
    extra_path: str | None = None,
    extra_copies: int = 1,
    extra_augment: Sequence[str] = (),
) -> list[Piece]:
    """The songs (the 865 qualified ones by default) with MidiBERT-Piano's split.

    timing: how a score tokenizer reads each song: "beats" realigned to its beat annotations,
    "raw" the file as it is, "both" each song twice (the raw reading's id ends in "@raw"; one
    group, so both readings of a song are in one split).
    extra_train: another dataset with melody labels in its track names (e.g. "madrigals", read
    from `extra_path`, by default where `datasets.base.dataset_dir` finds it) whose training
    pieces join POP909's training split, `extra_copies` times each (ids "<dataset>/<id>@<k>"),
    read as they are, or, with `extra_augment` (names from `midibert.augment`), half of the copies
    read through those augmentations; validation and test stay POP909's.
    """
    if timing not in TIMINGS:
        raise ValueError(f"pop909: timing must be one of {', '.join(TIMINGS)}, got {timing!r}")
    split_of = {sid: s for s in SPLITS for sid in published_split(root, "pop909", s)}
    ids = (
        published_split(root, "pop909", "qualified_4_4_pieces")
        if qualified_only
        else sorted(p.name for p in (root / "POP909").iterdir() if p.is_dir())
    )
    readings = ["beats", "raw"] if timing == "both" else [timing]
    return _extra(extra_train, extra_path, seed, extra_copies, extra_augment) + [
        Piece(
            id=sid if reading == "beats" else f"{sid}@raw",
            path=root / "POP909" / sid / f"{sid}.mid",
            group=sid,
            kind="performance",
            split=split_of.get(sid),
            reading=reading,
        )
        for sid in ids
        for reading in readings
    ]


def _extra(name: str | None, path: str | None, seed: int, copies: int, augment: Sequence[str] = ()) -> list[Piece]:
    """The training pieces of dataset `name` as extra POP909 training pieces (`read`)."""
    if name is None:
        return []
    from midibert.datasets.base import get_info
    from midibert.datasets.base import read as read_dataset

    if not get_info(name).note_labels:
        raise ValueError(f"pop909: extra_train={name!r} has no melody labels in its MIDI files")
    if copies < 1:
        raise ValueError(f"pop909: extra_copies must be at least 1, got {copies}")
    if augment and copies % 2:
        raise ValueError(
            f"pop909: extra_augment reads half of the extra copies augmented; extra_copies={copies} is odd"
        )
    # with augment, each piece once as it is and once augmented (base.read's "@aug1" copy), each copies/2 times
    train = [p for p in read_dataset(name, path, seed=seed, augment=augment) if p.split == "train"]
    return [
        replace(p, id=f"{name}/{p.id}@{k}", group=f"{name}/{p.group or p.id}", reading="raw")
        for p in train
        for k in range(copies // 2 if augment else copies)
    ]


def beat_times(midi_path: Path) -> np.ndarray:
    """(n_beats, 2): beat time in seconds and 1.0 where the beat is a downbeat, from beat_midi.txt."""
    table = np.loadtxt(midi_path.parent / "beat_midi.txt", ndmin=2)
    return table[:, :2]


def quantize_to_beats(score: symusic.Score, beats: np.ndarray, tpq: int = TPQ) -> symusic.Score:
    """A copy of `score` on a beat grid: beat i at tick tpq*i (shifted so downbeats start bars).

    Note times map linearly between the annotated beats (and beyond the ends at the first / last
    beat period), so expressive tempo drift disappears while within-beat timing is kept.
    """
    beats = np.asarray(beats, dtype=np.float64)
    times = beats[:, 0] if beats.ndim == 2 else beats
    if len(times) < 2:
        raise ValueError("need at least two beats to quantize")
    down = np.flatnonzero(beats[:, 1] > 0) if beats.ndim == 2 and beats.shape[1] > 1 else np.array([0])
    shift = (-int(down[0])) % BEATS_PER_BAR if len(down) else 0  # first downbeat lands on a bar line
    idx = np.arange(len(times), dtype=np.float64)

    def to_beat(t: np.ndarray) -> np.ndarray:
        b = np.interp(t, times, idx)
        first = (times[1] - times[0]) or 1.0
        last = (times[-1] - times[-2]) or 1.0
        b = np.where(t < times[0], (t - times[0]) / first, b)
        return np.where(t > times[-1], idx[-1] + (t - times[-1]) / last, b)

    sec = score.to("second")
    out = symusic.Score(tpq)
    out.time_signatures.append(symusic.TimeSignature(0, BEATS_PER_BAR, 4))
    out.tempos.append(symusic.Tempo(0, 60.0 / max(float(np.median(np.diff(times))), 1e-3)))
    for track in sec.tracks:
        new = symusic.Track(track.name, track.program, track.is_drum)
        n = track.notes.numpy()
        if len(n["time"]):
            on = np.rint((to_beat(n["time"]) + shift) * tpq)
            off = np.rint((to_beat(n["time"] + n["duration"]) + shift) * tpq)
            on = np.clip(on, 0, None)
            new.notes = symusic.Note.from_numpy(
                time=on.astype(np.int32),
                duration=np.maximum(off - on, 1).astype(np.int32),
                pitch=n["pitch"],
                velocity=n["velocity"],
            )
        out.tracks.append(new)
    return out


def load(piece: Piece, kind: str):
    """Scores are realigned to the annotated beats (as MidiBERT-Piano did) unless the piece is read
    raw; performances read as played."""
    if kind != "score" or piece.reading == "raw":
        return piece.path
    return quantize_to_beats(symusic.Score(str(piece.path)), beat_times(piece.path))


INFO = register(
    DatasetInfo(
        name="pop909",
        folder="pop909",
        read=read,
        kind="performance",
        note_labels=True,
        load=load,
        raw_reading={"timing": "raw"},
    )
)
