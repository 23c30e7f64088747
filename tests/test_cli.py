"""The `midibert` command line: tokenize prints names and JSON, bad files give a clear error."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import good_and_corrupt_folder, shared


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "midibert", *args], capture_output=True, text=True)


def test_tokenize_prints_compound_tokens(songs):
    out = run("tokenize", str(songs[0]), "--representation", "cp")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "Bar Position Pitch Duration" in lines[0]
    assert any("Pitch_" in line and "# note" in line for line in lines[1:])


def test_tokenize_json(songs):
    out = run("tokenize", str(songs[0]), "--representation", "remi", "--kind", "performance", "--json")
    d = json.loads(out.stdout)
    assert d["tokenizer"] == "remi-performance" and len(d["ids"]) == len(d["note_index"]) == len(d["tokens"])


def test_tokenize_bad_file(tmp_path):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not midi" * 10)
    out = run("tokenize", str(bad))
    assert out.returncode == 2 and "bad.mid" in out.stderr and "Traceback" not in out.stderr


def test_data_prepare_skips_bad_files(tmp_path):
    root = tmp_path / "mine"
    bad = good_and_corrupt_folder(root, 3)
    out = run("data", "prepare", "folder", "--path", str(root), "--out", str(tmp_path / "c"), "--workers", "1")
    assert out.returncode == 0, out.stderr
    assert f"skipped {len(bad)}" in out.stdout and all(p.name in out.stdout for p in bad)


def test_data_stats_counts_the_published_split():
    stats = json.loads(run("data", "stats", "pianist8", "--path", str(shared("pianist8")), "--json").stdout)
    assert stats["pieces"] == {"train": 337, "valid": 37, "test": 37}


def test_data_stats_table_and_json(tmp_path):
    table = run("data", "stats", "sample", "--path", str(tmp_path / "sample"))
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0] == "# sample" and lines[1].split() == ["train", "valid", "test", "all"]
    rows = {line.rsplit(None, 4)[0]: [int(c) for c in line.split()[-4:]] for line in lines[2:]}
    stats = json.loads(run("data", "stats", "sample", "--path", str(tmp_path / "sample"), "--json").stdout)
    assert rows["pieces"] == [*stats["pieces"].values(), sum(stats["pieces"].values())]
    for style, counts in stats["style"]["train"].items():
        assert rows[f"style {style}"][0] == counts


def test_data_errors_are_one_line(tmp_path):
    for args in (
        ("data", "prepare", "nope"),
        ("data", "stats", "pop909", "--path", str(tmp_path / "absent")),
        ("report", str(tmp_path)),
    ):
        out = run(*args)
        assert out.returncode == 2 and out.stderr.startswith("midibert: error:") and "Traceback" not in out.stderr, args


def test_plot_curves_and_confusion(tmp_path):
    logs = tmp_path / "run" / "logs"
    logs.mkdir(parents=True)
    (logs / "metrics.csv").write_text("epoch,step,train/loss,val/loss\n0,0,2.0,\n0,10,1.0,\n0,10,,1.5\n0,20,0.5,\n")
    (tmp_path / "run" / "confusion_note.json").write_text(
        json.dumps({"class_names": ["melody", "bridge", "accompaniment"], "matrix": [[5, 1, 0], [0, 2, 1], [1, 0, 9]]})
    )
    curves = run("plot", "curves", str(tmp_path / "run"), "--out", str(tmp_path / "c.png"))
    assert curves.returncode == 0, curves.stderr
    cm = run("plot", "confusion", str(tmp_path / "run"), "--counts")
    assert cm.returncode == 0, cm.stderr
    for png in (tmp_path / "c.png", tmp_path / "run" / "confusion_note.png"):
        assert png.read_bytes()[:4] == b"\x89PNG" and str(png) in curves.stdout + cm.stdout
    missing = run("plot", "confusion", str(tmp_path / "run"), "--level", "piece")
    assert missing.returncode == 2 and "confusion_piece.json" in missing.stderr
