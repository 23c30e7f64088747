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


@pytest.mark.parametrize("weights, max_ratio", [("fp16", 0.51), ("int8", 0.27), ("int4", 0.2)])
def test_compact_weights_load_back_as_fp32(tmp_path, weights, max_ratio):
    """Shipped bundles store fp16, int8 with a scale per row, or int4 with a scale per row and group of 32
    columns; loading gives fp32 within the rounding."""
    tok = Tokenizer.create("cp", kind="score")
    cfg = BertConfig.preset("bert-small", vocab_sizes=tok.vocab_sizes)
    torch.manual_seed(0)
    model = MidiBert(cfg).eval()
    full = save_bundle(tmp_path / "fp32", model, cfg, tok)
    small = save_bundle(tmp_path / weights, model, cfg, tok, weights=weights)
    size = (small / "model.safetensors").stat().st_size / (full / "model.safetensors").stat().st_size
    assert size < max_ratio
    assert json.loads((small / "config.json").read_text())["format_version"] == 2
    assert json.loads((full / "config.json").read_text())["format_version"] == 1  # older readers still take it
    state = load_bundle(small).state_dict
    assert state.keys() == model.state_dict().keys()
    for key, original in model.state_dict().items():
        got = state[key]
        assert got.dtype == original.dtype
        large = original.dim() == 2 and original.numel() >= 4096
        if weights == "int4" and large and original.shape[1] % 32 == 0:  # half a step of the group (fp16 scale)
            group = original.reshape(original.shape[0], -1, 32).abs().amax(2, keepdim=True)
            bound = (group / 7 * 0.51).expand(-1, -1, 32).reshape(original.shape)
        elif weights in ("int8", "int4") and large:
            bound = original.abs().amax(1, keepdim=True) / 254  # half a step of the row's scale
        else:
            bound = original.abs() / 2048 + 6e-8  # fp16: 11 significant bits (and subnormals)
        assert ((got - original).abs() <= bound + 1e-7).all(), key
    again = MidiBert(cfg).eval()
    again.load_state_dict(state)
    ids = torch.randint(3, 10, (2, 32, len(tok.families)))
    if weights == "int4":  # 15 levels move single units more; each token's state keeps its direction
        assert torch.nn.functional.cosine_similarity(again(ids), model(ids), dim=-1).min() > 0.98
    else:
        torch.testing.assert_close(again(ids), model(ids), atol=0.05, rtol=0)


@pytest.mark.parametrize("damage", ["truncated", "pickle"])
def test_damaged_weights_are_one_line_exit_2(saved, damage, tmp_path, capsys):
    from midibert.cli import main

    path, model, _ = saved
    weights = path / "model.safetensors"
    if damage == "truncated":  # an interrupted copy
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    else:  # a PyTorch pickle under the bundle's name: must be refused, never unpickled
        torch.save(model.state_dict(), weights)
    with pytest.raises(ValueError, match="model.safetensors: not a readable safetensors file"):
        load_bundle(path)
    assert main(["classify", str(tmp_path / "song.mid"), "--model", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("midibert: error:") and "model.safetensors" in err and err.count("\n") == 1


def test_id2label_must_name_every_class_of_the_head(tmp_path):
    tok = Tokenizer.create("cp", kind="score")
    cfg = BertConfig.preset("bert-tiny", vocab_sizes=tok.vocab_sizes)
    task = {"name": "melody", "level": "token", "num_classes": 3, "arch": "bert", "head": {}}
    path = save_bundle(tmp_path / "b", MidiBert(cfg), cfg, tok, task=task, id2label={0: "melody", 1: "accompaniment"})
    with pytest.raises(ValueError, match=r"id2label names classes \[0, 1\], but the task head has 3"):
        load_bundle(path)


def test_bundle_files_get_ordinary_permissions(tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        tok = Tokenizer.create("cp", kind="score")
        cfg = BertConfig.preset("bert-tiny", vocab_sizes=tok.vocab_sizes)
        path = save_bundle(tmp_path / "b", MidiBert(cfg), cfg, tok)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o755
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.iterdir()} == {
        "config.json": 0o644,
        "tokenizer.json": 0o644,
        "model.safetensors": 0o644,
    }


def test_a_folder_that_is_not_a_bundle_is_never_replaced(saved, tmp_path):
    _, model, tok = saved
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a midibert bundle"):
        save_bundle(mine, model, model.cfg, tok)
    assert (mine / "notes.txt").read_text() == "keep me"
