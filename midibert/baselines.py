"""Baselines the paper compares MidiBERT with: BiLSTMs trained from scratch and the skyline melody
rule; and, for the piece-level tasks, a logistic regression on note statistics, the trivial model
a network must beat before its size is blamed. (The majority-class baseline is one line, in
`midibert.finetune.rule_baseline`.)

The BiLSTMs take the BertConfig of the model they are compared with, so they read tokens
through the same `Embeddings` (vocabularies, emb_size per family), and are called like the heads,
`model(input_ids, attention_mask) -> logits`, so one training loop serves both. They expect
right padding (real tokens first), which is what the batches hold.
"""

from __future__ import annotations

import heapq

import numpy as np
import torch
from torch import Tensor, nn

from midibert.heads import AttentionPool, mlp
from midibert.model import BertConfig, Embeddings, padding_mask
from midibert.tokenize.notes import Notes


class BiLSTM(nn.Module):
    """Token embeddings and a bidirectional LSTM over the real tokens: -> (B, L, 2 * hidden).

    Each direction of each layer is its own one-layer LSTM, and the backward one reads every
    sequence reversed within its own length, so it starts at the last real token, never in the
    padding. That is what packing gives, without packing: a packed batch of unequal lengths takes
    PyTorch's per-time-step CPU path, whose backward is 4-6x slower than the fused one used here.
    """

    def __init__(self, cfg: BertConfig, *, hidden: int = 256, layers: int = 3, dropout: float = 0.1):
        super().__init__()
        self.embed = Embeddings(cfg.vocab_sizes, cfg.emb_size, hidden)
        self.pad_id = cfg.pad_id
        sizes = [hidden] + [2 * hidden] * (layers - 1)
        self.forward_lstms = nn.ModuleList(nn.LSTM(n, hidden, batch_first=True) for n in sizes)
        self.backward_lstms = nn.ModuleList(nn.LSTM(n, hidden, batch_first=True) for n in sizes)
        self.dropout = nn.Dropout(dropout)

    @property
    def hidden_size(self) -> int:
        return self.forward_lstms[0].hidden_size

    @property
    def num_layers(self) -> int:
        return len(self.forward_lstms)

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        x = self.embed(input_ids)
        t = torch.arange(x.shape[1], device=x.device)
        lengths = attention_mask.sum(1, keepdim=True)
        order = torch.where(t < lengths, lengths - 1 - t, t)  # its own inverse; padding stays put

        def reverse(h: Tensor) -> Tensor:
            return h.gather(1, order[..., None].expand_as(h))

        for i, (fwd, bwd) in enumerate(zip(self.forward_lstms, self.backward_lstms)):
            if i:
                x = self.dropout(x)  # between layers, as nn.LSTM(dropout=...) does
            x = torch.cat([fwd(x)[0], reverse(bwd(reverse(x))[0])], -1)
        return x


class BiLSTMTokenClassifier(nn.Module):
    """The paper's per-token baseline: 3-layer BiLSTM, 256 units per direction, linear output."""

    def __init__(self, cfg: BertConfig, num_classes: int, *, hidden: int = 256, layers: int = 3, dropout: float = 0.1):
        super().__init__()
        self.lstm = BiLSTM(cfg, hidden=hidden, layers=layers, dropout=dropout)
        self.out = nn.Linear(2 * hidden, num_classes)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """(B, L, num_classes) logits."""
        if attention_mask is None:
            attention_mask = padding_mask(input_ids, self.lstm.pad_id)
        return self.out(self.lstm(input_ids, attention_mask))


class BiLSTMSequenceClassifier(nn.Module):
    """The paper's per-piece baseline: BiLSTM, attention pooling over real tokens, MLP."""

    def __init__(
        self,
        cfg: BertConfig,
        num_classes: int,
        *,
        hidden: int = 256,
        layers: int = 3,
        dropout: float = 0.1,
        hops: int = 4,
    ):
        super().__init__()
        self.lstm = BiLSTM(cfg, hidden=hidden, layers=layers, dropout=dropout)
        self.pool = AttentionPool(2 * hidden, hops=hops)
        self.classifier = mlp(hops * 2 * hidden, hidden, num_classes, dropout)

    def forward(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """(B, num_classes) logits."""
        if attention_mask is None:
            attention_mask = padding_mask(input_ids, self.lstm.pad_id)
        return self.classifier(self.pool(self.lstm(input_ids, attention_mask), attention_mask))


def skyline_melody(pitch: np.ndarray, onset: np.ndarray) -> np.ndarray:
    """Skyline rule: among notes starting at the same onset the highest is melody; per-note 0/1."""
    pitch, onset = np.asarray(pitch), np.asarray(onset)
    if pitch.size == 0:
        return np.zeros(0, dtype=np.int64)
    _, group = np.unique(onset, return_inverse=True)
    top = np.full(group.max() + 1, np.iinfo(np.int64).min)
    np.maximum.at(top, group, pitch.astype(np.int64))
    return (pitch == top[group]).astype(np.int64)


def top_line(pitch: np.ndarray, onset: np.ndarray, end: np.ndarray, among: np.ndarray | None = None) -> np.ndarray:
    """The highest sounding line: a note is on it when no other note sounding as it starts (struck
    at or before its onset, not yet released) is higher; per-note 0/1. With `among` (0/1 per note)
    only those notes are weighed and only they can be on the line.

    In part music the tune is the top voice, and this is that voice: the skyline also takes every
    inner-voice note struck under a held tune note, this does not."""
    pitch, onset, end = (np.asarray(x, dtype=np.int64) for x in (pitch, onset, end))
    line = np.zeros(len(pitch), dtype=np.int64)
    idx = np.flatnonzero(np.ones(len(pitch), dtype=bool) if among is None else np.asarray(among, dtype=bool))
    if not len(idx):
        return line
    idx = idx[np.argsort(onset[idx], kind="stable")]
    end = np.maximum(end, onset + 1)  # a note of no length still sounds as it starts
    sounding: list[tuple[int, int]] = []  # (-pitch, end) heap; released notes leave it once on top
    starts = np.flatnonzero(np.r_[True, onset[idx][1:] != onset[idx][:-1]])
    for a, b in zip(starts, np.r_[starts[1:], len(idx)]):
        now = idx[a:b]
        for i in now:
            heapq.heappush(sounding, (-int(pitch[i]), int(end[i])))
        while sounding[0][1] <= onset[now[0]]:
            heapq.heappop(sounding)
        line[now] = pitch[now] >= -sounding[0][0]
    return line


def top_line_tokens(tokenizer, ids: np.ndarray) -> np.ndarray:
    """The top-line rule's answer per token, from the tokens alone: 1 on a note of the top line,
    0 on other notes and on tokens that stand for no note."""
    onset, end, pitch = tokenizer.note_times(ids)
    note = onset >= 0
    out = np.zeros(len(onset), dtype=np.float32)
    out[note] = top_line(pitch[note], onset[note], end[note])
    return out


# Per-token numbers a token head may read beside the encoding (task.note_features): a rule's
# answer, which the head can follow where the music is of the rule's kind (part music's tune is
# its top line) and overrule where it is not.
NOTE_FEATURES = {"top_line": top_line_tokens}


def note_features(tokenizer, ids: np.ndarray, names: list[str]) -> np.ndarray:
    """(T, len(names)) float32: the named NOTE_FEATURES of a piece's tokens."""
    unknown = [n for n in names if n not in NOTE_FEATURES]
    if unknown:
        raise ValueError(f"unknown note features {unknown}; choose from {sorted(NOTE_FEATURES)}")
    return np.stack([NOTE_FEATURES[n](tokenizer, ids) for n in names], axis=1)


def skyline_classes(pitch: np.ndarray, onset: np.ndarray, n_classes: int) -> np.ndarray:
    """The skyline rule in a melody task's classes: class 0 (melody) for the top notes, the last
    class (accompaniment) for the rest."""
    return np.where(skyline_melody(pitch, onset) == 1, 0, n_classes - 1)


def note_statistics(notes: Notes, resolution: int, *, velocity: bool) -> np.ndarray:
    """A piece as a row of summary statistics of its tokenized notes, timed in quarter notes:
    notes and onsets per quarter, notes per onset, pitch centre and spread, durations, the
    pitch-class profile rotated to start at its most used class (a transposition leaves it as it
    is), and velocity only where the tokens carry it (`velocity`), so the baseline reads no more
    than the networks it is compared with."""
    keep = np.asarray(notes.tokenized, dtype=bool)
    pitch, onset = notes.pitch[keep].astype(float), notes.onset[keep] / resolution
    duration = notes.duration[keep] / resolution
    span = max(float((onset + duration).max() - onset.min()), 1 / resolution)
    onsets = len(np.unique(onset))
    profile = np.bincount(pitch.astype(int) % 12, minlength=12) / pitch.size
    row = [
        pitch.size / span,
        onsets / span,
        pitch.size / onsets,
        pitch.mean(),
        pitch.std(),
        np.percentile(pitch, 90) - np.percentile(pitch, 10),
        duration.mean(),
        np.median(duration),
        *np.roll(profile, -int(profile.argmax())),
    ]
    if velocity:
        v = notes.velocity[keep].astype(float)
        row += [v.mean(), v.std()]
    return np.asarray(row, dtype=float)


def statistics_matrix(encodings, tokens) -> np.ndarray:
    """note_statistics of each Encoding, one row a piece, as tokenizer config `tokens` reads
    them: what the note-statistics baseline (and task.piece_features) reads."""
    return np.stack([note_statistics(e.notes, tokens.resolution, velocity=tokens.performance) for e in encodings])


def statistics_classifier(C: float = 1.0):
    """The note-statistics baseline's model, to fit on a train split's statistics_matrix:
    standardized statistics, then a logistic regression."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=5000))
