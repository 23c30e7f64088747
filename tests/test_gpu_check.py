"""benchmarks/gpu_check.py end to end at tiny size on the CPU, so the prepared GPU run is known to
work before a GPU is available: every stage reports, and each stops on time, not on steps.

The tiny run is `slow`: its dozen processes each import torch (and most Lightning), 70 s of CPU
time in all. Without it the suite still checks the plan and the run without data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT, SHARED_DATA, script

SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def _script():
    return script(SCRIPT)


def _gpu_check(*args: str, timeout: float) -> tuple[dict, str, str]:
    """Run the script; its JSON, markdown table and printed output."""
    out = Path(args[args.index("--out") + 1])
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return json.loads((out / "gpu_check.json").read_text()), (out / "gpu_check.md").read_text(), proc.stdout


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One --tiny run on the real data when present (a few pieces each), else the generated corpus."""
    tmp = tmp_path_factory.mktemp("gpu_check")
    args = ("--tiny", "--out", str(tmp / "out"), "--work", str(tmp / "work"), "--data-root", str(SHARED_DATA))
    result, md, _ = _gpu_check(*args, timeout=sum(_script().TINY.limits.values()))
    return result, md, tmp


@pytest.mark.slow
def test_every_stage_reports_in_the_json_and_the_table(tiny_run):
    result, md, _ = tiny_run
    assert set(result["stages"]) == {"throughput", "pretrain", "melody", "classify"}
    for name, stage in result["stages"].items():
        assert stage["status"] == "ok", (name, stage["status"])  # on a CPU at tiny size every stage runs
    lines = md.splitlines()
    assert lines[0].startswith(result["device"]["name"]) and "| stage | what | measured | goal / reference |" in lines
    for n in (1, 2, 3, 4):
        assert any(line.startswith(f"| {n} |") for line in lines), n


@pytest.mark.slow
def test_throughput_compares_with_hugging_face_or_says_why_not(tiny_run):
    result, md, _ = tiny_run
    t = result["stages"]["throughput"]
    rows = {r["name"]: r for r in t["rows"]}
    assert rows["midibert"]["tokens_per_s"] > 0 and rows["midibert"]["peak_mb"] > 0
    assert rows["midibert, one window half padding (mask)"]["tokens_per_s"] > 0
    assert rows["midibert, AdamW not fused"]["fused"] is False
    hf = rows["HF BERT (sdpa)"]
    try:
        import transformers  # noqa: F401

        assert hf["tokens_per_s"] > 0 and t["x_hf_speed"] > 0 and t["x_hf_memory"] > 0
    except ImportError:
        assert hf["skipped"] == "skipped: transformers not installed"
    assert rows["midibert, torch.compile"]["skipped"].startswith("skipped: not at --tiny size")
    if not result["device"]["cuda"]:  # no bf16 peak to measure utilisation against
        assert t["mfu"]["status"].startswith("skipped: no CUDA device") and "| 1 | MFU | skipped: no CUDA device" in md
    assert {t["sdpa"]["no mask"]["kernel"], t["sdpa"]["padding mask"]["kernel"]} <= {
        "flash",
        "cudnn",
        "efficient",
        "math",
    }


@pytest.mark.slow
def test_data_stages_stop_on_time_and_report_against_the_paper(tiny_run):
    result, md, tmp = tiny_run
    p = result["stages"]["pretrain"]
    assert p["steps"] >= 1 and p["seconds"] >= p["train_s"]  # stopped by its time budget, not a step count
    assert set(p["val_acc"]) == {"Bar", "Position", "Pitch", "Duration"} == set(p["val_baseline"])
    assert all(0 <= v <= 1 for v in [*p["val_acc"].values(), *p["val_baseline"].values()])
    assert p["corpus"] == (["pop1k7", "asap", "pop909", "pianist8"] if result["real_data"] else ["sample"])
    m = result["stages"]["melody"]
    for arch, paper in (("bert", 96.37), ("rnn", 88.66)):
        assert m[arch]["status"] == "ok" and 0 <= m[arch]["accuracy"] <= 1 and m[arch]["notes"] > 0
        assert m[arch]["seconds"] >= m[arch]["train_s"] and f"paper {paper:.2f} %" in md
    c = result["stages"]["classify"]
    assert c["songs"] == 3 and c["speedup"] > 0 and c["windows"] >= c["songs"]
    assert c["source"] == ("POP909 test split" if result["real_data"] else "generated pieces")


def test_full_plan_fits_its_minutes_and_tiny_needs_no_data(tmp_path):
    gc = _script()
    plan = gc.full_plan(9)
    assert sum(plan.limits.values()) <= 9 * 60
    for stage in ("pretrain", "melody"):  # training leaves time for start-up, validation and testing
        assert 0 < plan.train_seconds(stage, plan.limits[stage]) < plan.limits[stage]
    assert gc.data_check(tmp_path, tiny=True) == (False, None)  # --tiny falls back to the generated corpus
    assert gc._clock(3725) == "00:01:02:05"


def test_without_data_the_data_stages_say_why_and_the_rest_is_written(tmp_path):
    none = tmp_path / "none"
    result, md, printed = _gpu_check(
        "--out", str(tmp_path / "out"), "--data-root", str(none), "--stages", "pretrain", "melody", timeout=600
    )
    why = f"skipped: no pop909, asap, pianist8, pop1k7 under {none}"
    assert not result["real_data"] and "bf16 peak assumed" in printed
    for n, stage in ((2, "pretrain"), (3, "melody")):
        assert result["stages"][stage]["status"].startswith(why) and f"| {n} | {stage} | {why}" in md
    for n, stage in ((1, "throughput"), (4, "classify")):
        assert result["stages"][stage]["status"] == "not run" and f"| {n} | {stage} | not run |" in md
