"""Linear probe of the packaged (or any) encoders on the piece-level datasets: a logistic
regression on frozen piece embeddings, beside the same regression on a random-weight encoder of
the same size and on the note statistics, one Markdown table.

    python benchmarks/linear_probe.py --data DATA_ROOT                 # style (Pianist8), emotion (EMOPIA)
    python benchmarks/linear_probe.py --data DATA_ROOT --encoder midibert-small-score
    python benchmarks/linear_probe.py --sample                          # the generated corpus, no data needed

Each dataset is read from DATA_ROOT/<folder> (as `midibert data download` lays it out); EMOPIA is
split by song with `--split-seed`, Pianist8 by its published split.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from tqdm import tqdm

from midibert.probe import linear_probe, table

DATASETS = {"pianist8": "pianist8", "emopia": "emopia"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="folder holding one folder per dataset")
    p.add_argument("--sample", action="store_true", help="the generated corpus instead (style labels)")
    p.add_argument("--encoder", default="midibert-small-performance", help="packaged name, bundle or Hub id")
    p.add_argument("--split-seed", type=int, default=42)
    args = p.parse_args()
    results, started = {}, time.monotonic()
    if args.sample:
        with tempfile.TemporaryDirectory() as tmp:
            results["sample (style)"] = linear_probe("sample", tmp, encoder=args.encoder, label_key="style")
    else:
        for name, folder in DATASETS.items():
            results[name] = linear_probe(
                name, f"{args.data}/{folder}", encoder=args.encoder, split_seed=args.split_seed, progress=tqdm
            )
    print(f"encoder: {args.encoder}; {time.monotonic() - started:.0f} s\n")
    print(table(results))


if __name__ == "__main__":
    main()
