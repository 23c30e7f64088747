"""Fetch a dataset archive named in midibert/data/datasets.json: resumable, verified (the
archive's SHA-256 where recorded, else every file the readers use against the shipped per-file
checksums), extracted safely (nothing written outside the target, whatever the members) and
atomically."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tarfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import IO

from tqdm import tqdm

from midibert.datasets import checksums
from midibert.datasets.base import cache_root, get_info
from midibert.datasets.checksums import CHUNK, sha256
from midibert.fsutil import publish_dir, remove_stale


class UnsafeArchive(ValueError):
    """An archive member could write outside the extraction folder (or through a link)."""


class ChecksumError(ValueError):
    """A download does not match its recorded SHA-256 or per-file checksums (or none are recorded)."""


def load_manifest(path: str | os.PathLike | None = None) -> dict:
    """The download manifest: dataset name -> url, sha256, strip, license ..."""
    text = Path(path).read_text() if path else resources.files("midibert").joinpath("data", "datasets.json").read_text()
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def fetch(url: str, dest: Path, progress: bool = True) -> Path:
    """Download `url` to `dest`, resuming a `dest.part` left by an interrupted run.

    The server may ignore the Range request (file:// URLs always do); the partial file is then
    started over rather than corrupted by appending a full body.
    """
    if dest.exists():
        return dest
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    with urllib.request.urlopen(req) as resp:  # noqa: S310  (URLs come from our manifest or the user)
        resumed = have and getattr(resp, "status", None) == 206
        total = resp.headers.get("Content-Length")
        total = int(total) + (have if resumed else 0) if total else None
        with (
            open(part, "ab" if resumed else "wb") as f,
            tqdm(
                total=total,
                initial=have if resumed else 0,
                unit="B",
                unit_scale=True,
                desc=dest.name,
                disable=not progress,
            ) as bar,
        ):
            while block := resp.read(CHUNK):
                f.write(block)
                bar.update(len(block))
    os.replace(part, dest)
    return dest


def verify(path: Path, expected: str | None, *, check: bool = True) -> str:
    """Compare the file's SHA-256 to `expected`; a mismatch deletes the file, an unknown hash refuses unless check=False."""
    got = sha256(path)
    if expected and got != expected.lower():
        path.unlink()
        raise ChecksumError(f"{path.name}: SHA-256 {got} does not match the manifest's {expected}; deleted it")
    if not expected and check:
        raise ChecksumError(
            f"{path.name}: the manifest records no SHA-256 (this file has {got}); "
            f"rerun with --no-verify to accept it unverified"
        )
    return got


@dataclass
class _Member:
    """One archive entry: its name in the archive (for messages) and where it goes under dest."""

    name: str
    parts: tuple[str, ...]
    kind: str  # "file" | "dir" | "symlink" | "hardlink"
    link: str = ""  # symlink target as written in the archive
    link_parts: tuple[str, ...] = ()  # hardlink: the earlier member whose bytes it shares
    open: Callable[[], IO[bytes]] | None = None


def _parts(name: str, strip: int) -> tuple[str, ...] | None:
    """Path components of a member under the extraction folder; None for stripped-away top folders."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or name.startswith(("/", "\\")) or (p.parts and ":" in p.parts[0]) or ".." in p.parts:
        raise UnsafeArchive(f"refusing archive member {name!r}: absolute path or '..'")
    if "\0" in name:
        raise UnsafeArchive(f"refusing archive member {name!r}: NUL in its name")
    parts = tuple(x for x in p.parts if x != ".")[strip:]
    if not parts or parts[0] == "__MACOSX":  # macOS resource forks are never data
        return None
    return parts


@contextmanager
def _entries(archive: Path, strip: int) -> Iterator[list[_Member]]:
    """The members of a zip or tar archive, open for reading while the caller extracts."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            out = []
            for info in z.infolist():
                parts = _parts(info.filename, strip)
                mode = info.external_attr >> 16
                if parts is None:
                    continue
                if stat.S_ISLNK(mode):
                    out.append(_Member(info.filename, parts, "symlink", link=z.read(info).decode("utf-8", "replace")))
                elif info.is_dir():
                    out.append(_Member(info.filename, parts, "dir"))
                elif stat.S_IFMT(mode) in (0, stat.S_IFREG):
                    out.append(_Member(info.filename, parts, "file", open=lambda i=info: z.open(i)))
                else:
                    raise UnsafeArchive(f"refusing archive member {info.filename!r}: not a file, folder or link")
            yield out
        return
    with tarfile.open(archive) as tar:
        out = []
        for m in tar.getmembers():
            parts = _parts(m.name, strip)
            if parts is None:
                continue
            if m.issym():
                out.append(_Member(m.name, parts, "symlink", link=m.linkname))
            elif m.islnk():
                target = _parts(m.linkname, strip)
                if target is None:
                    raise UnsafeArchive(f"refusing archive member {m.name!r}: hard link to {m.linkname!r} outside")
                out.append(_Member(m.name, parts, "hardlink", link=m.linkname, link_parts=target))
            elif m.isdir():
                out.append(_Member(m.name, parts, "dir"))
            elif m.isfile():
                out.append(_Member(m.name, parts, "file", open=lambda m=m: tar.extractfile(m)))
            else:
                raise UnsafeArchive(f"refusing archive member {m.name!r}: not a file, folder or link")
        yield out


def _check(members: list[_Member]) -> None:
    """Refuse, before anything is written, every member that could put bytes anywhere but under dest.

    Links are judged against the tree the whole archive makes, not against the disk while it is
    half-extracted: nothing may be written through a link, and a link may point only at what the
    archive makes as a file or folder, never through another link. So however members are
    ordered or chained (`q -> .`, `p -> q/../outside`, `p/x`), a path means what it spells.
    """
    links = {m.parts for m in members if m.kind == "symlink"}
    seen: dict[tuple[str, ...], str] = {}
    for m in members:
        through = next((m.parts[:i] for i in range(1, len(m.parts)) if m.parts[:i] in links), None)
        if through:
            raise UnsafeArchive(f"refusing archive member {m.name!r}: lies under the link {'/'.join(through)!r}")
        before = seen.get(m.parts)
        if before is not None and not (before == m.kind and m.kind in ("dir", "file")):
            raise UnsafeArchive(
                f"refusing archive member {m.name!r}: {'/'.join(m.parts)} appears twice, "
                f"as a {before} and as a {m.kind}"
            )
        seen[m.parts] = m.kind
        if m.kind == "symlink":
            _check_link(m, links)
        elif m.kind == "hardlink" and seen.get(m.link_parts) != "file":
            raise UnsafeArchive(
                f"refusing archive member {m.name!r}: hard link to {m.link!r}, "
                f"which is not a file earlier in the archive"
            )


def _check_link(m: _Member, links: set[tuple[str, ...]]) -> None:
    """A symlink's target, followed component by component from the link's folder, must stay
    inside dest and never pass through another link (whose meaning could change it)."""
    if not m.link or os.path.isabs(m.link) or m.link.startswith("\\") or ":" in m.link.split("/")[0]:
        raise UnsafeArchive(f"refusing archive member {m.name!r}: link to {m.link!r} leads outside")
    at = list(m.parts[:-1])
    for c in m.link.replace("\\", "/").split("/"):
        if c in ("", "."):
            continue
        if c == "..":
            if not at:
                raise UnsafeArchive(f"refusing archive member {m.name!r}: link to {m.link!r} leads outside")
            at.pop()
            continue
        at.append(c)
        if tuple(at) in links:
            raise UnsafeArchive(
                f"refusing archive member {m.name!r}: link to {m.link!r} goes through the link {'/'.join(at)!r}"
            )


def _real_parent(dest: Path, parts: tuple[str, ...], name: str) -> Path:
    """Create the folders of `parts` under dest, refusing any that is (already) a link or a file.

    The archive was checked as a whole; this also guards against links already on disk (an inner
    archive unpacked into the tree an outer one made), so a write never follows a link.
    """
    at = dest
    for c in parts[:-1]:
        at = at / c
        if at.is_symlink() or (at.exists() and not at.is_dir()):
            raise UnsafeArchive(f"refusing archive member {name!r}: {at} is a link or a file, not a folder")
        at.mkdir(exist_ok=True)
    return at / parts[-1]


def _write_file(target: Path, src: IO[bytes], name: str) -> None:
    try:  # O_NOFOLLOW: a link already sitting at the target is refused, never written through
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o666)
    except OSError as e:
        raise UnsafeArchive(f"refusing archive member {name!r}: cannot write {target} ({e.strerror})") from e
    with os.fdopen(fd, "wb") as out:
        shutil.copyfileobj(src, out, CHUNK)


def safe_extract(archive: Path, dest: Path, strip: int = 0) -> None:
    """Extract a .zip or tar archive into `dest`, dropping `strip` leading path components.

    Every member is checked before anything is written, so a malicious archive writes nothing;
    refusals are UnsafeArchive naming the member.
    """
    dest.mkdir(parents=True, exist_ok=True)
    try:
        with _entries(archive, strip) as members:
            _check(members)
            _extract(members, dest)
    except UnsafeArchive as e:
        raise UnsafeArchive(f"{archive.name}: {e}") from None


def _extract(members: list[_Member], dest: Path) -> None:
    """Write the checked members in order, never following a link (see _real_parent, _write_file)."""
    for m in members:
        target = _real_parent(dest, m.parts, m.name)
        if m.kind == "dir":
            if target.is_symlink() or (target.exists() and not target.is_dir()):
                raise UnsafeArchive(f"refusing archive member {m.name!r}: {target} exists and is not a folder")
            target.mkdir(exist_ok=True)
        elif m.kind == "symlink":
            try:
                os.symlink(m.link, target)
            except FileExistsError as e:
                raise UnsafeArchive(f"refusing archive member {m.name!r}: {target} already exists") from e
        elif m.kind == "hardlink":  # copied, so editing one file never changes the other
            source = _real_parent(dest, m.link_parts, m.name)
            with open(os.open(source, os.O_RDONLY | os.O_NOFOLLOW), "rb") as src:
                _write_file(target, src, m.name)
        else:
            with m.open() as src:
                _write_file(target, src, m.name)


def download(
    name: str,
    to: str | os.PathLike | None = None,
    *,
    manifest: dict | None = None,
    files: dict | None = None,
    check: bool = True,
    progress: bool = True,
) -> Path:
    """Download and extract dataset `name` into `to/<folder>`; returns that folder.

    Default `to`: $MIDIBERT_DATA, else <cache>/data. An existing folder is left alone (`midibert
    data verify` checks it). The archive is checked against its SHA-256 when datasets.json records
    one, else the extracted files against `files` ({path: [size, sha256]}, default: the list
    shipped for `name`); with neither, or with check=False, it is accepted unverified.
    """
    entry = (manifest or load_manifest())[name]
    to = Path(to or os.environ.get("MIDIBERT_DATA") or cache_root() / "data")
    final = to / get_info(name).folder
    if final.exists():
        return final
    archive_dir = to / ".downloads"
    archive_dir.mkdir(parents=True, exist_ok=True)
    archive = fetch(entry["url"], archive_dir / f"{name}-{PurePosixPath(entry['url']).name}", progress)
    files = checksums.load(name) if files is None else files
    digest = verify(archive, entry.get("sha256"), check=check and files is None)
    if not entry.get("sha256") and files is None:
        print(f"{name}: accepted unverified archive, sha256 {digest}")
    remove_stale(to, f".{final.name}.extracting-")  # what a killed download left behind
    tmp = to / f".{final.name}.extracting-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        safe_extract(archive, tmp, entry.get("strip", 0))
        for inner in entry.get("unpack", []):  # archives inside the archive (VGMIDI's phrases.zip)
            safe_extract(tmp / inner, (tmp / inner).parent)
        if files is not None and not entry.get("sha256"):
            _check_files(name, archive, tmp, files, check)
        publish_dir(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def _check_files(name: str, archive: Path, tree: Path, files: dict, check: bool) -> None:
    """The extracted files against the shipped checksums: a mismatch deletes the archive (a later
    run fetches it afresh) and refuses, unless check=False."""
    res = checksums.check(tree, files)
    if res.ok:
        print(f"{name}: {res.matched} files verified against the shipped checksums")
        return
    if not check:
        print(f"{name}: accepted unverified ({res.summary()})")
        return
    archive.unlink(missing_ok=True)
    raise ChecksumError(
        f"{name}: {archive.name} does not hold the published files ({res.summary()}); "
        f"deleted it (rerun with --no-verify to accept it anyway)"
    )
