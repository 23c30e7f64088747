"""Fetch a dataset archive named in midibert/data/datasets.json: resumable, SHA-256 checked,
extracted safely (no absolute paths, no `..`, no links leading outside) and atomically."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tarfile
import urllib.request
import zipfile
from importlib import resources
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from midibert.datasets.base import cache_root, get_info

CHUNK = 1 << 20


class UnsafeArchive(ValueError):
    """An archive member would land outside the extraction folder."""


class ChecksumError(ValueError):
    """A downloaded file does not have the expected SHA-256 (or none is recorded)."""


def load_manifest(path: str | os.PathLike | None = None) -> dict:
    """The download manifest: dataset name -> url, sha256, strip, license ..."""
    text = Path(path).read_text() if path else \
        resources.files("midibert").joinpath("data", "datasets.json").read_text()
    return {k: v for k, v in json.loads(text).items() if not k.startswith("_")}


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


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
        with open(part, "ab" if resumed else "wb") as f, \
                tqdm(total=total, initial=have if resumed else 0, unit="B", unit_scale=True,
                     desc=dest.name, disable=not progress) as bar:
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
        raise ChecksumError(f"{path.name}: the manifest records no SHA-256 (this file has {got}); "
                            f"rerun with --no-verify to accept it unverified")
    return got


def _member_target(dest: Path, name: str, strip: int) -> Path | None:
    """Where an archive member goes under `dest`, None for stripped-away top folders; raises if unsafe."""
    p = PurePosixPath(name.replace("\\", "/"))
    if p.is_absolute() or name.startswith(("/", "\\")) or (p.parts and ":" in p.parts[0]) or ".." in p.parts:
        raise UnsafeArchive(f"refusing archive member {name!r}: absolute path or '..'")
    parts = p.parts[strip:]
    if not parts or parts[0] == "__MACOSX":  # macOS resource forks are never data
        return None
    target = dest.joinpath(*parts)
    if not target.resolve().is_relative_to(dest.resolve()):
        raise UnsafeArchive(f"refusing archive member {name!r}: lands outside {dest}")
    return target


def _check_link(dest: Path, target: Path, link: str, name: str) -> None:
    if os.path.isabs(link) or not (target.parent / link).resolve().is_relative_to(dest.resolve()):
        raise UnsafeArchive(f"refusing archive member {name!r}: link to {link!r} leads outside")


def safe_extract(archive: Path, dest: Path, strip: int = 0) -> None:
    """Extract a .zip or tar archive into `dest`, dropping `strip` leading path components.

    Every member is checked before anything is written, so a malicious archive writes nothing.
    """
    dest.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            plan = [(m, _member_target(dest, m.filename, strip)) for m in z.infolist()]
            for m, t in plan:
                if t is not None and stat.S_ISLNK(m.external_attr >> 16):
                    _check_link(dest, t, z.read(m).decode(), m.filename)
            for m, t in plan:
                if t is None or m.is_dir():
                    continue
                t.parent.mkdir(parents=True, exist_ok=True)
                if stat.S_ISLNK(m.external_attr >> 16):
                    os.symlink(z.read(m).decode(), t)
                    continue
                with z.open(m) as src, open(t, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)
        return
    with tarfile.open(archive) as tar:
        plan = [(m, _member_target(dest, m.name, strip)) for m in tar.getmembers()]
        for m, t in plan:
            if t is None:
                continue
            if m.issym():
                _check_link(dest, t, m.linkname, m.name)
            elif m.islnk():
                _member_target(dest, m.linkname, strip)
            elif not (m.isfile() or m.isdir()):
                raise UnsafeArchive(f"refusing archive member {m.name!r}: not a file, folder or link")
        for m, t in plan:
            if t is None or m.isdir():
                continue
            t.parent.mkdir(parents=True, exist_ok=True)
            if m.issym():
                os.symlink(m.linkname, t)
            elif m.islnk():
                linked = _member_target(dest, m.linkname, strip)
                shutil.copyfile(linked, t)
            else:
                with tar.extractfile(m) as src, open(t, "wb") as out:
                    shutil.copyfileobj(src, out, CHUNK)


def download(name: str, to: str | os.PathLike | None = None, *, manifest: dict | None = None,
             check: bool = True, progress: bool = True) -> Path:
    """Download and extract dataset `name` into `to/<folder>`; returns that folder.

    Default `to`: $MIDIBERT_DATA, else <cache>/data. An existing folder is left alone.
    """
    entry = (manifest or load_manifest())[name]
    to = Path(to or os.environ.get("MIDIBERT_DATA") or cache_root() / "data")
    final = to / get_info(name).folder
    if final.exists():
        return final
    archive_dir = to / ".downloads"
    archive_dir.mkdir(parents=True, exist_ok=True)
    archive = fetch(entry["url"], archive_dir / f"{name}-{PurePosixPath(entry['url']).name}", progress)
    digest = verify(archive, entry.get("sha256"), check=check)
    if not entry.get("sha256"):
        print(f"{name}: accepted unverified archive, sha256 {digest}")
    tmp = to / f".{final.name}.extracting-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        safe_extract(archive, tmp, entry.get("strip", 0))
        for inner in entry.get("unpack", []):  # archives inside the archive (VGMIDI's phrases.zip)
            safe_extract(tmp / inner, (tmp / inner).parent)
        os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final
