"""MidiBert encoder and MLM model: shapes, padding invariance, positions, loss, config files."""

from __future__ import annotations

import pytest
import torch

from midibert.model import BertConfig, MidiBert, MidiBertForMLM
from midibert.tokenize import IGNORE
from midibert.training.masking import mask_tokens
from tests.factories import CP_VOCAB, REMI_VOCAB, batch

POSITIONS = ["learned", "rotary", "relative"]


def tiny(vocab=CP_VOCAB, **kw) -> BertConfig:
    return BertConfig.preset("bert-tiny", vocab_sizes=vocab, **kw)


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("pre_norm", [False, True])
@pytest.mark.parametrize("vocab", [CP_VOCAB, REMI_VOCAB], ids=["cp", "remi"])
def test_shapes(vocab, position, pre_norm):
    cfg = tiny(vocab, position=position, pre_norm=pre_norm)
    ids, mask = batch(vocab)
    model = MidiBertForMLM(cfg)
    logits = model(ids, mask)
    assert [lg.shape for lg in logits] == [(3, 12, v) for v in vocab]
    states = model.bert(ids, mask, output_all=True)
    assert len(states) == cfg.layers + 1 and all(s.shape == (3, 12, 32) for s in states)
    assert torch.isfinite(states[-1]).all()


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("vocab", [CP_VOCAB, REMI_VOCAB], ids=["cp", "remi"])
def test_padding_does_not_change_real_outputs(vocab, position):
    model = MidiBert(tiny(vocab, position=position)).eval()
    ids, mask = batch(vocab)
    ref = model(ids, mask)
    # more padding at the end, and garbage ids under the padding
    pad = torch.zeros((3, 7) + ids.shape[2:], dtype=ids.dtype)
    longer_ids, longer_mask = torch.cat([ids, pad], 1), torch.cat([mask, torch.zeros(3, 7, dtype=torch.bool)], 1)
    garbage = longer_ids.clone()
    garbage[~longer_mask] = 5
    for x in (longer_ids, garbage):
        out = model(x, longer_mask)
        torch.testing.assert_close(out[:, :12][mask], ref[mask], atol=1e-5, rtol=1e-5)


def test_default_attention_mask_is_non_pad_tokens():
    model = MidiBert(tiny()).eval()
    ids, mask = batch()
    torch.testing.assert_close(model(ids), model(ids, mask))


def test_all_padding_row_stays_finite():
    model = MidiBert(tiny()).eval()
    ids, mask = batch()
    mask[2] = False
    assert torch.isfinite(model(ids, mask)).all()


def test_learned_positions_reject_too_long_sequences():
    model = MidiBert(tiny(max_len=8, position="learned"))  # rotary, the default, has no length limit
    with pytest.raises(ValueError, match="max_len"):
        model(*batch())


def test_rotary_and_relative_take_any_length():
    for position in ("rotary", "relative"):
        model = MidiBert(tiny(max_len=8, position=position))
        assert model(*batch()).shape == (3, 12, 32)


@pytest.mark.parametrize("tie", [False, True], ids=["untied", "tied"])
def test_mlm_loss_decreases_on_a_fixed_batch(tie):
    torch.manual_seed(0)
    model = MidiBertForMLM(tiny(dropout=0.0), tie_embeddings=tie)
    ids, mask = batch(B=3, L=16)
    masked, targets, _ = mask_tokens(ids, mask, CP_VOCAB, rate=0.3, generator=torch.Generator().manual_seed(1))
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(50):  # tied heads start slower: their logits are a product of two small matrices
        out = model.loss(model(masked, mask), targets)
        opt.zero_grad()
        out["loss"].backward()
        opt.step()
        losses.append(out["loss"].item())
    assert losses[-1] < 0.5 * losses[0]
    assert len(out["family_loss"]) == len(out["family_acc"]) == 4
    assert all(0.5 < a <= 1 for a in out["family_acc"])


def test_tied_heads_score_against_the_input_tables():
    model = MidiBertForMLM(tiny(), tie_embeddings=True)
    ids, mask = batch()
    hidden = model.bert(ids, mask)
    for f, logits in enumerate(model(ids, mask)):
        table = model.bert.embed.tables[f].weight
        expect = model.head.heads[f](hidden) @ (table * model.bert.embed.scale).T + model.head.bias[f]
        torch.testing.assert_close(logits, expect)
    # the tables are the encoder's, not copies: one parameter each, trained from both ends
    assert not any(p.ndim == 2 and p.shape[0] in CP_VOCAB for p in model.head.parameters())


def test_loss_weighting():
    ids, mask = batch()
    targets = torch.full_like(ids, IGNORE)
    targets[:, :3] = ids[:, :3]
    model = MidiBertForMLM(tiny())
    logits = model(ids, mask)
    for weighting, expect in (("vocab", torch.tensor(CP_VOCAB) / sum(CP_VOCAB)), ("equal", torch.full((4,), 0.25))):
        out = model.loss(logits, targets, weighting=weighting)
        torch.testing.assert_close(out["loss"], (expect * torch.stack(out["family_loss"])).sum())
        assert all(0 <= a <= 1 for a in out["family_acc"])
    with pytest.raises(ValueError):
        model.loss(logits, targets, weighting="bogus")


def test_loss_skips_families_with_nothing_to_predict():
    model = MidiBertForMLM(tiny())
    ids, mask = batch()
    targets = torch.full_like(ids, IGNORE)
    targets[0, 0, 2] = ids[0, 0, 2]
    out = model.loss(model(ids, mask), targets)
    assert torch.isfinite(out["loss"]) and torch.isfinite(out["family_loss"][2])
    assert torch.isnan(out["family_loss"][0]) and torch.isnan(out["family_acc"][3])


def test_presets_and_config_round_trip(tmp_path):
    base = BertConfig.preset("bert-base", vocab_sizes=CP_VOCAB)
    assert (base.layers, base.hidden, base.heads, base.ffn) == (12, 768, 12, 3072)
    small = BertConfig.preset("bert-small", vocab_sizes=CP_VOCAB, position="rotary")
    assert (small.layers, small.hidden, small.position) == (4, 256, "rotary")
    assert BertConfig.from_dict(small.to_dict()) == small
    with pytest.raises(ValueError):
        BertConfig.preset("bert-huge", vocab_sizes=CP_VOCAB)
    with pytest.raises(ValueError):
        tiny(position="sinusoidal")
    with pytest.raises(ValueError):
        tiny(heads=5)


def test_bert_initialisation():
    model = MidiBertForMLM(BertConfig.preset("bert-small", vocab_sizes=CP_VOCAB))
    w = model.bert.layers[0].ffn[0].weight
    assert abs(w.std().item() - 0.02) < 0.002 and model.bert.layers[0].ffn[0].bias.abs().max() == 0


@pytest.mark.parametrize("position", ["learned", "rotary"])  # relative always passes its bias as the mask
def test_full_windows_skip_the_mask_with_the_same_outputs(position, monkeypatch):
    """A batch of full windows reaches SDPA without a mask (so it may pick the flash kernel); the
    outputs are those an all-True padding mask gives."""
    import midibert.model as m

    model = MidiBert(tiny(position=position)).eval()
    ids, _ = batch()
    full = torch.ones(ids.shape[:2], dtype=torch.bool)
    sdpa, masks = m.F.scaled_dot_product_attention, []

    def spy(q, k, v, attn_mask=None, **kw):
        masks.append(attn_mask)
        return sdpa(q, k, v, attn_mask=attn_mask, **kw)

    def always_masked(q, k, v, attn_mask=None, **kw):
        keys = full[:, None, None, :] if attn_mask is None else attn_mask
        return sdpa(q, k, v, attn_mask=keys, **kw)

    monkeypatch.setattr(m.F, "scaled_dot_product_attention", spy)
    shortcut = model(ids, full)
    assert len(masks) == model.cfg.layers and all(mask is None for mask in masks)
    monkeypatch.setattr(m.F, "scaled_dot_product_attention", always_masked)
    torch.testing.assert_close(model(ids, full), shortcut, atol=1e-6, rtol=1e-6)


def test_electra_generator_shares_the_tables_and_samples_only_masked_positions():
    from midibert.model import ReplacedTokenDetector
    from midibert.tokenize.base import SPECIALS

    cfg = BertConfig.preset("bert-small", vocab_sizes=CP_VOCAB, layers=1)
    net = ReplacedTokenDetector(cfg, generator_scale=0.25)
    assert (net.generator.cfg.hidden, net.generator.cfg.heads, net.generator.cfg.ffn) == (64, 1, 256)
    assert all(a is b for a, b in zip(net.generator.bert.embed.tables, net.bert.embed.tables))
    g = torch.Generator().manual_seed(0)
    ids = torch.stack([torch.randint(len(SPECIALS), v, (2, 12), generator=g) for v in CP_VOCAB], -1)
    where = torch.zeros(2, 12, dtype=torch.bool)
    where[0, 3] = where[1, 7] = True
    # logits that favour the special ids: they must still never be drawn
    logits = [torch.zeros(2, 12, v).index_fill_(-1, torch.arange(len(SPECIALS)), 50.0) for v in CP_VOCAB]
    out = net.sample(logits, ids, where, g)
    assert torch.equal(out[~where], ids[~where])
    assert (out[where] >= len(SPECIALS)).all()
    assert net(out).shape == (2, 12, len(CP_VOCAB))
