"""Rewrite the MIDI files beside this script: python tests/data/regenerate.py

They are small pieces of midibert's own synthetic corpus (`midibert.synthetic`, MIT like the rest of
the project), so the public API is tested on machines without ../shared/data: one score per
style (3/4, 4/4 and 2/4 meters), each with POP909's MELODY / BRIDGE / PIANO tracks, and one
humanized performance (expressive onsets and velocities). Tests pin the token ids of these exact
files (tests/test_tokenize.py), so regenerate them only on purpose, and re-pin.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from midibert.synthetic import generate_corpus

HERE = Path(__file__).resolve().parent


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        scores = generate_corpus(Path(tmp) / "score", n_pieces=4, seed=0, bars=(32, 40))
        performance = generate_corpus(Path(tmp) / "performance", n_pieces=1, seed=1, bars=(16, 16), humanize=1.0)
        for path in sorted(scores.glob("midi/*/*.mid")):
            shutil.copyfile(path, HERE / path.name)
        for path in performance.glob("midi/*/*.mid"):
            shutil.copyfile(path, HERE / f"performance_{path.name}")
    for path in sorted(HERE.glob("*.mid")):
        print(f"{path.name}: {path.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
