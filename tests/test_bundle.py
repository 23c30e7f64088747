"""Bundles: weights and configs round-trip exactly; mismatches and newer formats are refused."""
from __future__ import annotations

import json

import pytest
import torch

from midibert.bundle import load_bundle, save_bundle
from midibert.model import BertConfig, MidiBert
from midibert.tokenize import Tokenizer


@pytest.fixture
def saved(tmp_path):
    tok = Tokenizer.create("cp", kind="performance")
    cfg = BertConfig.preset("bert-tiny", vocab_sizes=tok.vocab_sizes, position="relative")
    model = MidiBert(cfg).eval()
    return save_bundle(tmp_path / "bundle", model, cfg, tok), model, tok


def test_round_trip(saved):
    path, model, tok = saved
    b = load_bundle(path)
    assert b.model_config == model.cfg and b.tokenizer.config == tok.config and b.task is None
    again = MidiBert(b.model_config).eval()
    again.load_state_dict(b.state_dict)
    ids = torch.randint(3, 10, (2, 16, len(tok.families)))
    mask = torch.ones(2, 16, dtype=torch.bool)
    torch.testing.assert_close(again(ids, mask), model(ids, mask), rtol=0, atol=0)


def test_overwrite_leaves_no_temporary_folders(saved):
    path, model, tok = saved
    save_bundle(path, model, model.cfg, tok)
    assert sorted(p.name for p in path.parent.iterdir()) == ["bundle"]


def test_refusals(saved):
    path, model, tok = saved
    Tokenizer.create("cp", kind="score").save(path)  # a tokenizer of another kind slipped in
    with pytest.raises(ValueError, match="does not match"):
        load_bundle(path)
    tok.save(path)
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(ValueError, match="newer"):
        load_bundle(path)
    (path / "config.json").write_text(json.dumps({**config, "model": {**config["model"], "vocab_sizes": [5, 5]}}))
    with pytest.raises(ValueError, match="vocabulary sizes"):
        load_bundle(path)
    (path / "model.safetensors").unlink()
    with pytest.raises(ValueError, match="missing model.safetensors"):
        load_bundle(path)
