"""One markdown table joining the results.json of many runs, beside the MidiBERT-Piano paper's figures.

Example::

    from midibert import report
    print(report.table(report.load_runs(["runs/"])))
"""
from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

# MidiBERT-Piano (Chou et al., 2021), CP representation: test accuracy in %.
# "style" is the paper's composer classification (Pianist8); the baselines have no paper figure.
PAPER = {
    "bert": {"melody": 96.37, "velocity": 51.63, "style": 78.57, "emotion": 67.89},
    "rnn": {"melody": 88.66, "velocity": 43.77, "style": 60.32, "emotion": 54.13},
}
_COLUMNS = ("run", "task", "model", "dataset", "repr", "level", "accuracy %", "macro-F1 %", "window acc %",
            "scale", "paper %")


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


def _row(run: dict) -> list[str]:
    """One table row for one run."""
    level = _primary_level(run["levels"])
    primary, window = run["levels"][level], run["levels"].get("window")
    paper = PAPER.get(run["model"], {}).get(run["task"])
    scale = ", ".join(f"{k}={v}" for k, v in run.get("scale", {}).items())
    return [Path(run["run_dir"]).name, run["task"], run["model"], run.get("dataset", "?"), run["representation"],
            level, f"{100 * primary['accuracy']:.2f}", f"{100 * primary['macro_f1']:.2f}",
            f"{100 * window['accuracy']:.2f}" if window else "—", scale or "—",
            f"{paper:.2f}" if paper is not None else "—"]


def table(runs: Sequence[dict]) -> str:
    """Markdown table, one row per run, sorted by task then model."""
    rows = [_row(r) for r in sorted(runs, key=lambda r: (r["task"], r["model"], r.get("run_dir", "")))]
    lines = ["| " + " | ".join(_COLUMNS) + " |", "|" + "|".join(" --- " for _ in _COLUMNS) + "|"]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows]) + "\n"


def main(paths: Sequence[str | os.PathLike], out: str | os.PathLike | None = None) -> str:
    """Print the table of the runs under ``paths``, write it to ``out`` too if given, and return it."""
    text = table(load_runs(paths))
    print(text, end="")
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(text)
    return text
