"""The `midibert` command line: tokenize prints names and JSON, bad files give a clear error."""
from __future__ import annotations

import json
import subprocess
import sys


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "midibert", *args], capture_output=True, text=True)


def test_tokenize_prints_compound_tokens(pop909_files):
    out = run("tokenize", str(pop909_files[0]), "--representation", "cp")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "Bar Position Pitch Duration" in lines[0]
    assert any("Pitch_" in line and "# note" in line for line in lines[1:])


def test_tokenize_json(pop909_files):
    out = run("tokenize", str(pop909_files[0]), "--representation", "remi", "--kind", "performance", "--json")
    d = json.loads(out.stdout)
    assert d["tokenizer"] == "remi-performance" and len(d["ids"]) == len(d["note_index"]) == len(d["tokens"])


def test_tokenize_bad_file(tmp_path):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not midi" * 10)
    out = run("tokenize", str(bad))
    assert out.returncode == 2 and "bad.mid" in out.stderr and "Traceback" not in out.stderr
