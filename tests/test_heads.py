"""Fine-tuning heads: shapes, pooling ignores padding, freezing, layer-wise LR decay."""

from __future__ import annotations

import re
import textwrap

import pytest
import torch

import midibert.heads
from midibert.bundle import load_bundle, save_bundle
from midibert.heads import AttentionPool, SequenceClassifier, TokenClassifier, layerwise_lr_groups
from midibert.model import BertConfig, MidiBert
from midibert.tokenize import Tokenizer
from tests.factories import CP_VOCAB, batch


def encoder(**kw) -> MidiBert:
    return MidiBert(BertConfig.preset("bert-tiny", vocab_sizes=CP_VOCAB, **kw))


def test_token_classifier_shape_and_freeze():
    ids, mask = batch()
    clf = TokenClassifier(encoder(), 3, hidden=16)
    assert clf(ids, mask).shape == (3, 12, 3)
    frozen = TokenClassifier(encoder(), 3, freeze_encoder=True)
    assert not any(p.requires_grad for p in frozen.encoder.parameters())
    assert all(p.requires_grad for p in frozen.classifier.parameters())


@pytest.mark.parametrize("position", ["learned", "relative"])
def test_sequence_classifier_ignores_padding(position):
    clf = SequenceClassifier(encoder(position=position), 5, hidden=16).eval()
    ids, mask = batch()
    ref = clf(ids, mask)
    assert ref.shape == (3, 5)
    longer = torch.cat([ids, torch.full((3, 6, 4), 7)], 1)  # garbage ids under the new padding
    longer_mask = torch.cat([mask, torch.zeros(3, 6, dtype=torch.bool)], 1)
    torch.testing.assert_close(clf(longer, longer_mask), ref, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(clf(ids), ref)  # default mask: tokens that are not all PAD


def test_attention_pool_weights_only_real_tokens():
    pool = AttentionPool(4, hops=2, att_hidden=8)
    x = torch.randn(1, 5, 4)
    mask = torch.tensor([[True, True, False, False, False]])
    x_changed = x.clone()
    x_changed[0, 2:] = 1e3
    torch.testing.assert_close(pool(x, mask), pool(x_changed, mask))
    assert pool(x, mask).shape == (1, 8)


def test_layerwise_lr_groups():
    clf = SequenceClassifier(encoder(), 4)
    groups = layerwise_lr_groups(clf, base_lr=1.0, decay=0.5, weight_decay=0.1)
    n_params = sum(len(g["params"]) for g in groups)
    assert n_params == len(list(clf.parameters()))
    lr_of = {id(p): g["lr"] for g in groups for p in g["params"]}
    wd_of = {id(p): g["weight_decay"] for g in groups for p in g["params"]}
    enc = clf.encoder
    assert lr_of[id(clf.classifier[1].weight)] == 1.0
    assert lr_of[id(enc.layers[1].ffn[0].weight)] == 0.5
    assert lr_of[id(enc.layers[0].ffn[0].weight)] == 0.25
    assert lr_of[id(enc.embed.tables[0].weight)] == 0.125
    assert wd_of[id(enc.layers[0].ffn[0].bias)] == 0.0 and wd_of[id(enc.layers[0].ffn[0].weight)] == 0.1
    torch.optim.AdamW(groups)  # a valid optimizer spec
    frozen = TokenClassifier(encoder(), 2, freeze_encoder=True)
    assert all(g["lr"] == 1.0 for g in layerwise_lr_groups(frozen, 1.0, 0.5))
    with pytest.raises(ValueError):
        layerwise_lr_groups(torch.nn.Linear(2, 2), 1.0, 0.5)


def test_module_docstring_example_runs(tmp_path):
    """heads.py's example, its bundle path pointed at a saved encoder: the head sits on those weights."""
    tok = Tokenizer.create("cp", kind="score")
    pretrained = MidiBert(BertConfig.preset("bert-tiny", vocab_sizes=tok.vocab_sizes))
    save_bundle(tmp_path / "encoder", pretrained, pretrained.cfg, tok)
    code = textwrap.dedent(re.search(r"\n\n((?:    .*\n)+)\n", midibert.heads.__doc__).group(1))
    code = code.replace('"runs/pretrain/smoke/bundle"', repr(str(tmp_path / "encoder")))
    input_ids, attention_mask = batch(vocab=tok.vocab_sizes)
    scope = {
        "load_bundle": load_bundle,
        "MidiBert": MidiBert,
        "SequenceClassifier": SequenceClassifier,
        "input_ids": input_ids,
        "attention_mask": attention_mask,
    }
    exec(compile(code, "heads-docstring", "exec"), scope)
    assert scope["logits"].shape == (3, 8)
    loaded = scope["clf"].encoder.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in pretrained.state_dict().items())
