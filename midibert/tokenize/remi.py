"""REMI tokens: the same information as CP laid out as one flat sequence.

Per bar: Bar, then TimeSig_n/d where the meter changes; per onset: Position (and Tempo for
performances, where it changes); per note: Pitch, (Velocity,) Duration. The note tokens
(Pitch, Velocity, Duration) point at their note through `note_index`.
"""

from __future__ import annotations

import numpy as np
import symusic

from midibert.tokenize.base import SPECIALS, Tokenizer

BAR = len(SPECIALS)  # id of the Bar token, first after the specials


class REMITokenizer(Tokenizer):
    representation = "remi"
    token_cost = (2, 5)  # Bar, TimeSig; Position, Tempo, Pitch, Velocity, Duration

    def __init__(self, config):
        super().__init__(config)
        names = ["Bar"] + [f"TimeSig_{n}/{d}" for n, d in self.meters]
        self.offset: dict[str, int] = {"Bar": BAR, "TimeSig": BAR + 1}
        for family, values in self.value_names().items():
            self.offset[family] = len(SPECIALS) + len(names)
            names += values
        self._names = [*SPECIALS, *names]
        self._family_of = np.empty(len(self._names), dtype=object)
        for family, start in sorted(self.offset.items(), key=lambda kv: kv[1]):
            self._family_of[start:] = family
        self._family_of[: len(SPECIALS)] = None

    @property
    def vocab(self) -> dict[str, list[str]]:
        return {"Token": list(self._names)}

    def pitch_ids(self) -> tuple[int | None, int, int, int]:
        return None, self.offset["Pitch"], len(self.value_names()["Pitch"]), self.config.pitch_range[0]

    def is_bar_start(self, ids: np.ndarray) -> np.ndarray:
        """The Bar token; ids is (T,)."""
        return np.asarray(ids) == self.offset["Bar"]

    def _encode(self, sel, fields, bar_starts, meter, meter_changed):
        o = self.offset
        n_bars = len(bar_starts)
        changed = np.flatnonzero(meter_changed)
        # Tokens are (time, kind, sub) triples sorted lexicographically; bar tokens sort first
        # within their time because a bar line and a position-0 onset share the same time.
        onset_key = bar_starts[fields["bar"]] + fields["position"]
        group_first = np.ones(len(onset_key), dtype=bool)
        group_first[1:] = onset_key[1:] != onset_key[:-1]
        groups = np.flatnonzero(group_first)

        time = [bar_starts, bar_starts[changed], onset_key[groups]]
        kind = [np.zeros(n_bars), np.ones(len(changed)), np.full(len(groups), 2)]
        sub = [np.zeros(n_bars), np.zeros(len(changed)), np.zeros(len(groups))]
        value = [np.full(n_bars, o["Bar"]), o["TimeSig"] + meter[changed], o["Position"] + fields["position"][groups]]
        note = [np.full(n_bars, -1), np.full(len(changed), -1), np.full(len(groups), -1)]
        note_fields = [("Pitch", "pitch"), ("Duration", "duration")]
        if self.config.performance:
            tempo = fields["tempo"][groups]
            tempo_changed = np.ones(len(groups), dtype=bool)
            tempo_changed[1:] = tempo[1:] != tempo[:-1]
            time.append(onset_key[groups][tempo_changed])
            kind.append(np.full(int(tempo_changed.sum()), 3))
            sub.append(np.zeros(int(tempo_changed.sum())))
            value.append(o["Tempo"] + tempo[tempo_changed])
            note.append(np.full(int(tempo_changed.sum()), -1))
            note_fields.insert(1, ("Velocity", "velocity"))
        k = np.arange(len(sel))
        for j, (family, name) in enumerate(note_fields):
            time.append(onset_key)
            kind.append(np.full(len(sel), 4))
            sub.append(k * len(note_fields) + j)
            value.append(o[family] + fields[name])
            note.append(sel)
        time, kind, sub = np.concatenate(time), np.concatenate(kind), np.concatenate(sub)
        order = np.lexsort((sub, kind, time))
        ids = np.concatenate(value)[order].astype(np.int64)
        note_index = np.concatenate(note)[order].astype(np.int64)
        return ids, note_index

    def decode(self, ids: np.ndarray) -> symusic.Score:
        ids = np.asarray(ids, dtype=np.int64)
        if ids.ndim != 1:
            raise ValueError(f"REMI ids must have shape (T,), got {ids.shape}")
        o, lo = self.offset, self.config.pitch_range[0]
        meter, bar_start, next_bar = (4, 4), 0, 0
        pos, pitch, velocity = 0, None, self.config.default_velocity
        notes, meters, tempos = [], [], []
        for i in ids:
            family = self._family_of[i] if 0 <= i < len(self._names) else None
            if family is None:  # PAD / MASK / NONE / out of vocabulary: nothing to place
                continue
            v = int(i) - o[family]
            if family == "Bar":
                bar_start, next_bar = next_bar, next_bar + self._bar_length(meter)
                pos = 0
            elif family == "TimeSig":
                meter = self.meters[v]
                meters.append((bar_start, *meter))
                next_bar = bar_start + self._bar_length(meter)
            elif family == "Position":
                pos = v
            elif family == "Tempo":
                tempos.append((bar_start + pos, self.tempo_value(v)))
            elif family == "Pitch":
                pitch = v + lo
            elif family == "Velocity":
                velocity = self.velocity_value(v)
            elif family == "Duration" and pitch is not None:
                notes.append((bar_start + pos, v + 1, pitch, velocity))
                pitch = None
        return self._score(notes, meters, tempos)
