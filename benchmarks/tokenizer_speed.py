"""Tokenizer throughput: midibert (CP and REMI, score and performance) vs MidiTok's REMI.

    python benchmarks/tokenizer_speed.py ../shared/data/pop909/POP909 [--limit N]

Both sides parse with symusic and run single-process on the same files in one run, so the
ratio is tokenization work alone. Needs `pip install miditok` (the `bench` extra).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import symusic

from midibert import MidiError
from midibert.tokenize import Tokenizer


def timed(fn, files) -> tuple[float, int]:
    """Seconds to run fn on every file, and how many failed."""
    failed = 0
    t0 = time.perf_counter()
    for f in files:
        try:
            fn(f)
        except (MidiError, RuntimeError, ValueError):
            failed += 1
    return time.perf_counter() - t0, failed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("dir", type=Path)
    p.add_argument("--limit", type=int, default=0, help="only the first N files")
    args = p.parse_args()
    files = sorted(f for f in args.dir.rglob("*") if f.suffix.lower() in (".mid", ".midi"))
    files = files[: args.limit] if args.limit else files
    notes = sum(symusic.Score(str(f)).note_num() for f in files)
    print(f"{len(files)} files, {notes} notes in {args.dir}")

    from miditok import REMI, TokenizerConfig

    miditok = REMI(TokenizerConfig())
    runs = {"MidiTok REMI()": lambda f: miditok.encode(symusic.Score(str(f)))}
    for spec in ("remi-score", "remi-performance", "cp-score", "cp-performance"):
        runs[f"midibert {spec}"] = Tokenizer.from_spec(spec).encode
    for fn in runs.values():  # warm imports and caches on a few files, off the clock
        timed(fn, files[:3])

    base = None
    print("| tokenizer | files/s | notes/s | x MidiTok REMI |\n|---|---:|---:|---:|")
    for name, fn in runs.items():
        secs, failed = timed(fn, files)
        base = base or secs
        print(
            f"| {name} | {len(files) / secs:,.0f} | {notes / secs:,.0f} | {base / secs:.1f} |"
            + (f" ({failed} failed)" if failed else "")
        )


if __name__ == "__main__":
    main()
