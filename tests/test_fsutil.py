"""fsutil: files and folders appear only once complete, and a killed writer's debris is cleared."""

from __future__ import annotations

import os
import stat

import pytest

from midibert.fsutil import atomic_path, publish_dir, remove_stale, write_atomic


def test_write_atomic_writes_text_and_bytes_with_ordinary_permissions(tmp_path):
    path = write_atomic(tmp_path / "a" / "x.json", "{}\n")
    assert path.read_text() == "{}\n" and write_atomic(path, b"\x00").read_bytes() == b"\x00"
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]  # no temporary left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = write_atomic(tmp_path / "x.txt", "old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["x.txt"]


def test_a_killed_writers_temporary_is_removed_by_the_next_run(tmp_path):
    with atomic_path(tmp_path / "x.txt") as tmp:
        tmp.write_text("done")
        name = tmp.name
    dead = tmp_path / name.replace(str(os.getpid()), "999999999", 1)  # a pid no process has
    dead.write_text("debris")
    assert remove_stale(tmp_path, ".x.txt.tmp-") == [dead]


def test_publish_dir_replaces_a_folder_whole(tmp_path):
    final, new = tmp_path / "out", tmp_path / ".out.tmp"
    final.mkdir()
    (final / "old").write_text("1")
    new.mkdir()
    (new / "new").write_text("2")
    publish_dir(new, final)
    assert [p.name for p in final.iterdir()] == ["new"] and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_a_worker_whose_parent_died_before_it_started_watching_exits():
    import subprocess
    import sys

    # the child is told its parent was a pid it was never a child of: that is what it sees when
    # the real parent was killed before the pool initializer ran (it has been re-parented already)
    gone = os.getpid() + 1
    code = f"import time; from midibert.fsutil import die_with_parent; die_with_parent({gone}); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code])
    try:
        assert proc.wait(timeout=20) == 1
    finally:
        proc.kill()


def test_a_worker_keeps_running_while_its_parent_lives():
    import subprocess
    import sys

    code = "import os, time; from midibert.fsutil import die_with_parent; die_with_parent(os.getppid()); time.sleep(2)"
    assert subprocess.run([sys.executable, "-c", code], timeout=30).returncode == 0
