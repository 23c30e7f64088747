"""Shared fixtures: where the real datasets are, and skipping clearly when they are not."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("WANDB_MODE", "disabled")  # tests never talk to wandb's servers

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("MIDIBERT_DATA", ROOT.parent / "shared" / "data"))


def script(path: Path, name: str | None = None):
    """A script of benchmarks/ or docs/ (no packages) as a module, registered under `name` (default:
    its file name), as dataclasses defined in it need."""
    name = name or path.stem
    spec = importlib.util.spec_from_file_location(name, path)
    module = sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def shared(*parts: str) -> Path:
    """A path under the real data root, or skip the test saying what is missing."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"real data absent: {path} (set MIDIBERT_DATA or place ../shared/data)")
    return path


# Small pieces of the project's own sample corpus, shipped with the tests (tests/data/regenerate.py
# writes them), so the public API is tested on every machine: four scores in 3/4, 4/4 and 2/4, then
# a humanized performance, all with POP909's MELODY / BRIDGE / PIANO tracks.
SHIPPED_SONGS = sorted((ROOT / "tests" / "data").glob("*.mid"))


def pop909_songs() -> list[Path]:
    """A handful of real POP909 songs (MELODY / BRIDGE / PIANO tracks), or skip."""
    root = shared("pop909", "POP909")
    return [root / f"{i:03d}" / f"{i:03d}.mid" for i in (1, 2, 17, 250, 909)]


@pytest.fixture(params=["shipped", "pop909"])
def songs(request) -> list[Path]:
    """Songs with MELODY / BRIDGE / PIANO tracks: the shipped ones everywhere, real POP909 songs
    where ../shared/data is."""
    return SHIPPED_SONGS if request.param == "shipped" else pop909_songs()


@pytest.fixture
def asap_files() -> list[Path]:
    """A few real ASAP scores and performances (other meters, several tracks, expressive timing)."""
    root = shared("asap")
    scores = sorted(root.glob("*/*/midi_score.mid"))[:4] + sorted(root.glob("*/*/*/midi_score.mid"))[:2]
    perfs = [p for p in sorted(root.glob("Chopin/**/*.mid")) if p.name != "midi_score.mid"][:3]
    return scores + perfs


def good_and_corrupt_folder(root: Path, good: int) -> list[Path]:
    """`root/good`: `good` of the shipped songs; `root/bad`: the corrupt files midibert.synthetic writes.
    Returns the corrupt ones, which a batch job must skip and list."""
    import shutil

    from midibert.synthetic import write_corrupt_files

    (root / "good").mkdir(parents=True)
    for p in SHIPPED_SONGS[:good]:
        shutil.copy(p, root / "good" / p.name)
    return write_corrupt_files(root / "bad")
