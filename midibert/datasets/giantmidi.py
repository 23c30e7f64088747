"""GiantMIDI-Piano evaluation subset: 52 classical pieces, each as transcription, Disklavier
performance and sequenced score; a tiny composer check (11 composers)."""

from __future__ import annotations

from pathlib import Path

from midibert.datasets.base import DatasetInfo, Piece, assign_splits, read_csv, register

TABLE = "midis_for_evaluation/groundtruth_maestro_giantmidi-piano.csv"
# version -> (csv column, folder, kind)
VERSIONS = {
    "giantmidi-piano": ("GiantMIDI-Piano", "giantmidi-piano", "performance"),
    "maestro": ("Maestro", "maestro", "performance"),
    "ground_truth": ("GroundTruth", "ground_truth", "score"),
}


def read(root: Path, *, seed: int = 0, versions: tuple[str, ...] = ("giantmidi-piano",)) -> list[Piece]:
    """The chosen versions of each piece; composer = prefix of the GiantMIDI-Piano file name.

    All versions of a piece share its group, so they always land in the same split.
    """
    pieces = []
    for row in read_csv(root / TABLE, delimiter="\t"):
        composer = row["GiantMIDI-Piano"].split("_")[0]
        for v in versions:
            column, folder, kind = VERSIONS[v]
            path = root / "midis_for_evaluation" / folder / row[column]
            pieces.append(
                Piece(
                    id=f"{folder}/{row[column]}", path=path, labels={"composer": composer}, group=row["Name"], kind=kind
                )
            )
    return assign_splits(pieces, seed)


INFO = register(
    DatasetInfo(name="giantmidi", folder="giantmidi_piano_eval", read=read, kind="performance", label_key="composer")
)
