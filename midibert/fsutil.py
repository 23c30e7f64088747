"""File-system and process rules every writer here follows: files and folders appear only once
complete (`atomic_path`, `write_atomic`, `publish_dir`), temporary names carry the writer's pid
(so a rerun can tell debris of a killed run from work in progress), ordinary permissions, and
worker processes that do not outlive their parent."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary name beside `path` to write to: renamed onto `path` when the block ends, deleted
    if it raises, so a reader never sees half a file. The name, `.<name>.tmp-<pid>`, lets
    `remove_stale` clear what a killed writer left; the file gets ordinary permissions.

        with atomic_path("out/song.mid") as tmp:
            score.dump_midi(str(tmp))
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        yield tmp
        ordinary_permissions(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)  # still there only when the block failed


def write_atomic(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write text (UTF-8) or bytes to `path` through `atomic_path`; returns the path."""
    with atomic_path(path) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
    return Path(path)


def publish_dir(tmp: Path, final: Path) -> None:
    """Put the finished folder `tmp` in place of `final`: an older `final` is moved aside first and
    deleted after, so `final` is at every moment either the old folder or the new one, whole."""
    old = final.with_name(f".{final.name}.old-{os.getpid()}")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    """True when a process `pid` exists (also one of another user, which we may not signal)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale(parent: Path, prefix: str) -> list[Path]:
    """Delete `parent/<prefix><pid>...` entries whose process is gone; returns what was deleted.

    Writers name temporaries `<prefix><pid>` or `<prefix><pid>-<more>`: a killed run (SIGKILL, power
    loss) never reaches its own cleanup, so the next run removes its leftovers, but never those of
    a run still alive.
    """
    removed = []
    if not parent.is_dir():
        return removed
    for p in parent.iterdir():
        if not p.name.startswith(prefix):
            continue
        pid = p.name[len(prefix) :].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or pid_alive(int(pid)):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it; put it straight back
    os.umask(mask)
    return mask


def ordinary_permissions(path: Path) -> None:
    """Give `path`, and everything in it if a folder, the mode a plain open() / mkdir() would
    (0644 / 0755 under umask 022).

    mkstemp / mkdtemp (and safetensors) create 0600 / 0700 so that nobody sees a half-written
    file; once complete, a bundle or cache must be readable like any other file its owner makes.
    """
    mask = _umask()
    for p in [path, *(path.rglob("*") if path.is_dir() else ())]:
        if not p.is_symlink():
            p.chmod((0o777 if p.is_dir() else 0o666) & ~mask)


def die_with_parent(parent: int) -> None:
    """Pool initializer: exit as soon as `parent`, the process that started the pool, is gone.

    Nothing tells a pool worker that a SIGKILL took its parent: it would finish its tasks and
    wait for more, for minutes. Orphans are re-parented at once, so a changed parent means exit.
    The pid comes from the parent rather than from `os.getppid()` here: a parent killed while
    this worker was still starting would otherwise be missed, its successor taken for it.
    """

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
