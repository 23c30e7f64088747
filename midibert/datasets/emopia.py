"""EMOPIA: 1,087 pop-piano clips from 387 songs labelled with an emotion quadrant (Q1-Q4).

Clips of one song share its YouTube id, so the default split keeps songs whole (seeded);
splitting by clip would leak a song's other clips into evaluation. `holdout` keeps a fixed share
of the songs (chosen by a hash of the song's id, the same for every split seed) out of all three
splits, as split "holdout": an evaluation no training, validation or model selection has seen.
`refit` is the model made after the seeded splits measured the recipe: every song outside the
held-out share trains it (a tenth of them validating early stopping) and the held-out songs are
its test split.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from pathlib import Path

from midibert.datasets.base import SPLITS, DatasetInfo, Piece, assign_splits, read_csv, register

QUADRANTS = ("Q1", "Q2", "Q3", "Q4")
# Q{quadrant}_{youtube id}_{clip}.mid; YouTube ids may themselves contain "_" and "-".
CLIP_NAME = re.compile(r"^(Q[1-4])_(.+)_(\d+)$")


HOLDOUT = "holdout"
REFIT_FRACTIONS = (0.9, 0.1, 0.0)  # no test share: the held-out songs are the test


def held_out(song: str, share: float) -> bool:
    """Whether `song` is in the held-out share of songs: fixed by its id alone."""
    return int.from_bytes(hashlib.sha256(song.encode()).digest()[:8], "big") / 2**64 < share


def read(root: Path, *, seed: int = 0, holdout: float = 0.0, refit: bool = False) -> list[Piece]:
    """The clips under midis/, quadrant from label.csv (else the file name), split by song;
    songs in the `holdout` share are split "holdout", in no training split; with `refit`, they are
    the test split and every other song is for training or validation."""
    if not 0 <= holdout < 1:
        raise ValueError(f"emopia: holdout is a share of the songs in [0, 1), got {holdout}")
    if refit and not holdout:
        raise ValueError("emopia: refit tests on the held-out songs; give holdout a share of them too")
    csv_label = {}
    if (root / "label.csv").is_file():
        csv_label = {r["ID"]: f"Q{r['4Q']}" for r in read_csv(root / "label.csv") if r.get("ID") and r.get("4Q")}
    pieces = []
    for path in sorted((root / "midis").glob("*.mid")):
        m = CLIP_NAME.match(path.stem)
        if not m:
            continue  # not a clip (stray file); the listing stays reproducible either way
        quadrant, song, _ = m.groups()
        pieces.append(
            Piece(
                id=path.stem,
                path=path,
                labels={"emotion": csv_label.get(path.stem, quadrant)},
                group=song,
                kind="performance",
            )
        )
    kept = SPLITS[2] if refit else HOLDOUT
    pieces = [replace(p, split=kept) if held_out(p.group, holdout) else p for p in pieces]
    return assign_splits(pieces, seed, REFIT_FRACTIONS) if refit else assign_splits(pieces, seed)


INFO = register(
    DatasetInfo(name="emopia", folder="emopia", read=read, kind="performance", label_key="emotion", classes=QUADRANTS)
)
