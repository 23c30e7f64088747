"""Lightning DataModules over prepared datasets: fixed-length windows, padded batches.

Batches are dicts: `input_ids` (B, L, F) for CP or (B, L) for REMI, `attention_mask` (B, L)
True on real tokens, `note_index` (B, L) (-1 off notes), `bar_start` (B, L) True where a bar
begins (as prepared, for bar masking), `piece` (B,), `source` (B,) the corpus a pre-training
window came from (an index into `PretrainDataModule.source_names`), and `labels`: (B, L) with
IGNORE where there is nothing to predict (token tasks) or (B,) (sequence tasks). Batches are cut
to their longest window, so short pieces do not pay for 512 positions.

Training order comes from `StepSampler`: a function of seed and optimizer step, so a resumed
run sees exactly the batches the uninterrupted run would have. `bucket_by_length` batches
windows of like length together (no padding compute, and full windows need no attention mask,
so SDPA may take its flash kernel on GPUs).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from midibert.datasets.base import get_info
from midibert.datasets.prepare import PreparedSplit, load_split, prepare
from midibert.tokenize import IGNORE, PAD, Tokenizer
from midibert.tokenize.labels import melody_classes
from midibert.tokenize.windows import evaluation_overlap, window_starts
from midibert.training.sampler import StepSampler


def _window_key(key: int | tuple[int, int]) -> tuple[int, int]:
    """(window, shift) of a dataset key: a plain index, or the (index, shift) of a jittering sampler."""
    return key if isinstance(key, tuple) else (key, 0)


class WindowDataset(Dataset):
    """Windows of `seq_len` tokens over every piece of a prepared split.

    labels: a per-token array (token tasks), a per-piece array (sequence tasks) or None.
    end_aligned: no short last window in a piece longer than `seq_len` (`window_starts`).
    piece_features: (pieces, k) numbers per piece; note_features: (tokens, k) numbers per token.
    """

    def __init__(
        self,
        split: PreparedSplit,
        seq_len: int,
        overlap: int = 0,
        labels: np.ndarray | None = None,
        piece_labels: np.ndarray | None = None,
        pieces: Sequence[int] | None = None,
        end_aligned: bool = False,
        piece_features: np.ndarray | None = None,
        note_features: np.ndarray | None = None,
    ):
        self.split, self.seq_len, self.labels, self.piece_labels = split, seq_len, labels, piece_labels
        self.piece_features, self.note_features = piece_features, note_features
        rows = []
        for p in range(len(split)) if pieces is None else pieces:
            s = split.piece(p)
            starts, lengths = window_starts(s.stop - s.start, seq_len, overlap, end_aligned=end_aligned)
            rows += [(p, s.start + a, n) for a, n in zip(starts, lengths)]
        self.rows = np.asarray(rows, dtype=np.int64).reshape(-1, 3)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def lengths(self) -> np.ndarray:
        """Real tokens in each window."""
        return self.rows[:, 2]

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        """Window `key`, or (window, shift): the window moved by `shift` tokens, as far as its piece
        allows (a `StepSampler` with jitter asks so), its length kept."""
        i, shift = _window_key(key)
        piece, start, n = (int(v) for v in self.rows[i])
        if shift:
            s = self.split.piece(piece)
            start = min(max(start + shift, s.start), s.stop - n)
        item = {
            "input_ids": np.asarray(self.split.ids[start : start + n], dtype=np.int64),
            "note_index": np.asarray(self.split.note_index[start : start + n], dtype=np.int64),
            "bar_start": np.asarray(self.split.bar_start[start : start + n], dtype=bool),
            "piece": piece,
        }
        if self.labels is not None:
            item["labels"] = np.asarray(self.labels[start : start + n], dtype=np.int64)
        elif self.piece_labels is not None:
            item["labels"] = int(self.piece_labels[piece])
        if self.piece_features is not None:
            item["features"] = self.piece_features[piece]
        elif self.note_features is not None:
            item["features"] = self.note_features[start : start + n]
        return item


def collate(items: list[dict]) -> dict:
    """Pad to the longest window of the batch (PAD) and build the attention mask."""
    L = max(len(it["input_ids"]) for it in items)
    first = items[0]["input_ids"]
    ids = np.full((len(items), L, *first.shape[1:]), PAD, dtype=np.int64)
    note = np.full((len(items), L), -1, dtype=np.int64)
    mask = np.zeros((len(items), L), dtype=bool)
    bars = np.zeros((len(items), L), dtype=bool)
    for b, it in enumerate(items):
        n = len(it["input_ids"])
        ids[b, :n], note[b, :n], mask[b, :n], bars[b, :n] = it["input_ids"], it["note_index"], True, it["bar_start"]
    batch = {
        "input_ids": torch.from_numpy(ids),
        "attention_mask": torch.from_numpy(mask),
        "note_index": torch.from_numpy(note),
        "bar_start": torch.from_numpy(bars),
        "piece": torch.tensor([it["piece"] for it in items]),
    }
    if "source" in items[0]:
        batch["source"] = torch.tensor([it["source"] for it in items])
    if "features" in items[0]:
        batch["features"] = torch.from_numpy(_stack_features(items, L))
    if "labels" in items[0]:
        if np.ndim(items[0]["labels"]) == 0:
            batch["labels"] = torch.tensor([it["labels"] for it in items])
        else:
            lab = np.full((len(items), L), IGNORE, dtype=np.int64)
            for b, it in enumerate(items):
                lab[b, : len(it["labels"])] = it["labels"]
            batch["labels"] = torch.from_numpy(lab)
    return batch


def _stack_features(items: list[dict], L: int) -> np.ndarray:
    """(B, k) piece features, or (B, L, k) note features, zero on padding."""
    first = items[0]["features"]
    if np.ndim(first) == 1:
        return np.stack([it["features"] for it in items]).astype(np.float32)
    out = np.zeros((len(items), L, first.shape[-1]), np.float32)
    for b, it in enumerate(items):
        out[b, : len(it["features"])] = it["features"]
    return out


class _Base(pl.LightningDataModule):
    """Preparation, tokenizer and loaders shared by every DataModule."""

    def __init__(
        self,
        *,
        tokenizer: str = "cp-score",
        seq_len: int = 512,
        eval_overlap: int | None = None,
        batch_size: int = 16,
        num_workers: int = 0,
        seed: int = 0,
        split_seed: int = 42,
        prepare_workers: int | None = None,
        cache_dir: str | None = None,
        bucket_by_length: bool = False,
        jitter: int = 0,
    ):
        super().__init__()
        self.tokenizer = Tokenizer.from_spec(tokenizer)
        self.eval_overlap = evaluation_overlap(seq_len) if eval_overlap is None else eval_overlap
        self.seq_len, self.batch_size = seq_len, batch_size
        self.num_workers, self.seed, self.prepare_workers = num_workers, seed, prepare_workers
        self.split_seed = split_seed  # not `seed`: every run seed must see the same test pieces
        self.bucket_by_length = bucket_by_length
        # training windows move by up to this many tokens, anew each pass: over many passes a
        # token is not always seen at the same place in the same window (evaluation never moves)
        self.jitter = jitter
        self.cache_dir = cache_dir  # the preparation cache lives where the config says, never beside the data
        self.train_set: WindowDataset | None = None
        self.val_set: WindowDataset | None = None
        self.test_set: WindowDataset | None = None

    @property
    def vocab_sizes(self) -> list[int]:
        return self.tokenizer.vocab_sizes

    @property
    def n_train_windows(self) -> int:
        return len(self.train_set) if self.train_set is not None else 0

    def _prepare(self, name: str, path: str | None, max_pieces: int | None, options: dict) -> str:
        return prepare(
            name,
            path,
            tokenizer=self.tokenizer.spec,
            workers=self.prepare_workers,
            seed=self.split_seed,
            max_pieces=max_pieces,
            progress=True,
            cache_dir=self.cache_dir,
            **options,
        )

    def _step(self) -> int:
        trainer = self.trainer
        return trainer.global_step * max(1, trainer.accumulate_grad_batches) if trainer is not None else 0

    def _pin_memory(self) -> bool:
        """Page-locked batches when training on CUDA: host-to-device copies then run asynchronously."""
        return self.trainer is not None and self.trainer.strategy.root_device.type == "cuda"

    def train_dataloader(self) -> DataLoader:
        lengths = self.train_set.lengths if self.bucket_by_length else None
        sampler = StepSampler(
            len(self.train_set), self.batch_size, seed=self.seed, step=self._step, lengths=lengths, jitter=self.jitter
        )
        return DataLoader(
            self.train_set,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            pin_memory=self._pin_memory(),
        )

    def _eval_loader(self, ds: WindowDataset) -> DataLoader:
        return DataLoader(
            ds,
            batch_size=self.batch_size,
            shuffle=False,
            collate_fn=collate,
            num_workers=self.num_workers,
            pin_memory=self._pin_memory(),
        )

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.test_set)

    def train_class_counts(self) -> np.ndarray:
        raise NotImplementedError

    def encodings(self, split: str):
        """The Encoding of every piece of a split, in its order, read again from its source (the
        rule baselines need the notes, which the prepared tokens do not keep)."""
        for piece in self.splits[split].pieces:
            yield self.tokenizer.encode(piece["path"])

    def class_weights(self) -> list[float]:
        """Inverse class frequency, normalised to mean 1 (for imbalanced labels such as velocity)."""
        counts = self.train_class_counts().astype(float)
        w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1), 0.0)
        return (w / w[w > 0].mean()).tolist()


class PretrainDataModule(_Base):
    """Masked-LM windows from a weighted mix of datasets.

    datasets: [{"name": "pop1k7", "weight": 1.0, "path": null, "max_pieces": null, "options": {}}, ...];
    a weight of 2 repeats that dataset's windows twice per pass, 0.5 takes a seeded half.
    """

    def __init__(self, datasets: list[dict], **kwargs):
        super().__init__(**kwargs)
        self.datasets = [dict(d) for d in datasets]

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        parts = {"train": [], "valid": []}
        for d in self.datasets:
            folder = self._prepare(d["name"], d.get("path"), d.get("max_pieces"), dict(d.get("options") or {}))
            for split in parts:
                ds = WindowDataset(load_split(folder, split), self.seq_len)
                parts[split].append((ds, float(d.get("weight", 1.0)) if split == "train" else 1.0))
        self.train_set = _Mix(parts["train"], self.seed)
        self.val_set = _Mix(parts["valid"], self.seed)

    @property
    def source_names(self) -> list[str]:
        """One name per corpus of the mix, in the order of the batches' `source` (a dataset listed
        twice, say with other options, is numbered: "asap", "asap#2")."""
        seen: Counter[str] = Counter()
        names = []
        for d in self.datasets:
            seen[d["name"]] += 1
            names.append(d["name"] if seen[d["name"]] == 1 else f"{d['name']}#{seen[d['name']]}")
        return names


class _Mix(Dataset):
    """Windows of several datasets, each repeated or sub-sampled by its weight (deterministically)."""

    def __init__(self, parts: list[tuple[WindowDataset, float]], seed: int):
        self.parts = [ds for ds, _ in parts]
        index = []
        rng = np.random.default_rng(seed)
        for k, (ds, w) in enumerate(parts):
            whole, frac = int(w), w - int(w)
            take = np.concatenate(
                [np.tile(np.arange(len(ds)), whole), np.sort(rng.permutation(len(ds))[: round(frac * len(ds))])]
            )
            index.append(np.stack([np.full(len(take), k), take], axis=1))
        self.index = np.concatenate(index).astype(np.int64) if index else np.zeros((0, 2), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def lengths(self) -> np.ndarray:
        """Real tokens in each window."""
        out = np.zeros(len(self.index), dtype=np.int64)
        for k, ds in enumerate(self.parts):
            mine = self.index[:, 0] == k
            out[mine] = ds.lengths[self.index[mine, 1]]
        return out

    def __getitem__(self, key: int | tuple[int, int]) -> dict:
        i, shift = _window_key(key)
        k, j = (int(v) for v in self.index[i])
        return {**self.parts[k][(j, shift)], "source": k}


class TokenClassificationDataModule(_Base):
    """Per-token labels (melody3, melody2 or velocity) of a note-labelled dataset such as POP909.

    note_features: names of `baselines.NOTE_FEATURES` each token carries into the head, computed
    from the prepared tokens as `midibert.classify` computes them from a file's.
    """

    eval_level = "note"

    def __init__(
        self,
        dataset: str = "pop909",
        label: str = "melody3",
        path: str | None = None,
        max_pieces: int | None = None,
        options: dict | None = None,
        note_features: Sequence[str] = (),
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.dataset, self.label, self.path = dataset, label, path
        self.max_pieces, self.options = max_pieces, dict(options or {})
        self.note_features = list(note_features)

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        folder = self._prepare(self.dataset, self.path, self.max_pieces, self.options)
        self.splits = {s: load_split(folder, s) for s in ("train", "valid", "test")}
        for s in self.splits.values():
            if self.label not in s.labels:
                raise ValueError(f"{self.dataset} has no per-note {self.label!r} labels")
        if self.label == "tracks":  # a user's classes of track names, and the rest
            self.classes = [*self.options["tracks"], "other"]
            y = np.asarray(self.splits["train"].labels["tracks"])
            counts = np.bincount(y[y != IGNORE], minlength=len(self.classes))
            found = {c for c, n in zip(self.classes, counts) if n}
            _check_classes(self.dataset, "tracks", self.classes, found, unit="training note")
        lab = {s: sp.labels[self.label] for s, sp in self.splits.items()}
        feats = {s: self._note_features(sp) for s, sp in self.splits.items()}
        self.train_set, self.val_set, self.test_set = (
            WindowDataset(self.splits[s], self.seq_len, overlap, labels=lab[s], note_features=feats[s])
            for s, overlap in (("train", 0), ("valid", self.eval_overlap), ("test", self.eval_overlap))
        )

    def _note_features(self, split: PreparedSplit) -> np.ndarray | None:
        """(tokens, k) of the whole split, piece by piece, or None without note features."""
        if not self.note_features:
            return None
        from midibert.baselines import note_features

        pieces = [
            note_features(self.tokenizer, np.asarray(split.ids[split.piece(p)]), self.note_features)
            for p in range(len(split))
        ]
        return np.concatenate(pieces) if pieces else np.zeros((0, len(self.note_features)), np.float32)

    def train_class_counts(self) -> np.ndarray:
        y = np.asarray(self.splits["train"].labels[self.label])
        return np.bincount(y[y != IGNORE])

    def test_targets(self) -> np.ndarray:
        """The true class of every test note, each note once."""
        sp = self.splits["test"]
        out = []
        for p in range(len(sp)):
            s = sp.piece(p)
            idx, lab = np.asarray(sp.note_index[s]), np.asarray(sp.labels[self.label][s])
            _, first = np.unique(idx[idx >= 0], return_index=True)
            out.append(lab[idx >= 0][first])
        return np.concatenate(out)

    def test_notes(self):
        """(Encoding, true 3- or 2-class melody label per note) of every test piece, for rule baselines."""
        classes = 2 if self.label == "melody2" else 3
        info = get_info(self.dataset)
        for enc in self.encodings("test"):
            yield enc, melody_classes(enc.notes.track_name, classes) if info.note_labels else None


def _check_classes(dataset: str, key: str, classes: list[str], found: set[str], unit: str = "piece") -> None:
    """Refuse, in one line, labels a classifier cannot learn from."""
    if len(found) < 2:
        raise ValueError(
            f"{dataset}: {len(found)} {key!r} class{'es' if len(found) != 1 else ''} found "
            f"({', '.join(sorted(found)) or f'no labelled {unit}'}); a classifier needs at least two"
        )
    empty = [c for c in classes if c not in found]
    if empty:
        raise ValueError(f"{dataset}: no {unit} is labelled {', '.join(map(repr, empty))} (of classes {classes})")


class SequenceClassificationDataModule(_Base):
    """One label per piece (composer, emotion quadrant); every window carries its piece's label."""

    eval_level = "piece"

    def __init__(
        self,
        dataset: str = "pianist8",
        label_key: str | None = None,
        classes: list[str] | None = None,
        path: str | None = None,
        max_pieces: int | None = None,
        options: dict | None = None,
        piece_features: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.dataset, self.path, self.max_pieces, self.options = dataset, path, max_pieces, dict(options or {})
        self.piece_features = piece_features
        self.feature_norm: dict | None = None  # mean and scale of the train split's note statistics
        info = get_info(dataset)
        self.label_key = label_key or info.label_key
        self.classes = list(classes or info.classes or [])

    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        folder = self._prepare(self.dataset, self.path, self.max_pieces, self.options)
        self.splits = {s: load_split(folder, s) for s in ("train", "valid", "test")}
        found = {p["labels"].get(self.label_key) for sp in self.splits.values() for p in sp.pieces} - {None, ""}
        self.classes = self.classes or sorted(found)
        # a subset (max_pieces, tests) may leave some of a dataset's classes out; the whole may not
        _check_classes(self.dataset, self.label_key, self.classes if self.max_pieces is None else [], found)
        self.piece_labels = {s: self._labels(sp) for s, sp in self.splits.items()}
        features = self._features() if self.piece_features else {}
        self.train_set, self.val_set, self.test_set = (
            WindowDataset(
                self.splits[k],
                self.seq_len,
                piece_labels=self.piece_labels[k],
                end_aligned=True,
                piece_features=features.get(k),
            )
            for k in ("train", "valid", "test")
        )

    def _features(self) -> dict[str, np.ndarray]:
        """Each split's pieces as standardized note statistics (the features baseline's), scaled by
        the train split's mean and spread, which `feature_norm` keeps for the bundle."""
        from midibert.baselines import statistics_matrix

        tokens = self.tokenizer.config
        raw = {s: statistics_matrix(self.encodings(s), tokens) for s in ("train", "valid", "test")}
        mean, scale = raw["train"].mean(0), raw["train"].std(0)
        scale = np.where(scale > 0, scale, 1.0)
        self.feature_norm = {"mean": mean.tolist(), "scale": scale.tolist(), "velocity": tokens.performance}
        return {s: ((x - mean) / scale).astype(np.float32) for s, x in raw.items()}

    def _labels(self, split: PreparedSplit) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.classes)}
        try:
            return np.array([index[p["labels"][self.label_key]] for p in split.pieces], dtype=np.int64)
        except KeyError as e:
            raise ValueError(f"{self.dataset}: a piece has label {e} outside the classes {self.classes}") from e

    def train_class_counts(self) -> np.ndarray:
        return np.bincount(self.piece_labels["train"], minlength=len(self.classes))

    def test_targets(self) -> np.ndarray:
        return self.piece_labels["test"]
