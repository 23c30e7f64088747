"""Dataset preparation: `midibert data prepare` (worker processes, cached arrays) vs a
single-process MidiTok REMI loop over the same files, time and peak memory, in one run.

    python benchmarks/prepare.py [--datasets pop909 pop1k7] [--workers 2] [--tokenizer cp-performance]

Each side runs in a fresh child process so its peak RSS (the process plus its workers) is its
own. The cache goes to a temporary folder, so the midibert side always tokenizes from scratch.
Needs `pip install miditok` (the `bench` extra).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time


def _ours(datasets: list[str], tokenizer: str, workers: int, cache: str) -> dict:
    from midibert.datasets.prepare import prepare, read_manifest

    files = tokens = 0
    for name in datasets:
        m = read_manifest(prepare(name, None, f"{cache}/{name}", tokenizer, workers, progress=False))
        files += sum(c["pieces"] for c in m["counts"].values()) + len(m["skipped"])
        tokens += sum(c["tokens"] for c in m["counts"].values())
    return {"files": files, "tokens": tokens}


def _miditok(datasets: list[str]) -> dict:
    import symusic
    from miditok import REMI, TokenizerConfig

    from midibert.datasets import read

    tok = REMI(TokenizerConfig())
    files = tokens = 0
    for name in datasets:
        for piece in read(name):
            try:
                seq = tok.encode(symusic.Score(str(piece.path)))
            except Exception:  # noqa: BLE001  (count what fails, like prepare's skipped list)
                continue
            files += 1
            tokens += sum(len(s.ids) for s in seq) if isinstance(seq, list) else len(seq.ids)
    return {"files": files, "tokens": tokens}


def _child(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as cache:
        res = (
            _ours(args.datasets, args.tokenizer, args.workers, cache)
            if args.side == "midibert"
            else _miditok(args.datasets)
        )
    res["seconds"] = time.perf_counter() - start
    peak = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    )
    res["peak_mib"] = peak / 1024  # ru_maxrss is KiB on Linux; the largest single process
    print(json.dumps(res))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--datasets", nargs="+", default=["pop909", "pop1k7"])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--tokenizer", default="cp-performance")
    p.add_argument("--side", choices=("midibert", "miditok"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.side:
        return _child(args)
    rows = {}
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for side in ("midibert", "miditok"):
        cmd = [
            sys.executable,
            __file__,
            "--side",
            side,
            "--workers",
            str(args.workers),
            "--tokenizer",
            args.tokenizer,
            "--datasets",
            *args.datasets,
        ]
        rows[side] = json.loads(
            subprocess.run(
                cmd, check=True, capture_output=True, text=True, cwd=os.getcwd(), env={**os.environ, "PYTHONPATH": root}
            ).stdout
        )
    ours, base = rows["midibert"], rows["miditok"]
    print("| run | files | tokens | seconds | peak MiB (largest process) |\n|---|---:|---:|---:|---:|")
    print(
        f"| midibert prepare {args.tokenizer}, {args.workers} workers | {ours['files']} | {ours['tokens']} | "
        f"{ours['seconds']:.1f} | {ours['peak_mib']:.0f} |"
    )
    print(
        f"| MidiTok REMI loop, 1 process | {base['files']} | {base['tokens']} | {base['seconds']:.1f} | "
        f"{base['peak_mib']:.0f} |"
    )
    print(f"speed-up: {base['seconds'] / ours['seconds']:.1f}x")


if __name__ == "__main__":
    main()
