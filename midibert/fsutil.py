"""File-system and process rules every writer here follows: temporary names that carry the
writer's pid (so a rerun can tell debris of a killed run from work in progress), ordinary
permissions, and worker processes that do not outlive their parent."""
from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path


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
        pid = p.name[len(prefix):].split("-", 1)[0]
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


def die_with_parent() -> None:
    """Call in a pool worker: exit as soon as the process that started it is gone.

    Nothing tells a pool worker that a SIGKILL took its parent: it would finish its tasks and
    wait for more, for minutes. Orphans are re-parented at once, so a changed parent means exit.
    """
    ppid = os.getppid()

    def watch() -> None:
        while os.getppid() == ppid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
