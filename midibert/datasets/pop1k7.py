"""AILabs.tw Pop1K7: 1,748 transcribed pop-piano covers, unlabelled (pre-training)."""

from __future__ import annotations

from pathlib import Path

from midibert.datasets.base import DatasetInfo, Piece, assign_splits, midi_files, register


def read(root: Path, *, seed: int = 0) -> list[Piece]:
    """Every file of midi_transcribed/ (the stage MidiBERT-Piano used), seeded split."""
    base = root / "midi_transcribed"
    pieces = [
        Piece(id=p.relative_to(base).as_posix(), path=p, kind="performance", group=p.relative_to(base).as_posix())
        for p in midi_files(base)
    ]
    return assign_splits(pieces, seed)


INFO = register(DatasetInfo(name="pop1k7", folder="pop1k7", read=read, kind="performance"))
