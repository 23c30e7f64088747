"""Per-file checksums of the public datasets: path, size and SHA-256 of every file a reader uses.

GitHub's generated archives are not guaranteed byte-stable, so an archive hash would break on
the day GitHub recompresses; the files inside do not change. Each dataset therefore ships
`midibert/data/checksums/<name>.json.gz`, computed from copies made from the very commits
datasets.json pins (`midibert data manifest`, a maintainer command), and `midibert data download`
and `midibert data verify` check the files against it. Files the readers don't use are not
listed, so a copy may hold anything else.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from midibert.fsutil import atomic_path

FORMAT = 1
PACKAGE_DIR = Path(__file__).resolve().parents[1] / "data" / "checksums"
CHUNK = 1 << 20


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(CHUNK):
            h.update(block)
    return h.hexdigest()


def matches(rel: str, pattern: str) -> bool:
    """Whether a relative posix path matches a glob whose `*` stays within one folder and whose
    `**` spans any number of folders (the same meaning Path.glob gives them)."""

    def walk(p: list[str], q: list[str]) -> bool:
        if not q:
            return not p
        if q[0] == "**":
            return any(walk(p[i:], q[1:]) for i in range(len(p) + 1))
        return bool(p) and fnmatch.fnmatchcase(p[0], q[0]) and walk(p[1:], q[1:])

    return walk(rel.split("/"), pattern.split("/"))


def used_files(root: Path, patterns: list[str]) -> list[str]:
    """Relative paths of the files under `root` that the patterns select, sorted."""
    out = []
    for dirpath, _, names in os.walk(root):
        for n in names:
            rel = (Path(dirpath) / n).relative_to(root).as_posix()
            if any(matches(rel, p) for p in patterns):
                out.append(rel)
    return sorted(out)


def compute(root: Path, patterns: list[str], release_sums: str | None = None) -> dict[str, list]:
    """{path: [size, sha256]} of the files under `root` that the patterns select.

    `release_sums`: a sha256sum-style file (relative to root) listing a full release of which
    `root` holds only part: every listed file that matches goes in, with the listed hash, and the
    size of the local copy where that copy is the released file (same hash), else size None.
    """
    files = {rel: [(root / rel).stat().st_size, sha256(root / rel)] for rel in used_files(root, patterns)}
    if release_sums is None:
        return files
    listed = {}
    for line in (root / release_sums).read_text(encoding="utf-8").splitlines():
        if line.strip():
            digest, rel = line.split(maxsplit=1)
            rel = rel.lstrip("*")  # sha256sum's binary-mode marker
            if any(matches(rel, p) for p in patterns):
                listed[rel] = digest.lower()
    return {
        rel: [files[rel][0] if files.get(rel, [None, None])[1] == digest else None, digest]
        for rel, digest in sorted(listed.items())
    }


def write(name: str, files: dict[str, list], source: str, out_dir: Path = PACKAGE_DIR) -> Path:
    """Write `<out_dir>/<name>.json.gz` atomically; the same files give the same bytes (no gzip time)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {
        "format": FORMAT,
        "dataset": name,
        "source": source,
        "files": [[rel, size, digest] for rel, (size, digest) in sorted(files.items())],
    }
    path = out_dir / f"{name}.json.gz"
    with (
        atomic_path(path) as tmp,
        open(tmp, "wb") as raw,
        gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as gz,
    ):
        gz.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode())
    return path


def load(name: str, path: str | os.PathLike | None = None) -> dict[str, list] | None:
    """{path: [size or None, sha256]} shipped for dataset `name`; None when it has none."""
    res = Path(path) if path else resources.files("midibert").joinpath("data", "checksums", f"{name}.json.gz")
    if not res.is_file():
        return None
    doc = json.loads(gzip.decompress(res.read_bytes()))
    if doc.get("format") != FORMAT:
        raise ValueError(f"{res}: checksum list format {doc.get('format')}, this midibert reads {FORMAT}")
    return {rel: [size, digest] for rel, size, digest in doc["files"]}


@dataclass
class Check:
    """What comparing a folder with a checksum list found."""

    matched: int = 0
    missing: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)  # "path (why)"

    @property
    def ok(self) -> bool:
        return not self.missing and not self.changed

    def summary(self, limit: int = 5) -> str:
        """One line counting the problems and naming the first `limit` of each kind."""

        def some(items: list[str]) -> str:
            if not limit:
                return ""
            more = f" and {len(items) - limit} more" if len(items) > limit else ""
            return ": " + ", ".join(items[:limit]) + more

        total = self.matched + len(self.missing) + len(self.changed)
        parts = [f"{self.matched} of {total} files match"]
        if self.missing:
            parts.append(f"{len(self.missing)} missing{some(self.missing)}")
        if self.changed:
            parts.append(f"{len(self.changed)} changed{some(self.changed)}")
        return "; ".join(parts)


def check(root: Path, files: dict[str, list]) -> Check:
    """Compare the listed files under `root` with their sizes and SHA-256 (sizes first: cheap)."""
    res = Check()
    for rel, (size, digest) in sorted(files.items()):
        path = root / rel
        if not path.is_file():
            res.missing.append(rel)
        elif size is not None and path.stat().st_size != size:
            res.changed.append(f"{rel} ({path.stat().st_size} bytes, expected {size})")
        elif sha256(path) != digest:
            res.changed.append(f"{rel} (SHA-256 differs)")
        else:
            res.matched += 1
    return res
