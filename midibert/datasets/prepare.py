"""Tokenize a whole dataset once, in parallel, into flat memory-mappable arrays per split.

Layout of a prepared dataset (a cache folder named after dataset, tokenizer and a config hash):

    manifest.json  tokenizer.json
    train/ valid/ test/: ids.npy (T, F) or (T,), note_index.npy, bar_start.npy, offsets.npy
                         (n_pieces + 1), melody3/melody2/velocity.npy (note-labelled datasets,
                         IGNORE where no label), pieces.json

Everything is written to a hidden temporary folder and renamed into place only when complete,
so an interrupted run never leaves something that looks like a valid cache; the next run
removes what a killed one left. An existing folder is replaced only when it is a preparation.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from midibert.datasets.base import SPLITS, DatasetInfo, Piece, cache_root, dataset_dir, get_info, read
from midibert.fsutil import die_with_parent, publish_dir, remove_stale

FORMAT = 1
MANIFEST = "manifest.json"
# array name -> dtype on disk; labels fit in int16 (IGNORE, -100, .. a few classes)
DTYPES = {
    "ids": np.int32,
    "note_index": np.int32,
    "bar_start": np.bool_,
    "melody3": np.int16,
    "melody2": np.int16,
    "velocity": np.int16,
    "tracks": np.int16,
}
NOTE_LABELS = ("melody3", "melody2", "velocity")  # of a dataset whose MIDI carries them (POP909)
# "tracks": a user's classes of track names (options["tracks"], class -> name patterns), any dataset


def cache_key(
    name: str,
    root: Path,
    tokenizer: str,
    options: dict,
    seed: int,
    max_pieces: int | None,
    max_tokens: int | None = None,
) -> str:
    """Hash of everything that changes the prepared arrays except the source files themselves."""
    from midibert.tokenize import Tokenizer

    what = {
        "format": FORMAT,
        "dataset": name,
        "root": str(root.resolve()),
        "seed": seed,
        "tokenizer": Tokenizer.from_spec(tokenizer).config_hash(),
        "options": options,
        "max_pieces": max_pieces,
    }
    if max_tokens is not None:  # only when set, so caches made before the limit existed stay valid
        what["max_tokens"] = max_tokens
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def source_listing(pieces: list[Piece], root: Path) -> list[list]:
    """[relative path, size, mtime_ns] of every source file: the cheap "has anything changed" check."""
    out = []
    for p in pieces:
        st = p.path.stat() if p.path.exists() else None
        rel = os.path.relpath(p.path, root)
        out.append([rel, st.st_size, st.st_mtime_ns] if st else [rel, None, None])
    return out


# ---- worker side: one tokenizer per process, built once by the pool initializer ---------------
_worker: dict = {}


def _init_worker(
    tokenizer: str, name: str, max_tokens: int | None, parent: int | None = None, tracks: dict | None = None
) -> None:
    if parent is not None:
        die_with_parent(parent)
    from midibert.tokenize import Tokenizer
    from midibert.tokenize.base import MAX_TOKENS

    _worker.update(
        tok=Tokenizer.from_spec(tokenizer),
        info=get_info(name),
        max_tokens=MAX_TOKENS if max_tokens is None else max_tokens,
        tracks=tracks,
    )


def _encode(piece: Piece) -> dict | str:
    """Arrays of one piece, or the reason it was skipped (never raises: one bad file must not stop a run)."""
    from midibert.augment import augment, rng_for
    from midibert.tokenize.labels import melody_labels, to_tokens, track_classes, velocity_labels
    from midibert.tokenize.notes import read_score

    tok, info = _worker["tok"], _worker["info"]
    try:
        src = info.load(piece, tok.config.kind) if info.load else piece.path
        if piece.augment:
            src = augment(read_score(src), piece.augment, rng_for(piece.id))
        enc = tok.encode(src, max_tokens=_worker["max_tokens"])
        if len(enc) == 0:
            return "no tokens"
        arrays = {
            "ids": enc.ids,
            "note_index": enc.note_index,
            "bar_start": enc.bar_start,
            "n_notes": int((enc.note_index >= 0).sum()),
        }
        if info.note_labels:
            arrays.update(melody3=melody_labels(enc, 3), melody2=melody_labels(enc, 2), velocity=velocity_labels(enc))
        if _worker["tracks"]:
            arrays["tracks"] = to_tokens(enc, track_classes(enc.notes.track_name, _worker["tracks"]))
        return arrays
    except Exception as e:  # noqa: BLE001  (corrupt files raise anything from MidiError to struct errors)
        return f"{type(e).__name__}: {e}"


# ---- main side: stream each piece's arrays onto disk as it arrives --------------------------
class _SplitWriter:
    """Appends pieces' arrays to raw files, then wraps them as .npy without loading them."""

    def __init__(self, folder: Path, names: tuple[str, ...]):
        folder.mkdir(parents=True)
        self.folder, self.names = folder, names
        self.files = {n: open(folder / f"{n}.raw", "wb") for n in names}
        self.offsets, self.pieces, self.n_notes = [0], [], 0
        self.trailing: tuple[int, ...] = ()

    def add(self, piece: Piece, arrays: dict) -> None:
        for n in self.names:
            self.files[n].write(np.ascontiguousarray(arrays[n], dtype=DTYPES[n]).tobytes())
        self.trailing = arrays["ids"].shape[1:]
        self.offsets.append(self.offsets[-1] + len(arrays["ids"]))
        self.n_notes += arrays["n_notes"]
        self.pieces.append(
            {"id": piece.id, "path": str(piece.path), "labels": piece.labels, "group": piece.group, "kind": piece.kind}
        )

    def finish(self) -> dict:
        total = self.offsets[-1]
        for n, f in self.files.items():
            f.close()
            shape = (total, *self.trailing) if n == "ids" else (total,)
            _raw_to_npy(self.folder / f"{n}.raw", self.folder / f"{n}.npy", np.dtype(DTYPES[n]), shape)
        np.save(self.folder / "offsets.npy", np.asarray(self.offsets, dtype=np.int64))
        (self.folder / "pieces.json").write_text(json.dumps(self.pieces, ensure_ascii=False))
        return {"pieces": len(self.pieces), "tokens": total, "notes": self.n_notes}


def _raw_to_npy(raw: Path, npy: Path, dtype: np.dtype, shape: tuple[int, ...]) -> None:
    """Put a .npy header in front of raw bytes, copying in chunks (never the whole array in memory)."""
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    with open(npy, "wb") as out, open(raw, "rb") as src:
        np.lib.format.write_array_header_1_0(out, header)
        shutil.copyfileobj(src, out, 1 << 22)
    raw.unlink()


def _select(pieces: list[Piece], max_pieces: int | None) -> list[Piece]:
    """Pieces in split order; with max_pieces, the first that many of each split (tiny test subsets)."""
    out = []
    for s in SPLITS:
        in_split = [p for p in pieces if p.split == s]
        out += in_split[:max_pieces] if max_pieces else in_split
    return out


def is_complete(folder: Path, key: str | None = None, sources: list | None = None) -> bool:
    """True when `folder` is a finished preparation (with this key and these source files, if given)."""
    try:
        m = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return (
        m.get("complete") is True
        and m.get("format") == FORMAT
        and (key is None or m.get("key") == key)
        and (sources is None or m.get("sources") == sources)
    )


def _is_preparation(folder: Path) -> bool:
    """Whether `folder` was written by `prepare` (of any format): its manifest has our keys."""
    try:
        m = json.loads((folder / MANIFEST).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(m, dict) and {"format", "key", "config_hash", "counts"} <= m.keys()


def check_out(final: Path, root: Path, chosen: bool = True) -> None:
    """Refuse an output folder whose replacement would delete what midibert did not write: the
    dataset or a folder holding it, any non-empty folder that is not a preparation, and (when the
    user `chosen` it) a folder inside the dataset."""
    f, r = final.resolve(), root.resolve()
    if r.is_relative_to(f) or (chosen and f.is_relative_to(r)):
        raise ValueError(
            f"output folder {final} and dataset folder {root} overlap; write the preparation "
            f"elsewhere (the output folder is replaced as a whole)"
        )
    if final.is_symlink() or (final.exists() and not final.is_dir()):
        raise ValueError(f"output folder {final} exists and is not a folder; refusing to replace it")
    if final.is_dir() and any(final.iterdir()) and not _is_preparation(final):
        raise ValueError(
            f"output folder {final} is not empty and not a midibert preparation (its {MANIFEST} "
            f"would say so); refusing to replace it: choose another --out or empty it"
        )


def prepare(
    name: str,
    path: str | os.PathLike | None = None,
    out: str | os.PathLike | None = None,
    tokenizer: str = "cp-score",
    workers: int | None = None,
    *,
    seed: int = 0,
    max_pieces: int | None = None,
    max_tokens: int | None = None,
    progress: bool = True,
    cache_dir: str | os.PathLike | None = None,
    **options,
) -> Path:
    """Prepare dataset `name` (cached) and return the folder; `options` go to the reader.

    Reuses an existing preparation when tokenizer, options and every source file's size and
    mtime are unchanged. Default folder: <$MIDIBERT_CACHE or ~/.cache/midibert>/prepared/.
    Pieces that would make more than `max_tokens` tokens (default: the tokenizer's limit) are
    skipped. `out` must not overlap the dataset, nor be a non-empty folder prepare did not write.
    `cache_dir` replaces the cache root for the default folder.
    """
    from midibert.tokenize import Tokenizer

    info = get_info(name)
    root = dataset_dir(name, path)
    reader_options = {k: v for k, v in options.items() if k != "tracks"}  # note labels, not the reader's
    pieces = _select(read(name, path, seed=seed, **reader_options), max_pieces)
    key = cache_key(name, root, tokenizer, options, seed, max_pieces, max_tokens)
    tok = Tokenizer.from_spec(tokenizer)
    final = Path(out) if out else Path(cache_dir or cache_root()) / "prepared" / f"{name}-{tok.spec}-{key[:12]}"
    sources = source_listing(pieces, root)
    if is_complete(final, key, sources):
        return final
    check_out(final, root, chosen=out is not None)
    final.parent.mkdir(parents=True, exist_ok=True)
    for debris in (".tmp-", ".old-"):  # left by runs that were killed before their own cleanup
        remove_stale(final.parent, f".{final.name}{debris}")
    tmp = final.parent / f".{final.name}.tmp-{os.getpid()}-{time.monotonic_ns()}"
    try:
        manifest = _write(tmp, info, pieces, tok, tokenizer, workers, progress, max_tokens, options.get("tracks"))
        manifest.update(
            key=key,
            dataset=name,
            data_dir=str(root),
            options=options,
            seed=seed,
            max_pieces=max_pieces,
            max_tokens=max_tokens,
            sources=sources,
        )
        _publish(tmp, final, manifest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _write(
    tmp: Path,
    info: DatasetInfo,
    pieces: list[Piece],
    tok,
    spec: str,
    workers: int | None,
    progress: bool,
    max_tokens: int | None,
    tracks: dict | None = None,
) -> dict:
    """Encode every piece (in worker processes) and stream the results into `tmp`."""
    labels = (NOTE_LABELS if info.note_labels else ()) + (("tracks",) if tracks else ())
    names = ("ids", "note_index", "bar_start") + labels
    writers = {s: _SplitWriter(tmp / s, names) for s in SPLITS}
    skipped = []
    workers = max(1, min(workers or os.cpu_count() or 1, len(pieces) or 1))
    bar = tqdm(total=len(pieces), desc=f"prepare {info.name} ({spec})", unit="file", disable=not progress)
    if workers == 1:
        _init_worker(spec, info.name, max_tokens, tracks=tracks)
        results = map(_encode, pieces)
        pool = None
    else:
        pool = ProcessPoolExecutor(
            workers, initializer=_init_worker, initargs=(spec, info.name, max_tokens, os.getpid(), tracks)
        )
        results = pool.map(_encode, pieces, chunksize=max(1, min(16, len(pieces) // (workers * 8))))
    try:
        for piece, res in zip(pieces, results):
            if isinstance(res, str):
                skipped.append({"id": piece.id, "path": str(piece.path), "reason": res})
            else:
                writers[piece.split].add(piece, res)
            bar.update()
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    counts = {s: w.finish() for s, w in writers.items()}
    tok.save(tmp)
    return {
        "format": FORMAT,
        "complete": True,
        "tokenizer": tok.to_dict()["config"],
        "spec": tok.spec,
        "config_hash": tok.config_hash(),
        "vocab_sizes": tok.vocab_sizes,
        "note_labels": list(labels),
        "label_key": info.label_key,
        "counts": counts,
        "skipped": skipped,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }


def _publish(tmp: Path, final: Path, manifest: dict) -> None:
    """Write the manifest last, then swap `tmp` in for `final` (an old version is moved aside first)."""
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False))
    publish_dir(tmp, final)


@dataclass
class PreparedSplit:
    """One split of a prepared dataset, arrays memory-mapped (nothing read until indexed)."""

    ids: np.ndarray
    note_index: np.ndarray
    bar_start: np.ndarray
    offsets: np.ndarray
    labels: dict[str, np.ndarray]
    pieces: list[dict]

    def __len__(self) -> int:
        return len(self.pieces)

    def piece(self, i: int) -> slice:
        """Token range of piece i."""
        return slice(int(self.offsets[i]), int(self.offsets[i + 1]))


def load_split(folder: str | os.PathLike, split: str) -> PreparedSplit:
    """Open one split of a prepared dataset; refuses folders that are not complete preparations."""
    folder = Path(folder)
    if not is_complete(folder):
        raise FileNotFoundError(f"{folder} is not a complete prepared dataset (run `midibert data prepare`)")
    manifest = json.loads((folder / MANIFEST).read_text())
    d = folder / split
    return PreparedSplit(
        ids=np.load(d / "ids.npy", mmap_mode="r"),
        note_index=np.load(d / "note_index.npy", mmap_mode="r"),
        bar_start=np.load(d / "bar_start.npy", mmap_mode="r"),
        offsets=np.load(d / "offsets.npy"),
        labels={n: np.load(d / f"{n}.npy", mmap_mode="r") for n in manifest["note_labels"]},
        pieces=json.loads((d / "pieces.json").read_text(encoding="utf-8")),
    )


def read_manifest(folder: str | os.PathLike) -> dict:
    """The manifest.json of a prepared dataset."""
    return json.loads((Path(folder) / MANIFEST).read_text())


__all__ = ["prepare", "load_split", "read_manifest", "is_complete", "PreparedSplit"]
