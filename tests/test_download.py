"""Download: file:// archives built here (never the network), checksums, resume, safe extraction."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from midibert.cli import main
from midibert.datasets import checksums
from midibert.datasets.base import read
from midibert.datasets.download import (
    ChecksumError,
    UnsafeArchive,
    download,
    fetch,
    load_manifest,
    safe_extract,
    sha256,
)
from tests.conftest import shared


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return path


def _tar_with(path: Path, add) -> Path:
    with tarfile.open(path, "w:gz") as t:
        add(t)
    return path


def _file(t: tarfile.TarFile, name: str, data: bytes = b"x") -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    t.addfile(info, io.BytesIO(data))


def _link(t: tarfile.TarFile, name: str, target: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.SYMTYPE
    info.linkname = target
    t.addfile(info)


def _dir(t: tarfile.TarFile, name: str) -> None:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    t.addfile(info)


def _archive(path: Path, members: list[tuple[str, str, str]]) -> Path:
    """A tar.gz or zip (by suffix) of (kind, name, link target or contents) members, in order."""
    if path.suffix == ".zip":
        with zipfile.ZipFile(path, "w") as z:
            for kind, name, value in members:
                info = zipfile.ZipInfo(name + ("/" if kind == "dir" else ""))
                mode = {"file": stat.S_IFREG | 0o644, "dir": stat.S_IFDIR | 0o755, "link": stat.S_IFLNK | 0o777}[kind]
                info.external_attr = mode << 16
                z.writestr(info, value.encode())
        return path
    with tarfile.open(path, "w:gz") as t:
        for kind, name, value in members:
            if kind == "file":
                _file(t, name, value.encode())
            elif kind == "dir":
                _dir(t, name)
            else:
                _link(t, name, value)
    return path


@pytest.fixture
def archive(tmp_path) -> Path:
    """A tiny EMOPIA-shaped archive with a top folder, as GitHub / Zenodo archives have."""
    return _zip(
        tmp_path / "emopia.zip",
        {"EMOPIA_1.0/midis/Q1_abc_0.mid": b"MThd", "EMOPIA_1.0/label.csv": b"ID,4Q\nQ1_abc_0,1\n"},
    )


def test_manifest_names_every_downloadable_dataset():
    m = load_manifest()
    assert {"pop909", "pianist8", "asap", "emopia", "pop1k7", "vgmidi", "giantmidi"} <= set(m)
    assert all(e["url"].startswith("https://") and "sha256" in e for e in m.values())


def test_download_verifies_and_extracts(tmp_path, archive):
    manifest = {"emopia": {"url": archive.as_uri(), "sha256": sha256(archive), "strip": 1}}
    out = download("emopia", tmp_path / "data", manifest=manifest, progress=False)
    assert out == tmp_path / "data" / "emopia"
    assert (out / "midis" / "Q1_abc_0.mid").read_bytes() == b"MThd"
    assert not list((tmp_path / "data").glob(".emopia.extracting*"))


def test_wrong_checksum_deletes_file(tmp_path, archive):
    manifest = {"emopia": {"url": archive.as_uri(), "sha256": "0" * 64, "strip": 1}}
    with pytest.raises(ChecksumError, match="does not match"):
        download("emopia", tmp_path / "data", manifest=manifest, progress=False)
    assert not (tmp_path / "data" / "emopia").exists()
    assert not list((tmp_path / "data" / ".downloads").glob("*.zip"))


def test_unknown_checksum_refused_unless_no_verify(tmp_path, archive, capsys):
    manifest = {"sample": {"url": archive.as_uri(), "sha256": None, "strip": 1}}  # no checksums shipped for it
    with pytest.raises(ChecksumError, match="--no-verify"):
        download("sample", tmp_path / "data", manifest=manifest, progress=False)
    out = download("sample", tmp_path / "data", manifest=manifest, check=False, progress=False)
    assert (out / "label.csv").exists()
    assert sha256(archive) in capsys.readouterr().out  # printed so it can go into the manifest


def _files(members: dict[str, bytes]) -> dict[str, list]:
    return {rel: [len(data), checksums.hashlib.sha256(data).hexdigest()] for rel, data in members.items()}


def test_per_file_checksums_verify_without_an_archive_hash(tmp_path, archive, capsys):
    manifest = {"emopia": {"url": archive.as_uri(), "sha256": None, "strip": 1}}
    files = _files({"midis/Q1_abc_0.mid": b"MThd"})  # label.csv is not listed: not checked, still extracted
    out = download("emopia", tmp_path / "data", manifest=manifest, files=files, progress=False)
    assert (out / "midis" / "Q1_abc_0.mid").read_bytes() == b"MThd" and (out / "label.csv").exists()
    assert "1 files verified" in capsys.readouterr().out


def test_per_file_checksums_name_missing_and_changed_files(tmp_path, archive):
    manifest = {"emopia": {"url": archive.as_uri(), "sha256": None, "strip": 1}}
    files = _files({"midis/Q1_abc_0.mid": b"MThd-published", "midis/Q2_gone_1.mid": b"x"})
    with pytest.raises(ChecksumError) as e:
        download("emopia", tmp_path / "data", manifest=manifest, files=files, progress=False)
    assert "1 missing: midis/Q2_gone_1.mid" in str(e.value) and "changed: midis/Q1_abc_0.mid" in str(e.value)
    assert not (tmp_path / "data" / "emopia").exists() and not list((tmp_path / "data").glob(".emopia*"))
    assert not list((tmp_path / "data" / ".downloads").glob("*.zip"))  # a rerun fetches it afresh


def test_fetch_completes_a_partial_download(tmp_path, archive):
    dest = tmp_path / "dl.zip"
    dest.with_name("dl.zip.part").write_bytes(archive.read_bytes()[:10])
    fetch(archive.as_uri(), dest, progress=False)
    assert dest.read_bytes() == archive.read_bytes()
    assert not dest.with_name("dl.zip.part").exists()


@pytest.mark.parametrize("name", ["../evil.txt", "/etc/evil.txt", "top/../../evil.txt"])
def test_zip_with_escaping_paths_writes_nothing(tmp_path, name):
    bad = _zip(tmp_path / "bad.zip", {"top/ok.txt": b"ok", name: b"evil"})
    with pytest.raises(UnsafeArchive):
        safe_extract(bad, tmp_path / "out", strip=1)
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "out" / "ok.txt").exists()  # checked before anything is written


def test_tar_with_dotdot_or_outside_link_refused(tmp_path):
    dotdot = _tar_with(tmp_path / "a.tar.gz", lambda t: _file(t, "../evil.txt"))
    with pytest.raises(UnsafeArchive):
        safe_extract(dotdot, tmp_path / "out1")
    link_out = _tar_with(
        tmp_path / "b.tar.gz", lambda t: (_file(t, "d/ok.txt"), _link(t, "d/passwd", "../../etc/passwd"))
    )
    with pytest.raises(UnsafeArchive, match="leads outside"):
        safe_extract(link_out, tmp_path / "out2")
    assert not (tmp_path / "out2" / "d").exists()


def test_tar_with_inside_link_extracts(tmp_path):
    good = _tar_with(tmp_path / "c.tar.gz", lambda t: (_file(t, "d/a.txt", b"A"), _link(t, "d/b.txt", "a.txt")))
    safe_extract(good, tmp_path / "out")
    assert (tmp_path / "out" / "d" / "b.txt").read_bytes() == b"A"


def chains(tmp_path: Path) -> dict[str, list[tuple[str, str, str]]]:
    """Archives whose every name looks harmless on its own; only the tree the archive makes,
    followed member by member, shows where the last write lands: beside the dataset folder, or
    (through the root) at any absolute path, here `tmp_path/escaped`."""
    deep = 20  # more levels than tmp_path has (fewer than the kernel's 40 links): q/.../q is the folder, 20 x '..' is /
    return {
        "dot-then-parent": [("link", "top/q", "."), ("link", "top/p", "q/../outside"), ("file", "top/p/x", "evil")],
        "to-the-root": [
            ("link", "top/q", "."),
            ("link", "top/r", "/".join(["q"] * deep + [".."] * deep)),
            ("file", f"top/r/{str(tmp_path).strip('/')}/escaped", "evil"),
        ],
        "link-then-file": [("dir", "top/sub", ""), ("link", "top/d", "sub"), ("file", "top/d/x", "evil")],
    }


@pytest.mark.parametrize("suffix", [".tar.gz", ".zip"])
@pytest.mark.parametrize("chain", ["dot-then-parent", "to-the-root", "link-then-file"])
def test_link_chains_never_write_outside(tmp_path, chain, suffix):
    bad = _archive(tmp_path / f"bad{suffix}", [("file", "top/label.csv", "ok"), *chains(tmp_path)[chain]])
    (tmp_path / "data" / "outside").mkdir(parents=True)  # a folder beside the dataset, as a user's would be
    manifest = {"emopia": {"url": bad.as_uri(), "sha256": sha256(bad), "strip": 1}}
    with pytest.raises(UnsafeArchive, match="refusing archive member 'top/"):
        download("emopia", tmp_path / "data", manifest=manifest, progress=False)
    assert not list((tmp_path / "data" / "outside").iterdir()) and not (tmp_path / "escaped").exists()
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == [".downloads", "outside"]  # nothing half-extracted


def test_cli_reports_an_unsafe_archive_on_one_line(tmp_path, monkeypatch, capsys):
    bad = _archive(tmp_path / "bad.tar.gz", chains(tmp_path)["link-then-file"])
    manifest = {"emopia": {"url": bad.as_uri(), "sha256": sha256(bad), "strip": 1}}
    monkeypatch.setattr("midibert.datasets.download.load_manifest", lambda: manifest)
    assert main(["data", "download", "emopia", "--to", str(tmp_path / "data")]) == 2
    err = capsys.readouterr().err.split("\n", 1)[1]  # after the progress bar's line
    assert err == "midibert: error: emopia-bad.tar.gz: refusing archive member 'top/d/x': lies under the link 'd'\n"


def test_links_that_stay_inside_still_extract(tmp_path):
    ok = _archive(
        tmp_path / "ok.zip",
        [("file", "a/b.txt", "B"), ("link", "a/c.txt", "b.txt"), ("link", "top.txt", "a/b.txt"), ("link", "here", ".")],
    )
    safe_extract(ok, tmp_path / "out")
    assert (tmp_path / "out" / "a" / "c.txt").read_text() == (tmp_path / "out" / "top.txt").read_text() == "B"


def test_hard_link_to_a_symlink_refused(tmp_path):
    def add(t):
        _link(t, "l", "a.txt")
        info = tarfile.TarInfo("h")
        info.type = tarfile.LNKTYPE
        info.linkname = "l"
        t.addfile(info)

    with pytest.raises(UnsafeArchive, match="hard link"):
        safe_extract(_tar_with(tmp_path / "h.tar.gz", add), tmp_path / "out")


def test_pattern_matching():
    assert checksums.matches("POP909/001/001.mid", "POP909/*/*.mid")
    assert not checksums.matches("POP909/001/versions/a.mid", "POP909/*/*.mid")
    assert checksums.matches("a.mid", "**/*.mid") and checksums.matches("x/y/a.mid", "**/*.mid")
    assert not checksums.matches("x/a.midi", "**/*.mid")


@pytest.mark.parametrize("name", ["pianist8", "vgmidi", "giantmidi"])
def test_shipped_checksums_are_the_shared_copy(tmp_path, name):
    """The maintainer command remakes the shipped list byte for byte from ../shared/data, and the
    list covers every file the reader uses."""
    root = shared(load_manifest() and {"giantmidi": "giantmidi_piano_eval"}.get(name, name))
    assert main(["data", "manifest", name, "--path", str(root), "--out", str(tmp_path)]) == 0
    shipped = checksums.PACKAGE_DIR / f"{name}.json.gz"
    assert (tmp_path / f"{name}.json.gz").read_bytes() == shipped.read_bytes()
    files = checksums.load(name)
    assert {p.path.relative_to(root).as_posix() for p in read(name, root)} <= set(files)
    assert checksums.check(root, files).ok


def test_shipped_checksums_cover_every_dataset_and_what_readers_use():
    for name, entry in load_manifest().items():
        files = checksums.load(name)
        assert files and all(len(d) == 64 for _, d in files.values()), name
        assert all(any(checksums.matches(rel, p) for p in entry["files"]) for rel in files), name
    pop909 = checksums.load("pop909")
    assert sum(r.endswith(".mid") for r in pop909) == 909 and "POP909/001/beat_midi.txt" in pop909
    emopia = checksums.load("emopia")  # the full release, though the shared copy holds only part
    assert sum(r.startswith("midis/") for r in emopia) == 1078 and "label.csv" in emopia


def test_verify_names_missing_and_changed_files(tmp_path, capsys):
    root = tmp_path / "pianist8"
    src = shared("pianist8")
    files = checksums.load("pianist8")
    for rel in list(files)[:3]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes((src / rel).read_bytes())
    (root / list(files)[2]).write_bytes(b"edited")
    assert main(["data", "verify", "pianist8", "--path", str(root)]) == 1
    out = capsys.readouterr().out
    assert f"changed {list(files)[2]}" in out and f"missing {list(files)[3]}" in out
    assert f"2 of {len(files)} files match; {len(files) - 3} missing; 1 changed" in out
    assert main(["data", "verify", "pianist8", "--path", str(src)]) == 0
