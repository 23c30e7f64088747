"""`midibert data {download,verify,prepare,stats,manifest}`: argparse wiring and handlers (no torch imported)."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

import numpy as np


def _download(args: argparse.Namespace) -> int:
    from midibert.datasets.download import download

    folder = download(args.name, args.to, check=not args.no_verify)
    print(f"{args.name}: {folder}")
    return 0


def _verify(args: argparse.Namespace) -> int:
    from midibert.datasets import checksums
    from midibert.datasets.base import dataset_dir

    files = checksums.load(args.name)
    if files is None:
        raise ValueError(f"{args.name}: midibert ships no checksums for this dataset")
    root = dataset_dir(args.name, args.path)
    if not root.is_dir():
        raise FileNotFoundError(f"{args.name}: no dataset at {root} (pass --path)")
    res = checksums.check(root, files)
    for rel in res.missing:
        print(f"missing {rel}")
    for what in res.changed:
        print(f"changed {what}")
    print(f"{args.name} at {root}: {res.summary(limit=0)}")
    return 0 if res.ok else 1


def _manifest(args: argparse.Namespace) -> int:
    from midibert.datasets import checksums
    from midibert.datasets.base import dataset_dir
    from midibert.datasets.download import load_manifest

    entry = load_manifest()[args.name]
    root = dataset_dir(args.name, args.path)
    if not root.is_dir():
        raise FileNotFoundError(f"{args.name}: no dataset at {root} (pass --path)")
    files = checksums.compute(root, entry["files"], entry.get("release_sums"))
    out = checksums.write(args.name, files, entry["url"], Path(args.out) if args.out else checksums.PACKAGE_DIR)
    print(f"{out}: {len(files)} files")
    return 0


def _prepare(args: argparse.Namespace) -> int:
    from midibert.datasets.prepare import prepare, read_manifest

    options = {"labels_csv": args.labels_csv} if args.labels_csv else {}
    folder = prepare(
        args.name,
        args.path,
        args.out,
        args.tokenizer,
        args.workers,
        seed=args.seed,
        max_pieces=args.max_pieces,
        max_tokens=args.max_tokens,
        **options,
    )
    m = read_manifest(folder)
    counts = ", ".join(f"{s} {c['pieces']} pieces / {c['tokens']} tokens" for s, c in m["counts"].items())
    print(f"{folder}\n  {counts}; skipped {len(m['skipped'])}")
    for s in m["skipped"]:
        print(f"  skipped {s['path']}: {s['reason']}")
    return 0


def _stats(args: argparse.Namespace) -> int:
    from midibert.datasets.base import SPLITS, get_info, read

    info = get_info(args.name)
    pieces = read(args.name, args.path, seed=args.seed)
    out: dict = {"dataset": args.name, "pieces": {s: sum(p.split == s for p in pieces) for s in SPLITS}}
    if info.label_key:
        out[info.label_key] = {
            s: dict(sorted(Counter(p.labels.get(info.label_key) for p in pieces if p.split == s).items()))
            for s in SPLITS
        }
    if args.tokenizer:  # token-level figures need a (cached) preparation
        from midibert.datasets.prepare import load_split, prepare, read_manifest

        folder = prepare(args.name, args.path, None, args.tokenizer, args.workers, seed=args.seed)
        m = read_manifest(folder)
        out["tokens"] = {s: m["counts"][s] for s in SPLITS}
        out["skipped"] = len(m["skipped"])
        for name in m["note_labels"]:
            values = np.asarray(load_split(folder, "train").labels[name])
            out[f"train {name}"] = {int(k): int(v) for k, v in zip(*np.unique(values[values >= 0], return_counts=True))}
    print(json.dumps(out, indent=1, ensure_ascii=False) if args.json else _stats_table(out, info.label_key))
    return 0


def _stats_table(stats: dict, label_key: str | None) -> str:
    """`data stats` for reading: one row per count, one column per split and the total."""
    from midibert.datasets.base import SPLITS

    rows = [("pieces", [stats["pieces"][s] for s in SPLITS])]
    if label_key:
        labels = sorted({k for s in SPLITS for k in stats[label_key][s]}, key=str)
        rows += [(f"{label_key} {k}", [stats[label_key][s].get(k, 0) for s in SPLITS]) for k in labels]
    if "tokens" in stats:
        rows.append(("tokens", [stats["tokens"][s]["tokens"] for s in SPLITS]))
    rows = [(name, [*counts, sum(counts)]) for name, counts in rows]
    cells = [[name, *(f"{c:,}" for c in counts)] for name, counts in rows]
    header = ["", *SPLITS, "all"]
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(header))]
    lines = [f"# {stats['dataset']}"]
    lines += [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
        for r in [header, *cells]
    ]
    if "skipped" in stats:
        lines.append(f"skipped files: {stats['skipped']}")
    for key in (k for k in stats if k.startswith("train ")):  # note labels of the train split, by class id
        lines.append(f"{key} (notes per class): " + ", ".join(f"{k}: {v:,}" for k, v in stats[key].items()))
    return "\n".join(lines)


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Add `data {download,verify,prepare,stats,manifest}` to the `midibert` subcommands."""
    data = subparsers.add_parser("data", help="download, prepare and describe datasets")
    sub = data.add_subparsers(dest="data_command", required=True)

    d = sub.add_parser("download", help="fetch and unpack a dataset from the manifest (every file checked)")
    d.add_argument("name")
    d.add_argument(
        "--to", help="folder to put the dataset folder in (default $MIDIBERT_DATA or ~/.cache/midibert/data)"
    )
    d.add_argument(
        "--no-verify",
        action="store_true",
        help="accept an archive that midibert has no checksums for, or whose files differ from them",
    )
    d.set_defaults(func=_download)

    v = sub.add_parser("verify", help="check a copy of a dataset against midibert's per-file checksums")
    v.add_argument("name")
    v.add_argument("--path", help="dataset folder, or the data root holding it")
    v.set_defaults(func=_verify)

    m = sub.add_parser(
        "manifest",
        help="(maintainers) write midibert/data/checksums/NAME.json.gz from a copy of the commit datasets.json pins",
    )
    m.add_argument("name")
    m.add_argument("--path", help="dataset folder, or the data root holding it")
    m.add_argument("--out", help="folder to write NAME.json.gz into (default: the package's data/checksums)")
    m.set_defaults(func=_manifest)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "name", help="dataset (pop909, pianist8, asap, emopia, pop1k7, giantmidi, vgmidi, folder, sample)"
    )
    common.add_argument("--path", help="dataset folder, or the data root holding it")
    common.add_argument("--workers", type=int, default=None, help="worker processes (default: all cores)")
    common.add_argument("--seed", type=int, default=0, help="seed of splits made here (published splits ignore it)")

    p = sub.add_parser("prepare", parents=[common], help="tokenize a dataset into cached arrays")
    p.add_argument("--out", help="output folder (default: cache folder named by tokenizer hash)")
    p.add_argument("--tokenizer", default="cp-score", help="REPR-KIND, e.g. cp-score, cp-performance, remi-score")
    p.add_argument("--max-pieces", type=int, default=None, help="at most this many pieces per split")
    p.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="skip pieces that would make more tokens than this (default 2,000,000)",
    )
    p.add_argument("--labels-csv", help="folder dataset: CSV with a path column (relative to --path)")
    p.set_defaults(func=_prepare)

    s = sub.add_parser("stats", parents=[common], help="pieces per split and label counts")
    s.add_argument("--tokenizer", help="also prepare with this tokenizer and report tokens and note labels")
    s.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    s.set_defaults(func=_stats)
    return data
