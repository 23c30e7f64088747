"""Runs' results.json joined into one table beside the paper's figures, from Python and from `midibert report`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from midibert import report


def _level(accuracy: float, macro_f1: float) -> dict:
    return {"n": 10, "accuracy": accuracy, "macro_f1": macro_f1, "per_class": {}, "confusion": []}


def _run(
    root: Path,
    name: str,
    task: str,
    model: str,
    primary: str,
    accuracy: float,
    dataset: str = "d",
    split_seed: int = 42,
) -> Path:
    """A run dir holding a results.json as evaluate.write_results writes it (plots left out: not read here)."""
    run = root / name
    run.mkdir(parents=True)
    results = {
        "task": task,
        "model": model,
        "representation": "cp",
        "dataset": dataset,
        "class_names": ["a", "b"],
        "levels": {"window": _level(0.5, 0.4), primary: _level(accuracy, 0.8)},
        "scale": {"layers": 2, "steps": 100},
        "seed": 0,
        "split_seed": split_seed,
    }
    (run / "results.json").write_text(json.dumps(results))
    return run


@pytest.fixture
def runs(tmp_path) -> Path:
    _run(tmp_path / "runs", "melody-bert", "melody", "bert", "note", 0.9512, "pop909")
    _run(tmp_path / "runs" / "nested", "style-rnn", "style", "rnn", "piece", 0.625, "pianist8")
    _run(tmp_path / "runs", "melody-skyline", "melody", "skyline", "note", 0.7)
    return tmp_path / "runs"


def test_table_joins_runs_with_paper(runs):
    text = report.table(report.load_runs([runs / "melody-bert", runs / "nested" / "style-rnn"]))
    lines = text.splitlines()
    assert len(lines) == 4 and lines[0].startswith("| run | task | model |")
    assert lines[2] == (
        "| melody-bert | melody | bert | pop909 | cp | note | 95.12 | 80.00 | 1 | — | — | 50.00 "
        "| layers=2, steps=100 | 96.37 |"
    )
    assert lines[3] == (
        "| style-rnn | style | rnn | pianist8 | cp | piece | 62.50 | 80.00 | 1 | — | — | 50.00 "
        "| layers=2, steps=100 | 60.32 |"
    )


def test_paper_figures_only_beside_the_papers_datasets(tmp_path):
    _run(tmp_path, "melody-bert", "melody", "bert", "note", 0.9, "sample")
    assert report.table(report.load_runs([tmp_path])).splitlines()[2].endswith("| — |")


def test_seeds_give_mean_and_std_and_bert_rows_carry_their_gains(tmp_path):
    for seed, acc in ((1, 0.5), (2, 0.6), (3, 0.7)):
        _run(tmp_path, f"style-bert-seed{seed}", "style", "bert", "piece", acc, "pianist8")
        _run(tmp_path, f"style-scratch-seed{seed}", "style", "bert-scratch", "piece", acc - 0.2, "pianist8")
    _run(tmp_path, "style-rnn", "style", "rnn", "piece", 0.55, "pianist8")
    rows = {
        line.split(" | ")[0][2:]: line.split(" | ")
        for line in report.table(report.load_runs([tmp_path])).splitlines()[2:]
    }
    assert set(rows) == {"style-bert", "style-scratch", "style-rnn"}
    bert = rows["style-bert"]
    assert bert[6] == "60.00 ± 10.00" and bert[8] == "3"
    assert bert[9] == "+20.00" and bert[10] == "+5.00"  # vs scratch, vs BiLSTM
    assert rows["style-scratch"][9] == "—"


def test_a_row_says_when_its_seeds_were_tested_on_different_splits(tmp_path):
    for seed in (1, 2):
        _run(tmp_path, f"emotion-bert-seed{seed}", "emotion", "bert", "piece", 0.5, "emopia", split_seed=seed)
    row = report.table(report.load_runs([tmp_path])).splitlines()[2].split(" | ")
    assert row[8] == "2 (2 splits)"


def test_search_finds_every_run_and_baselines_have_no_paper_figure(runs):
    loaded = report.load_runs([runs])
    assert sorted(Path(r["run_dir"]).name for r in loaded) == ["melody-bert", "melody-skyline", "style-rnn"]
    skyline = next(line for line in report.table(loaded).splitlines() if "skyline" in line)
    assert skyline.endswith("| — |")


def test_missing_results(tmp_path):
    with pytest.raises(FileNotFoundError, match="no results.json"):
        report.load_runs([tmp_path])


def test_cli_report(runs, tmp_path):
    out = tmp_path / "table.md"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "midibert",
            "report",
            str(runs / "melody-bert"),
            str(runs / "nested"),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "| melody-bert |" in done.stdout and "| style-rnn |" in done.stdout and "96.37" in done.stdout
    assert out.read_text() == done.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "midibert", "report", str(tmp_path / "empty")], capture_output=True, text=True
    )
    assert missing.returncode == 2 and "no results.json" in missing.stderr and "Traceback" not in missing.stderr
