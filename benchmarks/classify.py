"""CPU inference: songs/s, notes/s and accuracy of ways to run the same model, side by side.

    python benchmarks/classify.py                         # the packaged note-level models
    python benchmarks/classify.py --models runs/run/release/melody-bert/bundle --limit 20
    python benchmarks/classify.py --untrained bert-small bert-base   # speed only, no trained model needed

Songs are the POP909 test split (MidiBERT's ids), each loaded as fine-tuning read it (realigned
to its beats). Every variant runs `Classifier.predict_batch` on each song in the same process,
the variants taking turns song by song (in an order that rotates), so that a machine whose speed
drifts — other tenants, clock changes — slows all variants alike; a round is one pass over the
split. Speed-ups are the median over rounds of each round's ratio to the first variant, with the
lowest and highest beside it so the noise is in the table. Both the wall clock and this
process's CPU time are measured: wall time says how long a user waited, CPU time (with
--threads 1 free of threads waiting on each other) how much work each variant is. Timings
include tokenization, which all variants pay alike. Accuracy is over the notes, against the
songs' own tracks (melody) or velocities; "agree" is the share of notes labelled as the first
variant labels them.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from statistics import median

import torch
from tqdm import tqdm

from midibert.bundle import save_bundle
from midibert.classify import Classifier
from midibert.evaluate import agreement, score_predictions, split_sources
from midibert.model import BertConfig
from midibert.network import build_network
from midibert.pretrained import packaged
from midibert.tokenize import Tokenizer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pop909"
VARIANTS = {  # the first is the fp32 path that was the CPU default, which the others are compared with
    # overlap: of each window, the share the next one repeats (the fp32 path: a quarter)
    "fp32, one window at a time": dict(quantize=False, batch_size=1, overlap=1 / 4),
    "the CPU default (int8, windows not overlapping)": dict(),
    "fp32, 8 windows a batch": dict(quantize=False, batch_size=8, overlap=1 / 4),
    "fp32, windows not overlapping": dict(quantize=False, batch_size=1, overlap=0),
    "int8 linear layers (x86 engine), one window at a time": dict(quantize="x86", batch_size=1, overlap=1 / 4),
    "int8 linear layers (oneDNN), one window at a time": dict(quantize="onednn", batch_size=1, overlap=1 / 4),
    "int8 (oneDNN), 8 windows a batch": dict(quantize="onednn", batch_size=8, overlap=1 / 4),
    "int8 (oneDNN), 8 windows a batch, overlapping by an eighth": dict(quantize="onednn", batch_size=8, overlap=1 / 8),
    "int8 (oneDNN), windows not overlapping": dict(quantize="onednn", batch_size=1, overlap=0),
    "int8 (oneDNN), 8 windows a batch, not overlapping": dict(quantize="onednn", batch_size=8, overlap=0),
}


def variant(model: str, options: dict) -> Classifier:
    """`model` loaded to run as one variant; a fractional overlap is a share of its window."""
    options = dict(options)
    share = options.pop("overlap", None)
    clf = Classifier.from_pretrained(model, device="cpu", **options)
    if share is not None:
        clf.overlap = int(clf.seq_len * share)
    return clf


def ratios(base: list[float], other: list[float]) -> str:
    """Median of the rounds' speed-ups over `base`, with the lowest and highest."""
    x = [b / o for b, o in zip(base, other)]
    return f"{median(x):.2f} ({min(x):.2f}-{max(x):.2f})" if len(x) > 1 else f"{x[0]:.2f}"


def untrained(size: str, directory: Path) -> Path:
    """An untrained melody bundle of `size` (weights don't change speed), 512-token windows."""
    task = {
        "name": "melody",
        "level": "token",
        "num_classes": 3,
        "arch": "bert",
        "head": {},
        "seq_len": 512,
        "hide_families": [],
    }
    tok = Tokenizer.create("cp", kind="score")
    cfg = BertConfig.preset(size, vocab_sizes=tok.vocab_sizes)
    return save_bundle(
        directory / size,
        build_network(task, cfg),
        cfg,
        tok,
        task=task,
        id2label={0: "melody", 1: "bridge", 2: "accompaniment"},
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", help="packaged names or bundle dirs (default: packaged melody / velocity)")
    p.add_argument("--untrained", nargs="+", default=[], metavar="SIZE", help="also untrained bundles of these presets")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument("--limit", type=int, default=None, help="only the first N test songs")
    p.add_argument("--rounds", type=int, default=3, help="passes over the split, the median reported")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's, one per core)")
    p.add_argument("--data", type=Path, default=DATA)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    models = args.models or [n for n, m in packaged().items() if m["task"] in ("melody", "velocity")]
    tmp = tempfile.TemporaryDirectory()
    models += [str(untrained(size, Path(tmp.name))) for size in args.untrained]
    if not models:
        p.error("no packaged melody / velocity model in this installation: give --models or --untrained")
    print(
        f"POP909 test split ({args.limit or 'all'} songs), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, median of {args.rounds} rounds (lowest-highest)\n"
    )
    print("| model | variant | songs/s | notes/s | x first | songs per CPU-s | x first (CPU) | accuracy % | agree % |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for model in models:
        clfs = {v: variant(model, VARIANTS[v]) for v in args.variants}
        first = clfs[args.variants[0]]
        pieces, sources = split_sources("pop909", args.data, kind=first.tokenizer.config.kind, limit=args.limit)
        wall = {v: [0.0] * args.rounds for v in args.variants}
        cpu = {v: [0.0] * args.rounds for v in args.variants}
        preds = {v: [None] * len(sources) for v in args.variants}
        for clf in clfs.values():
            clf.predict(sources[0])  # warm-up: first-call allocations and kernel selection are not throughput
        for r in range(args.rounds):
            for i, src in enumerate(tqdm(sources, desc=f"{Path(model).name} round {r + 1}/{args.rounds}", leave=False)):
                turn = (i + r) % len(args.variants)
                for v in args.variants[turn:] + args.variants[:turn]:
                    t0, c0 = time.perf_counter(), time.process_time()
                    (preds[v][i],) = clfs[v].predict_batch([src])
                    wall[v][r] += time.perf_counter() - t0
                    cpu[v][r] += time.process_time() - c0
        base = args.variants[0]
        notes = sum(len(p.labels) for p in preds[base])
        name = Path(model).name if Path(model).is_dir() else model
        for v in args.variants:
            acc = score_predictions(preds[v], pieces)["accuracy"]
            same = agreement(preds[v], preds[base])
            w, c = median(wall[v]), median(cpu[v])
            print(
                f"| {name} | {v} | {len(sources) / w:.2f} | {notes / w:,.0f} | {ratios(wall[base], wall[v])} | "
                f"{len(sources) / c:.2f} | {ratios(cpu[base], cpu[v])} | {100 * acc:.2f} | {100 * same:.2f} |",
                flush=True,
            )
    tmp.cleanup()


if __name__ == "__main__":
    main()
