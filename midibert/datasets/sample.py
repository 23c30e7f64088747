"""The synthetic corpus `midibert.synthetic.generate_corpus` writes: every task labelled, no download.

Tracks are named MELODY / BRIDGE / PIANO as in POP909, so per-note labels come from the MIDI;
`labels.csv` gives each piece its style, emotion quadrant and split.
"""

from __future__ import annotations

from pathlib import Path

from midibert.datasets.base import DatasetInfo, Piece, read_csv, register
from midibert.synthetic import STYLES, generate_corpus


def read(root: Path, *, seed: int = 0, n_pieces: int = 200) -> list[Piece]:
    """Rows of labels.csv (the corpus is generated first if `root` has none, or one of another
    size; the generator makes a stratified split). 200 pieces give 20 per test split, enough for
    piece-level accuracies to mean something."""
    rows = read_csv(root / "labels.csv") if (root / "labels.csv").is_file() else []
    if len(rows) != n_pieces:
        generate_corpus(root, n_pieces=n_pieces, seed=seed)
        rows = read_csv(root / "labels.csv")
    return [
        Piece(
            id=row["id"],
            path=root / row["path"],
            group=row["id"],
            kind="score",
            split=row["split"],
            labels={"style": row["style"], "emotion": row["emotion"]},
        )
        for row in rows
    ]


INFO = register(
    DatasetInfo(
        name="sample",
        folder="sample",
        read=read,
        kind="score",
        label_key="style",
        classes=tuple(STYLES),
        note_labels=True,
        generated=True,
    )
)
