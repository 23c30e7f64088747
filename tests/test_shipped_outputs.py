"""The packaged models' exact outputs on the shipped test MIDI, pinned, so a change that moves what
they predict fails on any machine, with or without the real datasets.

Pinned in fp32 (`quantize=False`): the int8 CPU default runs on whichever engine the CPU has, and
engines round differently. A label is compared where the model is decided (its top two
probabilities differ by more than MARGIN), probabilities to TOLERANCE. After re-exporting the
models on purpose, re-pin with `python -m tests.test_shipped_outputs`.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from midibert.classify import Classifier
from midibert.embedding import Embedder
from midibert.pretrained import ENCODER, models_dir, packaged
from tests.conftest import ROOT, SHIPPED_SONGS

PINS = ROOT / "tests" / "data" / "shipped_outputs.json"
MARGIN, TOLERANCE = 0.05, 0.01
MODELS = packaged(ROOT / "midibert" / "models")


def outputs(name: str) -> dict[str, dict]:
    """File name -> what the packaged model `name` says about it, in fp32: every label and the
    probabilities of the first 32 notes (or the piece's) rounded to 3 decimals, in the model's own
    classes; or an encoder's first 8 embedding values."""
    out = {}
    if MODELS[name]["task"] == ENCODER:
        emb = Embedder.from_pretrained(name, device="cpu", quantize=False)
        for song, v in zip(SHIPPED_SONGS, emb.embed(SHIPPED_SONGS)):
            out[song.name] = {"embedding": np.round(v[:8], 3).tolist()}
        return out
    clf = Classifier.from_pretrained(name, device="cpu", quantize=False, answer=False)
    for song, pred in zip(SHIPPED_SONGS, clf.predict_batch(SHIPPED_SONGS)):
        probs = np.atleast_2d(pred.probs)
        out[song.name] = {"labels": np.atleast_1d(pred.labels).tolist(), "probs": np.round(probs[:32], 3).tolist()}
    return out


@pytest.fixture(autouse=True)
def _packaged(monkeypatch):
    monkeypatch.delenv("MIDIBERT_MODELS", raising=False)
    assert models_dir() == ROOT / "midibert" / "models"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_packaged_model_outputs_are_pinned(name):
    pinned = json.loads(PINS.read_text())
    assert name in pinned, f"{name} has no pinned outputs: python -m tests.test_shipped_outputs"
    got = outputs(name)
    assert got.keys() == pinned[name].keys()
    for song, want in pinned[name].items():
        if "embedding" in want:
            np.testing.assert_allclose(got[song]["embedding"], want["embedding"], atol=TOLERANCE, err_msg=song)
            continue
        p, q = np.asarray(got[song]["probs"]), np.asarray(want["probs"])
        np.testing.assert_allclose(p, q, atol=TOLERANCE, err_msg=song)
        top2 = np.sort(q, axis=1)[:, -2:]
        decided = top2[:, 1] - top2[:, 0] > MARGIN
        labels, wanted = np.asarray(got[song]["labels"]), np.asarray(want["labels"])
        assert len(labels) == len(wanted) and (labels[: len(q)][decided] == wanted[: len(q)][decided]).all(), song
        assert (labels == wanted).mean() > 0.99, song  # beyond the first notes, all but near-ties


def test_every_pinned_model_is_packaged():
    assert set(json.loads(PINS.read_text())) == set(MODELS)


if __name__ == "__main__":
    PINS.write_text(json.dumps({name: outputs(name) for name in sorted(MODELS)}, indent=None) + "\n")
    print(f"pinned {len(MODELS)} models on {len(SHIPPED_SONGS)} files -> {PINS} ({PINS.stat().st_size:,} bytes)")
