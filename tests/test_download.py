"""Download: file:// archives built here (never the network), checksums, resume, safe extraction."""
from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from midibert.datasets.download import (
    ChecksumError,
    UnsafeArchive,
    download,
    fetch,
    load_manifest,
    safe_extract,
    sha256,
)


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


@pytest.fixture
def archive(tmp_path) -> Path:
    """A tiny EMOPIA-shaped archive with a top folder, as GitHub / Zenodo archives have."""
    return _zip(tmp_path / "emopia.zip", {"EMOPIA_1.0/midis/Q1_abc_0.mid": b"MThd",
                                         "EMOPIA_1.0/label.csv": b"ID,4Q\nQ1_abc_0,1\n"})


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
    manifest = {"emopia": {"url": archive.as_uri(), "sha256": None, "strip": 1}}
    with pytest.raises(ChecksumError, match="--no-verify"):
        download("emopia", tmp_path / "data", manifest=manifest, progress=False)
    out = download("emopia", tmp_path / "data", manifest=manifest, check=False, progress=False)
    assert (out / "label.csv").exists()
    assert sha256(archive) in capsys.readouterr().out  # printed so it can go into the manifest


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
    link_out = _tar_with(tmp_path / "b.tar.gz", lambda t: (_file(t, "d/ok.txt"), _link(t, "d/passwd", "../../etc/passwd")))
    with pytest.raises(UnsafeArchive, match="leads outside"):
        safe_extract(link_out, tmp_path / "out2")
    assert not (tmp_path / "out2" / "d").exists()


def test_tar_with_inside_link_extracts(tmp_path):
    good = _tar_with(tmp_path / "c.tar.gz", lambda t: (_file(t, "d/a.txt", b"A"), _link(t, "d/b.txt", "a.txt")))
    safe_extract(good, tmp_path / "out")
    assert (tmp_path / "out" / "d" / "b.txt").read_bytes() == b"A"
