"""Dataset readers (one module each), split helpers, download and cached preparation.

    from midibert.datasets import read
    pieces = read("pop909")              # Piece(id, path, labels, group, kind, split), 865 songs
    [p for p in pieces if p.split == "test"]

No torch here: `midibert data ...` must start fast. Batches come from midibert.training.datamodule.
"""

from midibert.datasets import (  # noqa: F401  (register)
    asap,
    emopia,
    folder,
    giantmidi,
    madrigals,
    pianist8,
    pop1k7,
    pop909,
    sample,
    vgmidi,
)
from midibert.datasets.base import REGISTRY, SPLITS, DatasetInfo, Piece, assign_splits, data_root, get_info, read

__all__ = ["Piece", "DatasetInfo", "REGISTRY", "SPLITS", "read", "get_info", "data_root", "assign_splits"]
