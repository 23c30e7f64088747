"""Tokenizer settings: one dataclass, serialised into tokenizer.json and hashed for caches."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields

REPRESENTATIONS = ("cp", "remi")
KINDS = ("score", "performance")

# Grid steps per quarter note. Scores sit on sixteenths; performances get a finer grid that also
# holds triplets (12 = 48th notes), so expressive timing is not all rounded onto 16ths.
DEFAULT_RESOLUTION = {"score": 4, "performance": 12}


@dataclass
class TokenizerConfig:
    """What a tokenizer encodes and how finely. Every field is written to tokenizer.json."""

    representation: str = "cp"
    kind: str = "score"
    resolution: int = 0  # grid steps per quarter note; 0 = the kind's default
    pitch_range: tuple[int, int] = (21, 108)  # the 88 piano keys, inclusive
    out_of_range: str = "clamp"  # "clamp" or "drop" pitches outside pitch_range
    max_bar_quarters: int = 8  # longest bar the Position family can index
    max_duration_quarters: int = 8  # longer notes are clamped (and counted)
    velocity_step: int = 2  # journal paper: 0-128 in steps of 2
    velocity_max: int = 128
    tempo_min: int = 32  # journal paper: 32-224 BPM in steps of 3
    tempo_max: int = 224
    tempo_step: int = 3
    default_velocity: int = 80  # written by decode when the tokens carry no velocity
    # a silence longer than this many empty bars keeps only its last ones (decoding shortens it):
    # a few notes hours apart must not make millions of bar tokens
    max_empty_bars: int = 16
    extra: dict = field(default_factory=dict)  # free-form notes kept with the config

    def __post_init__(self) -> None:
        if self.representation not in REPRESENTATIONS:
            raise ValueError(f"representation must be one of {REPRESENTATIONS}, got {self.representation!r}")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if self.out_of_range not in ("clamp", "drop"):
            raise ValueError(f"out_of_range must be 'clamp' or 'drop', got {self.out_of_range!r}")
        if not self.resolution:
            self.resolution = DEFAULT_RESOLUTION[self.kind]
        self.pitch_range = tuple(int(p) for p in self.pitch_range)
        lo, hi = self.pitch_range
        if not 0 <= lo <= hi <= 127:
            raise ValueError(f"pitch_range must lie within 0..127, got {self.pitch_range}")
        if self.resolution < 1 or self.max_bar_quarters < 1 or self.max_duration_quarters < 1:
            raise ValueError("resolution, max_bar_quarters and max_duration_quarters must be >= 1")
        if self.max_empty_bars < 0:
            raise ValueError(f"max_empty_bars must be >= 0, got {self.max_empty_bars}")

    @property
    def performance(self) -> bool:
        return self.kind == "performance"

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TokenizerConfig:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown tokenizer config keys: {sorted(unknown)}")
        return cls(**d)

    def hash(self) -> str:
        """Stable short hash of the settings, so caches made with other settings are never reused."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]
