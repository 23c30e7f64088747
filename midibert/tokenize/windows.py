"""Split a long encoding into fixed-length model inputs, keeping the token -> note links, and
merge what a model says about each window back into one row per note or per piece."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from midibert.tokenize.base import PAD
from midibert.tokenize.labels import IGNORE


def evaluation_overlap(length: int) -> int:
    """How many tokens each evaluation window repeats of the one before: a quarter, so that a
    note near one window's edge is also seen, with context on both sides, from the next."""
    return length // 4


@dataclass
class Windows:
    """N windows of `length` tokens. starts[i]/lengths[i] locate window i in the encoding."""

    ids: np.ndarray  # (N, L) or (N, L, F), PAD-filled
    note_index: np.ndarray  # (N, L), -1 on padding
    attention_mask: np.ndarray  # (N, L) bool, True on real tokens
    starts: np.ndarray
    lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.starts)

    def take(self, values: np.ndarray, fill: int = IGNORE) -> np.ndarray:
        """Cut any per-token array (labels, ...) into the same windows, `fill` on padding."""
        values = np.asarray(values)
        out = np.full((len(self), self.ids.shape[1], *values.shape[1:]), fill, dtype=values.dtype)
        for i, (s, n) in enumerate(zip(self.starts, self.lengths)):
            out[i, :n] = values[s : s + n]
        return out


def window_starts(
    n_tokens: int,
    length: int,
    overlap: int = 0,
    bar_start: np.ndarray | None = None,
    *,
    end_aligned: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Where windows begin and how long each is.

    With `bar_start` (bool per token) each window after the first begins at a bar line and
    ends before the bar line that would not fit, unless a single bar is longer than a window.
    With `end_aligned`, a piece longer than a window has no short last window: the last one is
    moved back to end where the piece ends, overlapping the one before. Piece-level tasks want
    this: a last window of a few notes would carry the whole piece's label in training and
    weigh as much as a full window in the piece's mean prediction.
    """
    starts, lengths = _window_starts(n_tokens, length, overlap, bar_start)
    if end_aligned and n_tokens > length and lengths[-1] < length:
        starts[-1], lengths[-1] = n_tokens - length, length
    return starts, lengths


def _window_starts(
    n_tokens: int, length: int, overlap: int, bar_start: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    if length < 1 or not 0 <= overlap < length:
        raise ValueError(f"need length >= 1 and 0 <= overlap < length, got {length}, {overlap}")
    if n_tokens == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    if bar_start is None:
        starts = np.arange(0, max(n_tokens - overlap, 1), length - overlap, dtype=np.int64)
        return starts, np.minimum(length, n_tokens - starts)
    bars = np.flatnonzero(bar_start)
    starts, lengths, s = [], [], 0
    while True:
        end = min(s + length, n_tokens)
        if end < n_tokens:  # pull the end back to the last bar line inside the window
            cut = bars[(bars > s) & (bars <= end)]
            end = int(cut[-1]) if len(cut) else end
        starts.append(s)
        lengths.append(end - s)
        if end >= n_tokens:
            break
        nxt = end
        if overlap:  # back up to a bar line at most `overlap` tokens before the end
            back = bars[(bars > s) & (bars >= end - overlap) & (bars < end)]
            nxt = int(back[0]) if len(back) else end
        s = nxt
    return np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)


def make_windows(
    ids: np.ndarray,
    note_index: np.ndarray,
    length: int = 512,
    overlap: int = 0,
    bar_start: np.ndarray | None = None,
    pad_id: int = PAD,
    *,
    end_aligned: bool = False,
) -> Windows:
    """Windows of `length` tokens (last one padded), optionally overlapping, cut at bar lines or
    end-aligned (`window_starts`)."""
    ids = np.asarray(ids)
    starts, lengths = window_starts(len(ids), length, overlap, bar_start, end_aligned=end_aligned)
    w = Windows(
        ids=np.full((len(starts), length, *ids.shape[1:]), pad_id, dtype=ids.dtype),
        note_index=np.full((len(starts), length), -1, dtype=np.int64),
        attention_mask=np.zeros((len(starts), length), dtype=bool),
        starts=starts,
        lengths=lengths,
    )
    for i, (s, n) in enumerate(zip(starts, lengths)):
        w.ids[i, :n] = ids[s : s + n]
        w.note_index[i, :n] = note_index[s : s + n]
        w.attention_mask[i, :n] = True
    return w


def _group_mean(keys: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted distinct keys and the mean of the rows of ``values`` sharing each key."""
    unique, inverse = np.unique(keys, return_inverse=True)
    sums = np.zeros((len(unique), values.shape[-1]), dtype=np.float64)
    np.add.at(sums, inverse, values)
    return unique, sums / np.bincount(inverse, minlength=len(unique))[:, None]


def _note_keys(note_index: np.ndarray, piece: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Mask of note tokens, one int64 key per note token for its (piece, note), and the key's note stride."""
    note_index, piece = np.asarray(note_index, dtype=np.int64), np.asarray(piece, dtype=np.int64)
    mask = note_index >= 0
    stride = int(note_index.max()) + 1 if mask.any() else 1
    keys = np.broadcast_to(piece[:, None], note_index.shape)[mask] * stride + note_index[mask]
    return mask, keys, stride


def aggregate_notes(
    probs: np.ndarray, note_index: np.ndarray, piece: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(piece_ids, note_ids, mean_probs): each (piece, note) once, its probabilities averaged over all its tokens."""
    mask, keys, stride = _note_keys(note_index, piece)
    unique, mean = _group_mean(keys, np.asarray(probs)[mask])
    return unique // stride, unique % stride, mean


def note_labels(labels: np.ndarray, note_index: np.ndarray, piece: np.ndarray) -> np.ndarray:
    """True label per (piece, note) in aggregate_notes' order; IGNORE for a note none of whose tokens is labelled."""
    mask, keys, _ = _note_keys(note_index, piece)
    unique, inverse = np.unique(keys, return_inverse=True)
    out = np.full(len(unique), IGNORE, dtype=np.int64)
    np.maximum.at(out, inverse, np.asarray(labels, dtype=np.int64)[mask])  # IGNORE is below every class
    return out


def aggregate_pieces(probs: np.ndarray, piece: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(piece_ids, mean_probs): window probabilities (N, C) averaged per piece."""
    return _group_mean(np.asarray(piece, dtype=np.int64), np.asarray(probs))
