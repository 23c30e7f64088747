"""VGMIDI (labelled part): 204 video-game piano phrases with binary valence and arousal."""

from __future__ import annotations

from pathlib import Path

from midibert.datasets.base import DatasetInfo, Piece, assign_splits, read_csv, register
from midibert.datasets.emopia import QUADRANTS

# (valence, arousal) -> EMOPIA quadrant, so VGMIDI can extend or test the emotion task
QUADRANT = {(1, 1): "Q1", (-1, 1): "Q2", (-1, -1): "Q3", (1, -1): "Q4"}


def read(root: Path, *, seed: int = 0) -> list[Piece]:
    """Rows of vgmidi_labelled.csv, emotion quadrant from valence/arousal, split by game."""
    pieces = []
    for row in read_csv(root / "vgmidi_labelled.csv"):
        va = (int(row["valence"]), int(row["arousal"]))
        path = root / row["midi"]
        pieces.append(
            Piece(
                id=Path(row["midi"]).stem,
                path=path,
                group=row["game"],
                kind="score",
                labels={"emotion": QUADRANT[va], "valence": va[0], "arousal": va[1]},
            )
        )
    return assign_splits(pieces, seed)


INFO = register(
    DatasetInfo(name="vgmidi", folder="vgmidi", read=read, kind="score", label_key="emotion", classes=QUADRANTS)
)
