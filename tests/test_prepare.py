"""Preparation: arrays and manifest, cache reuse and invalidation, corrupt files, interrupted runs."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from midibert.datasets import prepare as prep
from midibert.datasets.prepare import is_complete, load_split, prepare, read_manifest
from midibert.tokenize import IGNORE
from tests.conftest import good_and_corrupt_folder, shared


@pytest.fixture
def pop909_subset():
    """The real POP909 folder; each test keeps runs tiny with max_pieces."""
    return shared("pop909")


def test_pop909_arrays_labels_and_manifest(tmp_path, pop909_subset):
    out = prepare("pop909", pop909_subset, tmp_path / "p", "cp-score", workers=2, max_pieces=3, progress=False)
    m = read_manifest(out)
    assert m["complete"] and m["note_labels"] == ["melody3", "melody2", "velocity"]
    assert all(c["pieces"] == 3 for c in m["counts"].values()) and not m["skipped"]
    s = load_split(out, "train")
    assert s.ids.ndim == 2 and s.ids.shape[1] == len(m["vocab_sizes"])
    assert s.offsets[0] == 0 and s.offsets[-1] == len(s.ids) == len(s.note_index)
    mel = np.asarray(s.labels["melody3"])
    assert set(np.unique(mel)) <= {IGNORE, 0, 1, 2} and (mel[s.note_index >= 0] >= 0).all()
    assert (np.asarray(s.labels["velocity"])[s.note_index < 0] == IGNORE).all()
    assert [p["id"] for p in s.pieces] == ["001", "002", "003"]
    assert (out / "tokenizer.json").exists() and not list(tmp_path.glob(".*tmp*"))


def test_remi_arrays_are_flat(tmp_path):
    out = prepare(
        "pianist8", shared("pianist8"), tmp_path / "r", "remi-performance", workers=1, max_pieces=1, progress=False
    )
    assert load_split(out, "test").ids.ndim == 1


def test_rerun_reuses_cache_and_config_change_makes_new_dir(tmp_path, monkeypatch, pop909_subset):
    monkeypatch.setenv("MIDIBERT_CACHE", str(tmp_path))
    a = prepare("pop909", pop909_subset, tokenizer="cp-score", workers=1, max_pieces=1, progress=False)
    stamp = (a / "manifest.json").stat().st_mtime_ns
    monkeypatch.setattr(prep, "_write", lambda *a, **k: pytest.fail("cache not reused"))
    assert prepare("pop909", pop909_subset, tokenizer="cp-score", workers=1, max_pieces=1, progress=False) == a
    assert (a / "manifest.json").stat().st_mtime_ns == stamp
    monkeypatch.undo()
    monkeypatch.setenv("MIDIBERT_CACHE", str(tmp_path))
    b = prepare("pop909", pop909_subset, tokenizer="cp-performance", workers=1, max_pieces=1, progress=False)
    assert b != a and b.parent == a.parent


def test_changed_source_file_rebuilds(tmp_path):
    root = tmp_path / "mine"
    shutil.copytree(shared("pianist8", "midi", "Bethel"), root / "Bethel")
    out = prepare("folder", root, tmp_path / "c", "cp-performance", workers=1, progress=False)
    before = read_manifest(out)["sources"]
    victim = sorted(root.rglob("*.mid"))[0]
    victim.write_bytes(victim.read_bytes()[:-1] + b"\x00")
    prepare("folder", root, tmp_path / "c", "cp-performance", workers=1, progress=False)
    assert read_manifest(out)["sources"] != before


def test_corrupt_files_are_skipped_and_listed(tmp_path):
    root = tmp_path / "mixed"
    bad = good_and_corrupt_folder(root, 4)
    out = prepare("folder", root, tmp_path / "c", "cp-performance", workers=2, progress=False)
    m = read_manifest(out)
    assert sum(c["pieces"] for c in m["counts"].values()) == 4
    assert len(m["skipped"]) == len(bad) and all(s["reason"] for s in m["skipped"])


def test_interrupted_run_leaves_no_valid_looking_cache(tmp_path, monkeypatch, pop909_subset):
    calls = {"n": 0}
    real_add = prep._SplitWriter.add

    def failing_add(self, piece, arrays):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("killed mid-run")
        real_add(self, piece, arrays)

    monkeypatch.setattr(prep._SplitWriter, "add", failing_add)
    with pytest.raises(KeyboardInterrupt):
        prepare("pop909", pop909_subset, tmp_path / "k", "cp-score", workers=1, max_pieces=2, progress=False)
    assert not (tmp_path / "k").exists() and list(tmp_path.iterdir()) == []
    assert not is_complete(tmp_path / "k")


def test_half_written_folder_is_not_a_cache(tmp_path):
    (tmp_path / "x" / "train").mkdir(parents=True)
    (tmp_path / "x" / "manifest.json").write_text(json.dumps({"format": 1}))
    assert not is_complete(tmp_path / "x")
    with pytest.raises(FileNotFoundError):
        load_split(tmp_path / "x", "train")


def _good_files(root, n: int = 3) -> None:
    from tests.midi_factory import make_score

    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        make_score({"P": [(j * 240, 240, 60 + (i + j) % 12, 80) for j in range(32)]}).dump_midi(
            str(root / f"good{i}.mid")
        )


def test_tick_overflow_is_skipped_and_every_cached_id_is_in_the_vocabulary(tmp_path, capsys):
    from midibert.cli import main
    from tests.midi_factory import overflow_midi

    root = tmp_path / "mine"
    _good_files(root)
    for tpq in (480, 24):
        (root / f"overflow{tpq}.mid").write_bytes(overflow_midi(tpq))
    assert main(["data", "prepare", "folder", "--path", str(root), "--out", str(tmp_path / "c"), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "skipped 2" in out and out.count("32-bit ticks") == 2
    m = read_manifest(tmp_path / "c")
    assert sum(c["pieces"] for c in m["counts"].values()) == 3
    for s in ("train", "valid", "test"):
        ids = np.asarray(load_split(tmp_path / "c", s).ids)
        assert (ids >= 0).all() and (ids < np.asarray(m["vocab_sizes"])).all()


def test_too_long_pieces_are_skipped_at_a_configurable_limit(tmp_path):
    root = tmp_path / "mine"
    _good_files(root)
    out = prepare("folder", root, tmp_path / "c", "remi-score", workers=1, max_tokens=50, progress=False)
    m = read_manifest(out)
    assert len(m["skipped"]) == 3 and all("over the limit of 50" in s["reason"] for s in m["skipped"])


def test_out_never_replaces_a_user_folder_or_the_source(tmp_path, capsys):
    from midibert.cli import main

    root = tmp_path / "mine"
    _good_files(root)
    mine = tmp_path / "notes"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    (mine / "manifest.json").write_text(json.dumps({"format": 1}))  # a manifest, but not ours
    for out, why in (
        (mine, "not a midibert preparation"),
        (root, "overlap"),
        (root / "cache", "overlap"),
        (tmp_path, "overlap"),
    ):
        assert main(["data", "prepare", "folder", "--path", str(root), "--out", str(out), "--workers", "1"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("midibert: error: output folder") and why in err and err.count("\n") == 1
    assert (mine / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in root.iterdir()) == ["good0.mid", "good1.mid", "good2.mid"]
    (tmp_path / "empty").mkdir()
    assert is_complete(prepare("folder", root, tmp_path / "empty", "cp-score", workers=1, progress=False))


_SLOW_PREPARE = """
import sys, time
import midibert.datasets.prepare as p
real = p._encode
def slow(piece):  # each piece takes a while, so the kill lands mid-run
    time.sleep(1)
    return real(piece)
p._encode = slow
p.prepare("folder", sys.argv[1], sys.argv[2], "cp-score", workers=2, progress=False)
"""


def test_killed_prepare_takes_its_workers_along_and_a_rerun_removes_its_debris(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    psutil = pytest.importorskip("psutil", reason="psutil lists the pool's worker processes")
    root, out = tmp_path / "mine", tmp_path / "c"
    _good_files(root, 12)
    proc = subprocess.Popen([sys.executable, "-c", _SLOW_PREPARE, str(root), str(out)])
    try:
        deadline = time.monotonic() + 60
        while len(psutil.Process(proc.pid).children()) < 2 or not list(tmp_path.glob(".c.tmp-*")):
            assert time.monotonic() < deadline and proc.poll() is None, "prepare never started its workers"
            time.sleep(0.1)
        workers = psutil.Process(proc.pid).children()
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        _, alive = psutil.wait_procs(workers, timeout=10)
        assert not alive, "pool workers outlived their killed parent"
    finally:
        proc.kill()
    assert list(tmp_path.glob(".c.tmp-*")) and not out.exists()  # what the kill left
    assert is_complete(prepare("folder", root, out, "cp-score", workers=1, progress=False))
    assert not list(tmp_path.glob(".c.*"))
