"""What importing midibert's entry modules costs, against importing torch alone.

    python benchmarks/import_time.py [--repeats 5] [--modules midibert.classify torch]

Each import runs in a fresh interpreter, `--repeats` times; the table gives the median wall and
CPU seconds (CPU time is the steadier figure on a shared machine), and which heavy libraries the
import left in `sys.modules`. A last run under `python -X importtime` names the packages that took
longest, cumulative.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

MODULES = [
    "midibert",
    "midibert.tokenize",
    "midibert.bundle",
    "midibert.classify",
    "torch",
    "midibert.training.finetuner",
]
HEAVY = ["torch", "pytorch_lightning", "sklearn", "matplotlib", "hydra", "wandb"]
PROBE = """import json, sys, time
t, c = time.perf_counter(), time.process_time()
import {module}
t, c = time.perf_counter() - t, time.process_time() - c
print(json.dumps({{"wall": t, "cpu": c, "loaded": [m for m in {heavy!r} if m in sys.modules]}}))
"""


def measure(module: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module, heavy=HEAVY)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout)


def heaviest(module: str, n: int = 4) -> list[tuple[str, float]]:
    """Packages other than midibert by cumulative import time under -X importtime (seconds);
    one imported inside another counts in both (numpy inside torch)."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"], capture_output=True, text=True, check=True
    ).stderr
    totals = {}
    for line in err.splitlines():
        fields = line.removeprefix("import time:").split("|")
        if len(fields) == 3 and fields[1].strip().isdigit():
            name = fields[2].strip()
            if "." not in name and name != "midibert":  # a package's own line holds all its submodules
                totals[name] = int(fields[1]) / 1e6
    return sorted(totals.items(), key=lambda kv: -kv[1])[:n]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--modules", nargs="+", default=MODULES)
    args = p.parse_args()
    print(
        "| import | wall s (median) | CPU s (median) | heavy libraries loaded | slowest packages (s, -X importtime) |"
    )
    print("|---|---:|---:|---|---|")
    for module in args.modules:
        runs = [measure(module) for _ in range(args.repeats)]
        wall, cpu = (statistics.median(r[k] for r in runs) for k in ("wall", "cpu"))
        top = ", ".join(f"{name} {secs:.2f}" for name, secs in heaviest(module))
        print(f"| `{module}` | {wall:.2f} | {cpu:.2f} | {', '.join(runs[0]['loaded']) or '—'} | {top} |", flush=True)


if __name__ == "__main__":
    main()
