"""One markdown table joining the results.json of many runs, beside the MidiBERT-Piano paper's figures.

Example::

    from midibert import report
    print(report.table(report.load_runs(["runs/"])))
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from midibert.tasks import REGISTRY

_COLUMNS = (
    "run",
    "task",
    "model",
    "dataset",
    "repr",
    "level",
    "accuracy %",
    "macro-F1 %",
    "seeds",
    "vs scratch",
    "vs BiLSTM",
    "window acc %",
    "scale",
    "paper %",
)
SEED_SUFFIX = re.compile(r"-seed\d+$")


def load_runs(paths: Sequence[str | os.PathLike]) -> list[dict]:
    """The results of each run dir given, or of every results.json found under a dir; each with its "run_dir"."""
    files: list[Path] = []
    for p in map(Path, paths):
        found = [p / "results.json"] if (p / "results.json").is_file() else sorted(p.rglob("results.json"))
        if not found:
            raise FileNotFoundError(f"no results.json in or under {p}")
        files += found
    return [{**json.loads(f.read_text()), "run_dir": str(f.parent)} for f in files]


def _primary_level(levels: dict) -> str:
    """The level the paper reports: notes for token tasks, pieces for sequence tasks, else windows."""
    return next((level for level in ("note", "piece") if level in levels), "window")


def _groups(runs: Sequence[dict]) -> dict[tuple, list[dict]]:
    """Runs that differ only by seed (`<name>-seed<n>` in one folder), together."""
    groups: dict[tuple, list[dict]] = {}
    for r in sorted(runs, key=lambda r: (r["task"], r["model"], r.get("run_dir", ""))):
        d = Path(r["run_dir"])
        key = (
            str(d.parent),
            SEED_SUFFIX.sub("", d.name),
            r["task"],
            r["model"],
            r.get("dataset", "?"),
            r["representation"],
        )
        groups.setdefault(key, []).append(r)
    return groups


def _stat(runs: list[dict], key: str, level: str | None = None) -> list[float]:
    return [
        100 * r["levels"][level or _primary_level(r["levels"])][key]
        for r in runs
        if (level or _primary_level(r["levels"])) in r["levels"]
    ]


def _fmt(values: list[float]) -> str:
    """One figure, or mean ± sample standard deviation over seeds."""
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}"


def _seeds(group: list[dict]) -> str:
    """How many runs a row joins, and on how many test splits where that is more than one."""
    splits = {r.get("split_seed") for r in group}
    return f"{len(group)}" + (f" ({len(splits)} splits)" if len(splits) > 1 else "")


def table(runs: Sequence[dict]) -> str:
    """Markdown table, one row per run (runs repeated with several seeds: one row, mean ± std),
    sorted by task then model. A pre-trained BERT's row carries its gain over the same run's
    scratch BERT and BiLSTM on the same task and dataset."""
    groups = _groups(runs)
    # (folder, task, dataset, repr, model) -> mean accuracy, to find a row's scratch and BiLSTM peers
    peers = {(k[0], k[2], k[4], k[5], k[3]): float(np.mean(_stat(g, "accuracy"))) for k, g in groups.items()}

    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "|".join(" --- " for _ in _COLUMNS) + "|"]
    for key, group in groups.items():
        _, name, task, model, dataset, representation = key
        level = _primary_level(group[0]["levels"])
        gains = []
        for base in ("bert-scratch", "rnn"):
            ref = peers.get((key[0], task, dataset, representation, base)) if model == "bert" else None
            own = peers[key[0], task, dataset, representation, model]
            gains.append(f"{own - ref:+.2f}" if ref is not None else "—")
        # MidiBERT-Piano's figure (`Task.paper`), only beside runs on the dataset it was measured on
        spec = REGISTRY.get(task)
        paper = spec.paper.get(model) if spec and spec.dataset == dataset else None
        scale = ", ".join(f"{k}={v}" for k, v in group[0].get("scale", {}).items() if k != "pretrained")
        row = [
            name,
            task,
            model,
            dataset,
            representation,
            level,
            _fmt(_stat(group, "accuracy")),
            _fmt(_stat(group, "macro_f1")),
            _seeds(group),
            *gains,
            _fmt(_stat(group, "accuracy", "window")),
            scale or "—",
            f"{paper:.2f}" if paper is not None else "—",
        ]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main(paths: Sequence[str | os.PathLike], out: str | os.PathLike | None = None) -> str:
    """Print the table of the runs under ``paths``, write it to ``out`` too if given, and return it."""
    text = table(load_runs(paths))
    print(text, end="")
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)
    return text
