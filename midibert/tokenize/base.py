"""The Tokenizer contract shared by CP and REMI: vocabulary, value bins, save / load.

Every family's vocabulary starts with the same special tokens, so PAD is 0 and MASK is 1
everywhere and model code never needs to ask which representation it is looking at. This module
is their one home (and `labels.IGNORE` that of the label no loss counts).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import symusic

from midibert.errors import MidiError
from midibert.fsutil import write_atomic
from midibert.tokenize.config import TokenizerConfig
from midibert.tokenize.notes import MidiSource, Notes, bar_steps, describe, extract, supported_meters

SPECIALS = ("PAD", "MASK", "NONE")  # NONE fills a CP family that a token has no value for
PAD, MASK, NONE = 0, 1, 2
FORMAT_VERSION = 1
TOKENIZER_FILE = "tokenizer.json"
# Longest piece encode accepts by default: 30x the longest of the 5,779 files in ../shared/data
# (a Liszt sonata performance in ASAP, 17,080 notes, 61,830 REMI-performance tokens), yet far
# below what exhausts memory (a few bytes of arrays per token).
MAX_TOKENS = 2_000_000


@dataclass
class Encoding:
    """Tokens of one piece, each tied to the note it stands for.

    ids: (T, F) for CP, (T,) for REMI. note_index: (T,) index into `notes`, -1 for tokens that
    stand for no note (bars, positions, tempo ...). bar_start: (T,) True where a bar begins.
    """

    ids: np.ndarray
    note_index: np.ndarray
    notes: Notes
    bar_start: np.ndarray
    stats: dict
    source: str = ""

    def __len__(self) -> int:
        return len(self.ids)


class Tokenizer:
    """Base of the CP and REMI tokenizers. Build one with `Tokenizer.create` or `Tokenizer.load`."""

    representation: str = ""
    _registry: dict[str, type[Tokenizer]] = {}

    def __init_subclass__(cls, **kw):
        super().__init_subclass__(**kw)
        Tokenizer._registry[cls.representation] = cls

    def __init__(self, config: TokenizerConfig):
        self.config = config
        self.meters = supported_meters(config)
        self._meter_index = {m: i for i, m in enumerate(self.meters)}

    # ---- construction -------------------------------------------------------------------
    @staticmethod
    def create(representation: str = "cp", kind: str = "score", **overrides) -> Tokenizer:
        """A tokenizer for `representation` ("cp" | "remi") and `kind` ("score" | "performance")."""
        cfg = TokenizerConfig(representation=representation, kind=kind, **overrides)
        return Tokenizer._registry[cfg.representation](cfg)

    @staticmethod
    def from_spec(spec: str, **overrides) -> Tokenizer:
        """`Tokenizer.from_spec("cp-score")` == `Tokenizer.create("cp", kind="score")`."""
        rep, _, kind = spec.partition("-")
        if not kind:
            raise ValueError(f"tokenizer spec must look like 'cp-score' or 'remi-performance', got {spec!r}")
        return Tokenizer.create(rep, kind=kind, **overrides)

    @staticmethod
    def from_dict(d: dict) -> Tokenizer:
        """The tokenizer a `to_dict` describes; refuses a newer format or a vocabulary that does not
        match its config."""
        version = d.get("format_version", 0)
        if version > FORMAT_VERSION:
            raise ValueError(
                f"tokenizer format version {version} is newer than this midibert "
                f"understands ({FORMAT_VERSION}); upgrade midibert"
            )
        tok = Tokenizer.create(**TokenizerConfig.from_dict(d["config"]).to_dict())
        if "vocab" in d and d["vocab"] != tok.vocab:
            raise ValueError(
                "tokenizer vocabulary does not match its config (edited by hand, or "
                "written by an incompatible midibert)"
            )
        return tok

    def to_dict(self) -> dict:
        """Config, vocabulary and format version: what tokenizer.json holds."""
        return {"format_version": FORMAT_VERSION, "config": self.config.to_dict(), "vocab": self.vocab}

    def save(self, directory: str | os.PathLike) -> Path:
        """Write `tokenizer.json` (config, vocabulary, format version) into `directory`."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        return write_atomic(directory / TOKENIZER_FILE, json.dumps(self.to_dict(), indent=1))

    @staticmethod
    def load(path: str | os.PathLike) -> Tokenizer:
        """Load from a directory holding tokenizer.json, or from the JSON file itself."""
        path = Path(path)
        if path.is_dir():
            path = path / TOKENIZER_FILE
        with open(path) as f:
            return Tokenizer.from_dict(json.load(f))

    # ---- vocabulary ---------------------------------------------------------------------
    @property
    def spec(self) -> str:
        """ "cp-score", "remi-performance", ...: what `from_spec` takes."""
        return f"{self.config.representation}-{self.config.kind}"

    def config_hash(self) -> str:
        """A short hash of the settings: caches made with other settings are never reused."""
        return self.config.hash()

    @property
    def vocab(self) -> dict[str, list[str]]:
        """Token names per family (CP) or under the single key "Token" (REMI)."""
        raise NotImplementedError

    @property
    def families(self) -> list[str]:
        """The token families, in id order (CP: Bar, Position, Pitch, Duration, ...; REMI: Token)."""
        return list(self.vocab)

    @property
    def vocab_sizes(self) -> list[int]:
        """Size of each family's vocabulary, specials included."""
        return [len(v) for v in self.vocab.values()]

    def value_names(self) -> dict[str, list[str]]:
        """Names of the non-special values of each musical family, in id order."""
        c = self.config
        res, lo, hi = c.resolution, *c.pitch_range
        names = {
            "Position": [f"Position_{p}" for p in range(c.max_bar_quarters * res)],
            "Pitch": [f"Pitch_{p}" for p in range(lo, hi + 1)],
            "Duration": [f"Duration_{d}" for d in range(1, c.max_duration_quarters * res + 1)],
        }
        if c.performance:
            names["Velocity"] = [f"Velocity_{v}" for v in range(0, c.velocity_max + 1, c.velocity_step)]
            names["Tempo"] = [f"Tempo_{t}" for t in range(c.tempo_min, c.tempo_max + 1, c.tempo_step)]
        return names

    def pitch_ids(self) -> tuple[int | None, int, int, int]:
        """Where pitches are in the ids: (family column, or None for a single stream; id of the
        lowest pitch; number of pitches; MIDI pitch of the lowest), consecutive ids a semitone apart."""
        raise NotImplementedError

    # ---- value bins (shared by CP and REMI, so both carry the same information) ---------
    def velocity_bin(self, velocity: np.ndarray) -> np.ndarray:
        """The Velocity value index of MIDI velocities."""
        c = self.config
        return np.clip(np.rint(velocity / c.velocity_step), 0, c.velocity_max // c.velocity_step).astype(np.int64)

    def tempo_bin(self, bpm: np.ndarray) -> np.ndarray:
        """The Tempo value index of tempos in BPM (clamped to the vocabulary's range)."""
        c = self.config
        top = (c.tempo_max - c.tempo_min) // c.tempo_step
        return np.clip(np.rint((bpm - c.tempo_min) / c.tempo_step), 0, top).astype(np.int64)

    def velocity_value(self, b: int) -> int:
        """The MIDI velocity a Velocity value index decodes to (1..127)."""
        return int(min(127, max(1, b * self.config.velocity_step)))  # velocity 0 would be a note-off

    def tempo_value(self, b: int) -> float:
        """The tempo in BPM a Tempo value index decodes to."""
        return float(self.config.tempo_min + b * self.config.tempo_step)

    # ---- encode / decode ----------------------------------------------------------------
    # Most tokens a bar and a note can make (CP: one each; REMI: more), for the length check.
    token_cost: tuple[int, int] = (1, 1)

    def encode(self, src: MidiSource, max_tokens: int | None = MAX_TOKENS) -> Encoding:
        """Tokenize a MIDI source; raises midibert.MidiError naming the source on bad input,
        including a piece that would make more than `max_tokens` tokens (None: no limit).

        Every id returned lies in its family's vocabulary."""
        notes, grid, tempo, stats = extract(src, self.config, max_tokens, self.token_cost)
        sel = np.flatnonzero(notes.tokenized)
        bar = np.searchsorted(grid.bar_starts, notes.onset[sel], side="right") - 1
        meter = np.array([self._meter_index.get(m, self._meter_index[(4, 4)]) for m in grid.bar_meters])
        meter_changed = np.ones(len(meter), dtype=bool)
        meter_changed[1:] = meter[1:] != meter[:-1]
        lo = self.config.pitch_range[0]
        fields = {
            "bar": bar,
            "position": notes.onset[sel] - grid.bar_starts[bar],
            "pitch": np.clip(notes.pitch[sel], *self.config.pitch_range) - lo,
            "duration": notes.duration[sel] - 1,
            "velocity": self.velocity_bin(notes.velocity[sel]),
            "tempo": self.tempo_bin(tempo[sel]),
        }
        ids, note_index = self._encode(sel, fields, grid.bar_starts, meter, meter_changed)
        self._check_vocabulary(ids, describe(src))
        src_name = str(src) if isinstance(src, (str, os.PathLike)) else ""
        return Encoding(
            ids=ids, note_index=note_index, notes=notes, bar_start=self.is_bar_start(ids), stats=stats, source=src_name
        )

    def _check_vocabulary(self, ids: np.ndarray, name: str) -> None:
        """Raise rather than hand on an id outside its family's vocabulary (it would poison a cache
        or index past an embedding); no valid input makes one, so the file is named as the cause."""
        sizes = np.asarray(self.vocab_sizes)
        bad = (ids < 0) | (ids >= sizes)
        if bad.any():
            row, *col = np.argwhere(bad)[0]
            family = self.families[col[0] if col else 0]
            raise MidiError(
                f"{name}: token {row} gets {family} id {ids[(row, *col)]}, outside 0..{sizes[col[0] if col else 0] - 1}; "
                f"the file holds values the tokenizer cannot represent"
            )

    def _encode(self, sel, fields, bar_starts, meter, meter_changed):
        """(ids, note_index): lay out the tokens; `fields` hold 0-based values per tokenized note,
        in onset order."""
        raise NotImplementedError

    def is_bar_start(self, ids: np.ndarray) -> np.ndarray:
        """(T,) True for the tokens that open a bar: the one rule behind `Encoding.bar_start`, the
        cached `bar_start` arrays and the batches' `bar_start` (bar masking, bar-aligned windows)."""
        raise NotImplementedError

    def note_times(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(onset, end, pitch) per token of the note it stands for, -1 elsewhere (CP tokens)."""
        raise ValueError(f"{self.spec} tokens do not place a note in one token; note features need CP tokens")

    def decode(self, ids: np.ndarray) -> symusic.Score:
        """Tokens back to a one-track piano Score (write it with `.dump_midi(path)`)."""
        raise NotImplementedError

    def names(self, ids: np.ndarray) -> list[list[str]]:
        """Token names, one list per token (the families of a compound token, or one name)."""
        ids = np.asarray(ids)
        vocab = list(self.vocab.values())
        rows = ids.reshape(len(ids), -1)
        return [[vocab[f][int(i)] for f, i in enumerate(row)] for row in rows]

    # ---- decode helpers -----------------------------------------------------------------
    def _score(
        self,
        notes: list[tuple[int, int, int, int]],
        meters: list[tuple[int, int, int]],
        tempos: list[tuple[int, float]],
    ) -> symusic.Score:
        """Build a Score from (onset, duration, pitch, velocity) in grid steps, meter and tempo events."""
        res = self.config.resolution
        per_step = max(1, 480 // res)
        score = symusic.Score(res * per_step)
        for t, num, den in meters:
            score.time_signatures.append(symusic.TimeSignature(t * per_step, num, den))
        for t, bpm in tempos:
            score.tempos.append(symusic.Tempo(t * per_step, bpm))
        track = symusic.Track("Piano", 0, False)
        if notes:
            a = np.asarray(notes, dtype=np.int64)
            track.notes = symusic.Note.from_numpy(
                time=(a[:, 0] * per_step).astype(np.int32),
                duration=(a[:, 1] * per_step).astype(np.int32),
                pitch=a[:, 2].astype(np.int8),
                velocity=a[:, 3].astype(np.int8),
            )
        score.tracks.append(track)
        return score

    def _bar_length(self, meter: tuple[int, int]) -> int:
        return bar_steps(meter, self.config.resolution)
