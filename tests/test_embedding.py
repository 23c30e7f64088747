"""midibert.embed and `midibert embed`: piece vectors and per-note rows from an encoder or a fine-tuned
bundle's encoder, windowed as classify; bad files skipped in the CLI; no training code imported."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import midibert
from midibert.bundle import load_bundle
from midibert.embedding import Embedder, encoder_state
from midibert.model import MidiBert
from midibert.tokenize import Tokenizer
from tests.conftest import SHIPPED_SONGS, good_and_corrupt_folder
from tests.factories import MELODY, make_bundle, make_encoder


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    return make_encoder(tmp_path_factory.mktemp("enc") / "bundle")


def test_piece_and_note_embeddings(encoder):
    width = load_bundle(encoder).model_config.hidden
    one = midibert.embed(SHIPPED_SONGS[0], model=encoder)
    assert one.shape == (width,) and np.isfinite(one).all()
    many = midibert.embed(list(SHIPPED_SONGS[:3]), model=encoder)
    assert many.shape == (3, width)
    np.testing.assert_allclose(many[0], one, rtol=1e-5, atol=1e-6)  # a piece's vector does not depend on its batch
    assert not np.allclose(many[0], many[1])
    notes = midibert.embed(SHIPPED_SONGS[0], model=encoder, level="note")
    n_notes = len(Tokenizer.from_spec("cp-score").encode(SHIPPED_SONGS[0]).notes)
    assert notes.shape == (n_notes, width) and np.isfinite(notes).all()
    per_file = midibert.embed(list(SHIPPED_SONGS[:2]), model=encoder, level="note")
    assert isinstance(per_file, list) and len(per_file) == 2
    with pytest.raises(ValueError, match="level must be one of"):
        Embedder(load_bundle(encoder), level="bar")


def test_note_rows_in_file_order_are_the_mean_of_their_tokens(encoder):
    """With one window and no int8, a note's row is its token's last-layer state."""
    emb = Embedder.from_pretrained(encoder, level="note", quantize=False, seq_len=4096)
    enc = emb.encode(SHIPPED_SONGS[0])
    net = MidiBert(load_bundle(encoder).model_config)
    net.load_state_dict(load_bundle(encoder).state_dict)
    with torch.inference_mode():
        h = net.eval()(torch.as_tensor(enc.ids)[None], torch.ones(1, len(enc.ids), dtype=torch.bool))[0].numpy()
    first = np.argsort(enc.notes.source_index, kind="stable")[0]  # the file's first note
    token = np.flatnonzero(enc.note_index == first)[0]
    np.testing.assert_allclose(emb.embed([SHIPPED_SONGS[0]])[0][0], h[token], rtol=1e-4, atol=1e-5)


def test_a_fine_tuned_bundle_lends_its_encoder(tmp_path):
    bundle = make_bundle(tmp_path / "melody", "melody", "note", MELODY)
    state = encoder_state(load_bundle(bundle))
    assert state and not any(k.startswith(("encoder.", "classifier.")) for k in state)
    assert midibert.embed(SHIPPED_SONGS[0], model=bundle).shape == (load_bundle(bundle).model_config.hidden,)


def test_cli_skips_bad_files_and_writes_one_npz(encoder, tmp_path):
    bad = good_and_corrupt_folder(tmp_path / "in", good=2)
    good = sorted((tmp_path / "in" / "good").glob("*.mid"))
    out = tmp_path / "emb.npz"
    r = subprocess.run(
        [sys.executable, "-m", "midibert", "embed", *map(str, good + bad), "--model", str(encoder), "--out", str(out)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1  # some files failed
    errors = [line for line in r.stderr.splitlines() if line.startswith("midibert: error:")]
    assert len(errors) == len(bad) and all(any(p.name in e for p in bad) for e in errors)
    d = np.load(out)
    assert list(d["files"]) == [str(p) for p in good] and d["embeddings"].shape[0] == len(good)


def test_embedding_imports_no_training_code():
    code = (
        "import sys, midibert; from tests.conftest import SHIPPED_SONGS; from midibert.embedding import Embedder; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pytorch_lightning', 'lightning', 'sklearn', "
        "'matplotlib', 'hydra')))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "[]", r.stderr
