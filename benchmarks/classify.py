"""Inference throughput: `predict_batch` (32 windows a batch) vs one window at a time.

    python benchmarks/classify.py [--sizes bert-small bert-base] [--limit N]

Songs are the POP909 test split (MidiBERT's ids). The models are untrained melody bundles
(weights don't change speed), saved and loaded like real ones. Both modes run the same code
path, `Classifier.predict_batch`, in the same process: batch_size=1 calls the network on each
window alone. Timings include tokenization, which both modes pay alike.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from midibert.bundle import save_bundle
from midibert.classify import Classifier
from midibert.model import BertConfig
from midibert.network import build_network
from midibert.tokenize import Tokenizer

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "pop909"
TASK = {"name": "melody", "level": "token", "num_classes": 3, "arch": "bert", "head": {}, "seq_len": 512,
        "hide_families": []}


def bundle(size: str, directory: Path) -> Path:
    """An untrained melody bundle of `size`."""
    tok = Tokenizer.create("cp", kind="score")
    cfg = BertConfig.preset(size, vocab_sizes=tok.vocab_sizes)
    return save_bundle(directory / size, build_network(TASK, cfg), cfg, tok, task=TASK,
                       id2label={0: "melody", 1: "bridge", 2: "accompaniment"})


def throughput(clf: Classifier, files: list[Path]) -> tuple[float, int, int]:
    """(seconds, notes, windows) to classify every file."""
    clf.predict(files[0])  # warm-up: first-call allocations and kernel selection are not throughput
    t0 = time.perf_counter()
    results = clf.predict_batch(files)
    seconds = time.perf_counter() - t0
    return seconds, sum(len(r.labels) for r in results), sum(len(clf._windows(r.encoding)) for r in results)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", nargs="+", default=["bert-small", "bert-base"])
    p.add_argument("--limit", type=int, default=0, help="only the first N test songs")
    p.add_argument("--data", type=Path, default=DATA)
    args = p.parse_args()
    ids = (args.data / "splits_midibert" / "test.txt").read_text().split()
    files = [args.data / "POP909" / i / f"{i}.mid" for i in ids][: args.limit or None]
    print(f"{len(files)} POP909 test songs, torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| model | mode | windows | songs/s | notes/s | speedup |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            path = bundle(size, Path(tmp))
            base = None
            for mode, batch in (("one window at a time", 1), ("predict_batch, 32 windows", 32)):
                seconds, notes, windows = throughput(Classifier.from_pretrained(path, batch_size=batch), files)
                base = base or seconds
                print(f"| {size} | {mode} | {windows} | {len(files) / seconds:.2f} | {notes / seconds:.0f} | "
                      f"{base / seconds:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
