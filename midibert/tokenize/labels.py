"""Per-note values -> per-token label arrays, through `Encoding.note_index`.

Tokens that stand for no note get IGNORE, the value PyTorch's cross-entropy skips.
"""

from __future__ import annotations

import numpy as np

from midibert.tokenize.base import Encoding

IGNORE = -100  # the one home of the ignore index: labels, batches, masked-LM targets, losses
MELODY_CLASSES = {3: ("melody", "bridge", "accompaniment"), 2: ("melody", "accompaniment")}
VELOCITY_EDGES = (0, 32, 48, 64, 80, 96, 128)  # MidiBERT-Piano's 6 bins


def to_tokens(enc: Encoding, per_note: np.ndarray) -> np.ndarray:
    """Spread one integer per note onto the tokens that stand for it; IGNORE elsewhere."""
    per_note = np.asarray(per_note, dtype=np.int64)
    idx = enc.note_index
    return np.where(idx >= 0, per_note[np.clip(idx, 0, None)], IGNORE) if len(per_note) else np.full(len(idx), IGNORE)


def melody_classes(track_names: np.ndarray, classes: int = 3) -> np.ndarray:
    """Class per note from its track name (POP909 convention: MELODY / BRIDGE / anything else).

    classes=3: 0 melody, 1 bridge, 2 accompaniment. classes=2: 0 melody, 1 accompaniment
    (the bridge, a secondary line, counts as accompaniment).
    """
    if classes not in MELODY_CLASSES:
        raise ValueError(f"melody labels come in 2 or 3 classes, not {classes}")
    names = np.char.upper(np.asarray(track_names, dtype=str))
    melody = np.char.find(names, "MELODY") >= 0
    bridge = np.char.find(names, "BRIDGE") >= 0
    if classes == 3:
        return np.where(melody, 0, np.where(bridge, 1, 2)).astype(np.int64)
    return np.where(melody, 0, 1).astype(np.int64)


def track_classes(track_names: np.ndarray, tracks: dict[str, list[str]]) -> np.ndarray:
    """Class per note from its track name and a user's mapping class -> name patterns: the first
    class one of whose patterns the name contains (ignoring case), else the last class, "other"
    (`len(tracks)`)."""
    names = np.char.lower(np.asarray(track_names, dtype=str))
    out = np.full(len(names), len(tracks), dtype=np.int64)
    for k, patterns in reversed(list(enumerate(tracks.values()))):  # the first matching class wins
        hit = np.zeros(len(names), dtype=bool)
        for p in patterns:
            hit |= np.char.find(names, str(p).lower()) >= 0
        out[hit] = k
    return out


def melody_labels(enc: Encoding, classes: int = 3) -> np.ndarray:
    """(T,) melody class of each token's note, from the note's source track name."""
    return to_tokens(enc, melody_classes(enc.notes.track_name, classes))


def velocity_classes(velocity: np.ndarray, edges=VELOCITY_EDGES) -> np.ndarray:
    """Bin index of each velocity: bin k holds edges[k] <= v < edges[k+1]."""
    edges = np.asarray(edges)
    return np.clip(np.searchsorted(edges, velocity, side="right") - 1, 0, len(edges) - 2).astype(np.int64)


def velocity_labels(enc: Encoding, edges=VELOCITY_EDGES) -> np.ndarray:
    """(T,) velocity bin of each token's note."""
    return to_tokens(enc, velocity_classes(enc.notes.velocity, edges))
