"""What every dataset reader returns (`Piece`), where the data lives, how splits are made, and the registry.

Readers only list files and labels; they never parse MIDI, so listing a whole dataset is fast.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import numpy as np

SPLITS = ("train", "valid", "test")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
KINDS = ("score", "performance")


@dataclass(frozen=True)
class Piece:
    """One MIDI file with its piece-level labels.

    group: pieces sharing a group (song, piece folder, game) always land in the same split.
    kind: "score" (quantised, notated) or "performance" (expressive timing and velocity).
    reading: how the dataset's loader reads the file where it offers more than one reading
    (POP909: "beats", realigned to its beat annotations, or "raw", the file as it is); "" = its default.
    augment: augmentations applied to the file as read, a training copy's (`midibert.augment`).
    """

    id: str
    path: Path
    labels: dict = field(default_factory=dict)
    group: str = ""
    kind: str = "performance"
    split: str | None = None
    reading: str = ""
    augment: tuple[str, ...] = ()


@dataclass(frozen=True)
class DatasetInfo:
    """How to read one dataset and what it can be used for.

    label_key / classes: the piece-level label sequence tasks use (None for unlabelled data;
    classes None = the sorted label values found). note_labels: per-note melody / velocity labels
    come from the MIDI itself (POP909 track names).
    """

    name: str
    folder: str
    read: Callable[..., list[Piece]]
    kind: str
    label_key: str | None = None
    classes: tuple[str, ...] | None = None
    note_labels: bool = False
    load: Callable[[Piece, str], object] | None = None  # Piece, tokenizer kind -> MIDI source
    generated: bool = False  # the reader writes the data itself where it is absent (sample corpus)
    licence: str | None = None  # the terms of data the reader makes itself (others: datasets.json)
    # reader options that read the files as they are, where the default reading does not (POP909's
    # realignment to beat annotations): a model is also scored so, as a user's file is read
    raw_reading: dict | None = None


REGISTRY: dict[str, DatasetInfo] = {}


def register(info: DatasetInfo) -> DatasetInfo:
    """Add a dataset to the registry under `info.name`."""
    REGISTRY[info.name] = info
    return info


def get_info(name: str) -> DatasetInfo:
    """The registered dataset `name`, or a ValueError listing the known ones."""
    import midibert.datasets  # noqa: F401  (importing the package registers every reader)

    if name not in REGISTRY:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(REGISTRY))}")
    return REGISTRY[name]


def cache_root() -> Path:
    """Where prepared datasets and downloads go: $MIDIBERT_CACHE or ~/.cache/midibert."""
    return Path(os.environ.get("MIDIBERT_CACHE") or Path.home() / ".cache" / "midibert")


def data_root(path: str | os.PathLike | None = None) -> Path:
    """The folder holding one sub-folder per dataset.

    Order: `path`, $MIDIBERT_DATA, ../shared/data (relative to the working directory) if it
    exists, else the download folder under the cache root.
    """
    if path:
        return Path(path)
    if os.environ.get("MIDIBERT_DATA"):
        return Path(os.environ["MIDIBERT_DATA"])
    shared = Path.cwd().parent / "shared" / "data"
    return shared if shared.is_dir() else cache_root() / "data"


def dataset_dir(name: str, path: str | os.PathLike | None = None) -> Path:
    """The folder of dataset `name`: `path` itself when it holds the dataset, else `data_root()/folder`;
    for data the reader makes itself (`generated`) and that is not there, the cache root's
    `data/folder`: what a run writes never goes beside a dataset."""
    info = get_info(name)
    if path is not None:
        p = Path(path)
        return p / info.folder if (p / info.folder).is_dir() else p
    found = data_root() / info.folder
    return cache_root() / "data" / info.folder if info.generated and not found.is_dir() else found


def read(
    name: str,
    path: str | os.PathLike | None = None,
    *,
    seed: int = 0,
    augment: Sequence[str] = (),
    augment_copies: int = 1,
    **options,
) -> list[Piece]:
    """All pieces of dataset `name`, each with its split (published split where one exists).

    augment: names from `midibert.augment`; each training piece then gets `augment_copies` more
    copies (id "<id>@aug<k>", same group) read through them. Other options go to the reader.
    """
    from midibert.augment import check

    info = get_info(name)
    root = dataset_dir(name, path)
    if not root.is_dir() and not info.generated:
        raise FileNotFoundError(f"{name}: no dataset at {root} (run `midibert data download {name}` or pass --path)")
    pieces = info.read(root, seed=seed, **options)
    if not augment:
        return pieces
    names = check(augment)
    if augment_copies < 1:
        raise ValueError(f"augment_copies must be at least 1 when augmenting, got {augment_copies}")
    out = []
    for p in pieces:  # each copy right after its piece, so max_pieces subsets keep some
        out.append(p)
        if p.split == "train":
            group = p.group or p.id
            out += [replace(p, id=f"{p.id}@aug{k}", group=group, augment=names) for k in range(1, augment_copies + 1)]
    return out


def midi_files(root: Path) -> list[Path]:
    """Every .mid / .midi file under `root`, sorted so listings are reproducible."""
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in (".mid", ".midi") and p.is_file())


def read_lines(path: Path) -> list[str]:
    """Non-empty stripped lines of a text file."""
    return [s.strip() for s in path.read_text(encoding="utf-8").splitlines() if s.strip()]


def read_csv(path: Path, delimiter: str = ",") -> list[dict[str, str]]:
    """Rows of a CSV file as dicts (a UTF-8 byte-order mark is dropped)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f, delimiter=delimiter))


def published_split(root: Path, dataset: str, name: str) -> list[str]:
    """A MidiBERT-Piano split list: `root/splits_midibert/NAME.txt`, else the copy shipped in midibert/data/splits.json."""
    local = root / "splits_midibert" / f"{name}.txt"
    if local.is_file():
        return read_lines(local)
    shipped = json.loads(resources.files("midibert").joinpath("data", "splits.json").read_text(encoding="utf-8"))
    return shipped[dataset][name]


def assign_splits(pieces: list[Piece], seed: int = 0, fractions=DEFAULT_FRACTIONS) -> list[Piece]:
    """Give every piece without a split one, whole groups at a time, reproducibly for `seed`.

    Groups are shuffled and cut so each split gets about `fractions` of the pieces; a split with a
    non-zero fraction gets at least one group when there are enough groups.
    """
    todo = sorted({p.group or p.id for p in pieces if p.split is None})
    if not todo:
        return list(pieces)
    sizes: dict[str, int] = {}
    for p in pieces:
        if p.split is None:
            sizes[p.group or p.id] = sizes.get(p.group or p.id, 0) + 1
    order = [todo[i] for i in np.random.default_rng(seed).permutation(len(todo))]
    total = sum(sizes.values())
    bounds = np.cumsum(fractions) / np.sum(fractions) * total
    where: dict[str, str] = {}
    done = 0
    for g in order:
        k = min(int(np.searchsorted(bounds, done, side="right")), len(SPLITS) - 1)
        where[g] = SPLITS[k]
        done += sizes[g]
    # tiny datasets: make sure valid/test are not empty when they were asked for
    for k in (2, 1):
        if fractions[k] > 0 and SPLITS[k] not in where.values() and len(order) >= 3:
            donor = next(g for g in reversed(order) if list(where.values()).count(where[g]) > 1)
            where[donor] = SPLITS[k]
    return [replace(p, split=where[p.group or p.id]) if p.split is None else p for p in pieces]


def check_groups(pieces: list[Piece]) -> None:
    """Raise if any group has pieces in two splits (a leak from train into evaluation)."""
    seen: dict[str, str | None] = {}
    for p in pieces:
        g = p.group or p.id
        if seen.setdefault(g, p.split) != p.split:
            raise ValueError(f"group {g!r} is in splits {seen[g]!r} and {p.split!r}")
