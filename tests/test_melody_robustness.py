"""benchmarks/melody_robustness.py: its variants use the shipped recipe, its table, and (slow) the
whole run at toy size on the CPU, so the prepared GPU run is known to work before a GPU is lent."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, SHARED_DATA, script

SCRIPT = ROOT / "benchmarks" / "melody_robustness.py"


def _script():
    return script(SCRIPT)


def test_variants_start_from_the_release_recipe_and_augment_only_with_known_names():
    from midibert.augment import check

    m = _script()
    recipe = m.recipe()
    assert "+task.data.options.timing=both" in recipe and any(r.startswith("trainer.max_steps=") for r in recipe)
    assert m.VARIANTS["release"] == [] and all(check(v) == tuple(v) for v in m.VARIANTS.values())


def test_table_averages_seeds_and_lists_failures():
    m = _script()
    run = {"variant": "tempo", "augment": ["tempo"], "train_s": 10.0}
    rows = [
        {**run, "seed": 1, "beats": {"accuracy": 0.90}, "raw": {"accuracy": 0.88, "skyline": 0.6}},
        {**run, "seed": 2, "beats": {"accuracy": 0.92}, "raw": {"accuracy": 0.86, "skyline": 0.6}},
        {"variant": "jitter", "seed": 1, "status": "failed (1): boom"},
    ]
    table = m.markdown(rows)
    assert "| tempo | tempo | 2 | 91.00% (90.00% / 92.00%) | 87.00% (88.00% / 86.00%) | 60.00% | 10 |" in table
    assert "jitter seed 1: failed (1): boom" in table and "| jitter |" not in table


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_DATA / "pop909").is_dir(), reason="needs POP909 (../shared/data/pop909)")
def test_tiny_run_scores_each_variant_and_keeps_the_named_bundle(tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, str(SCRIPT), "--tiny", "--out", str(out), "--variants", "release", "all", "--seeds", "1",
           "--parallel", "2", "--work", str(tmp_path / "w"), "--data-root", str(SHARED_DATA), "--keep", "all-1"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    runs = json.loads((out / "robustness.json").read_text())["runs"]
    assert sorted(r["variant"] for r in runs) == ["all", "release"]
    assert all(0 < r["raw"]["accuracy"] <= 1 and 0 < r["beats"]["accuracy"] <= 1 for r in runs)
    assert (out / "all-1.tar").is_file() and "| all |" in (out / "robustness.md").read_text()
