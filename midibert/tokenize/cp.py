"""Compound-word (CP) tokens: one token per note, its attributes side by side in families.

Families: Bar, Position, Pitch, Duration (+ Velocity, Tempo for performances). The Bar family
says whether a note opens a new bar ("Bar_New", or "Bar_New_3/4" where the meter changes) or
continues the current one. A bar without notes still gets a token (Bar_New, other families
NONE), so decoding puts every later note back at its onset.
"""

from __future__ import annotations

import numpy as np
import symusic

from midibert.tokenize.base import MASK, NONE, PAD, SPECIALS, Tokenizer

N_SPECIAL = len(SPECIALS)
BAR_CONTINUE, BAR_NEW = N_SPECIAL, N_SPECIAL + 1  # Bar_New_{meter} follow from N_SPECIAL + 2


class CPTokenizer(Tokenizer):
    representation = "cp"

    @property
    def vocab(self) -> dict[str, list[str]]:
        bar = ["Bar_Continue", "Bar_New"] + [f"Bar_New_{n}/{d}" for n, d in self.meters]
        return {"Bar": [*SPECIALS, *bar], **{f: [*SPECIALS, *v] for f, v in self.value_names().items()}}

    def pitch_ids(self) -> tuple[int | None, int, int, int]:
        return self.families.index("Pitch"), N_SPECIAL, len(self.value_names()["Pitch"]), self.config.pitch_range[0]

    def is_bar_start(self, ids: np.ndarray) -> np.ndarray:
        """Bar family Bar_New or Bar_New_{meter}; ids is (T, F)."""
        return np.asarray(ids)[:, 0] >= BAR_NEW

    def _encode(self, sel, fields, bar_starts, meter, meter_changed):
        bar = fields["bar"]
        has_note = np.zeros(len(bar_starts), dtype=bool)
        has_note[bar] = True
        empty = np.flatnonzero(~has_note)
        # Notes come in onset order, so a stable sort on the bar slots the empty bars in.
        tok_bar = np.concatenate([bar, empty])
        order = np.argsort(tok_bar, kind="stable")
        tok_bar = tok_bar[order]
        is_note = order < len(sel)
        note_row = np.where(is_note, order, 0)

        first = np.ones(len(tok_bar), dtype=bool)
        first[1:] = tok_bar[1:] != tok_bar[:-1]
        bar_ids = np.where(first, np.where(meter_changed[tok_bar], BAR_NEW + 1 + meter[tok_bar], BAR_NEW), BAR_CONTINUE)
        columns = [bar_ids]
        families = ["position", "pitch", "duration"] + (["velocity", "tempo"] if self.config.performance else [])
        for name in families:
            columns.append(np.where(is_note, fields[name][note_row] + N_SPECIAL, NONE))
        ids = np.stack(columns, axis=1).astype(np.int64)
        note_index = np.where(is_note, sel[note_row], -1).astype(np.int64)
        return ids, note_index

    def note_times(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(onset, end, pitch) of the note each token stands for, in grid steps and MIDI pitch,
        where `decode` puts it; -1 on tokens that stand for no note. Read from the tokens alone, so
        training windows and a user's file give a head the same numbers."""
        ids = np.asarray(ids, dtype=np.int64)
        bar = ids[:, 0]
        new = bar >= BAR_NEW
        # each bar's meter: its own Bar_New_{meter}, else the last one before it, else 4/4
        changed = bar[new] - BAR_NEW - 1
        last = np.maximum.accumulate(np.where(changed >= 0, np.arange(len(changed)), -1)) if len(changed) else changed
        meter = np.where(last >= 0, changed[np.maximum(last, 0)], self._meter_index[(4, 4)])
        lengths = np.array([self._bar_length(m) for m in self.meters])[meter]
        bar_start = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        bar_no = np.cumsum(new) - 1
        note = (bar >= N_SPECIAL) & (bar_no >= 0) & (ids[:, 1:] >= N_SPECIAL).all(1)
        onset = np.where(note, bar_start[np.maximum(bar_no, 0)] + ids[:, 1] - N_SPECIAL, -1)
        end = np.where(note, onset + ids[:, 3] - N_SPECIAL + 1, -1)
        pitch = np.where(note, ids[:, 2] - N_SPECIAL + self.config.pitch_range[0], -1)
        return onset, end, pitch

    def decode(self, ids: np.ndarray) -> symusic.Score:
        ids = np.asarray(ids, dtype=np.int64)
        if ids.ndim != 2 or ids.shape[1] != len(self.vocab):
            raise ValueError(f"CP ids must have shape (T, {len(self.vocab)}), got {ids.shape}")
        perf = self.config.performance
        lo = self.config.pitch_range[0]
        meter, bar_start, next_bar = (4, 4), 0, 0
        notes, meters, tempos = [], [], []
        for row in ids:
            b = int(row[0])
            if b in (PAD, MASK, NONE):
                continue
            if b >= BAR_NEW:
                if b > BAR_NEW:
                    meter = self.meters[b - BAR_NEW - 1]
                    meters.append((next_bar, *meter))
                bar_start, next_bar = next_bar, next_bar + self._bar_length(meter)
            if (row[1:] < N_SPECIAL).any():  # an empty bar, or a family masked out
                continue
            onset = bar_start + int(row[1]) - N_SPECIAL
            velocity = self.velocity_value(int(row[4]) - N_SPECIAL) if perf else self.config.default_velocity
            notes.append((onset, int(row[3]) - N_SPECIAL + 1, int(row[2]) - N_SPECIAL + lo, velocity))
            if perf:
                bpm = self.tempo_value(int(row[5]) - N_SPECIAL)
                if not tempos or tempos[-1][1] != bpm:
                    tempos.append((onset, bpm))
        return self._score(notes, meters, tempos)
