"""ASAP: 235 classical scores (`midi_score.mid`) and 1,067 aligned performances of them.

A piece is the folder holding `midi_score.mid`; its performances share the folder, so splits
are made by folder and never put a score and a performance of one piece on both sides.
"""

from __future__ import annotations

from pathlib import Path

from midibert.datasets.base import DatasetInfo, Piece, assign_splits, midi_files, published_split, register

SCORE_FILE = "midi_score.mid"
WHICH = ("all", "scores", "performances", "pretrain")


def read(root: Path, *, seed: int = 0, which: str = "all") -> list[Piece]:
    """Scores and/or performances, composer from the top folder, split by piece folder.

    which="pretrain": only the 65 scores MidiBERT-Piano pre-trained on.
    """
    if which not in WHICH:
        raise ValueError(f"asap: which must be one of {WHICH}, got {which!r}")
    pretrain = set(published_split(root, "asap", "pretrain_scores")) if which == "pretrain" else None
    pieces = []
    for path in midi_files(root):
        rel = path.relative_to(root).as_posix()
        is_score = path.name == SCORE_FILE
        if (
            (which in ("scores", "pretrain") and not is_score)
            or (which == "performances" and is_score)
            or (pretrain is not None and rel not in pretrain)
        ):
            continue
        pieces.append(
            Piece(
                id=rel,
                path=path,
                labels={"composer": rel.split("/")[0]},
                group=path.parent.relative_to(root).as_posix(),
                kind="score" if is_score else "performance",
            )
        )
    return assign_splits(pieces, seed)


def pairs(pieces: list[Piece]) -> list[tuple[Piece, Piece]]:
    """(score, performance) pairs: every performance with the score of its folder."""
    scores = {p.group: p for p in pieces if p.kind == "score"}
    return [(scores[p.group], p) for p in pieces if p.kind == "performance" and p.group in scores]


INFO = register(DatasetInfo(name="asap", folder="asap", read=read, kind="performance", label_key="composer"))
