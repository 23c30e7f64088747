"""Pianist8: 411 transcribed performances by 8 composer-pianists (the style task)."""

from __future__ import annotations

from pathlib import Path

from midibert.datasets.base import SPLITS, DatasetInfo, Piece, midi_files, published_split, register

COMPOSERS = ("Bethel", "Clayderman", "Einaudi", "Hancock", "Hillsong", "Hisaishi", "Ryuichi", "Yiruma")


def read(root: Path, *, seed: int = 0) -> list[Piece]:
    """All 411 files, composer from the folder, with MidiBERT-Piano's 337 / 37 / 37 split."""
    split_of = {rel: s for s in SPLITS for rel in published_split(root, "pianist8", s)}
    base = root / "midi"
    pieces = []
    for path in midi_files(base):
        rel = path.relative_to(base).as_posix()
        pieces.append(
            Piece(
                id=rel,
                path=path,
                labels={"composer": rel.split("/")[0]},
                group=rel,
                kind="performance",
                split=split_of.get(rel),
            )
        )
    return pieces


INFO = register(
    DatasetInfo(
        name="pianist8", folder="pianist8", read=read, kind="performance", label_key="composer", classes=COMPOSERS
    )
)
