"""Any folder of MIDI files: labels from sub-folder names, or from a CSV with a `file` (or `path`)
column.

CSV columns other than the file become piece labels; optional `split` and `group` columns are
honoured, so a user's own published split is kept and pieces of one song stay together.
"""

from __future__ import annotations

from pathlib import Path

from midibert.datasets.base import SPLITS, DatasetInfo, Piece, assign_splits, midi_files, read_csv, register


def read(root: Path, *, seed: int = 0, labels_csv: str | None = None, kind: str = "performance") -> list[Piece]:
    """Every MIDI file under `root`; `label` = first sub-folder, unless `labels_csv` says otherwise."""
    if labels_csv:
        pieces = []
        for row in read_csv(root / labels_csv):
            column = "file" if "file" in row else "path"
            if column not in row:
                raise ValueError(f"{root / labels_csv}: no `file` column (columns: {', '.join(row)})")
            rel = row.pop(column)
            split = row.pop("split", None) or None
            if split is not None and split not in SPLITS:
                raise ValueError(f"{labels_csv}: split must be one of {SPLITS}, got {split!r} for {rel}")
            group = row.pop("group", "") or rel
            pieces.append(Piece(id=rel, path=root / rel, labels=row, group=group, kind=kind, split=split))
        return assign_splits(pieces, seed)
    pieces = []
    for path in midi_files(root):
        rel = path.relative_to(root).as_posix()
        labels = {"label": rel.split("/")[0]} if "/" in rel else {}
        pieces.append(Piece(id=rel, path=path, labels=labels, group=rel, kind=kind))
    if not pieces:
        raise ValueError(f"{root}: no .mid / .midi files in this folder or below it")
    return assign_splits(pieces, seed)


INFO = register(DatasetInfo(name="folder", folder=".", read=read, kind="performance", label_key="label"))
