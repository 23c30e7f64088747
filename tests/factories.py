"""What many test modules build: tiny bundles of each task, random token batches, the main job at
its smallest size. Test modules import these from here, never from one another."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from midibert.bundle import save_bundle
from midibert.model import BertConfig, MidiBert
from midibert.network import build_network
from midibert.tokenize import Tokenizer
from midibert.tokenize.labels import IGNORE, VELOCITY_EDGES
from midibert.tokenize.windows import make_windows

MELODY = {0: "melody", 1: "bridge", 2: "accompaniment"}
VELOCITY = {i: f"v{i}" for i in range(len(VELOCITY_EDGES) - 1)}
STYLE = dict(enumerate("Bethel Clayderman Einaudi Hancock Hillsong Hisaishi Ryuichi Yiruma".split()))


def make_encoder(directory: Path, seed: int = 0) -> Path:
    """A bert-tiny pre-trained bundle with random weights: the plumbing, not the quality, is tested."""
    torch.manual_seed(seed)
    tok = Tokenizer.from_spec("cp-score")
    cfg = BertConfig.preset("bert-tiny", vocab_sizes=tok.vocab_sizes)
    return save_bundle(directory, MidiBert(cfg).eval(), cfg, tok)


def make_bundle(
    directory: Path,
    name: str,
    level: str,
    id2label: dict[int, str],
    spec: str = "cp-score",
    train_on: Path | None = None,
    label_fn=None,
    hide: tuple[str, ...] = (),
    key_to_c: bool = False,
    preset: str = "bert-tiny",
    weights: str = "fp32",
    lr: float = 3e-3,
    steps: int = 40,
) -> Path:
    """A bundle (bert-tiny unless `preset`), trained for a few steps on one song's windows when
    `train_on` is given, its weights stored as `weights`."""
    torch.manual_seed(0)
    tok = Tokenizer.from_spec(spec)
    task = {
        "name": name,
        "level": level,
        "num_classes": len(id2label),
        "arch": "bert",
        "head": {},
        "seq_len": 64,
        "hide_families": list(hide),
        "key_to_c": key_to_c,
    }
    cfg = BertConfig.preset(preset, vocab_sizes=tok.vocab_sizes)
    net = build_network(task, cfg)
    if train_on is not None:
        enc = tok.encode(train_on)
        w = make_windows(enc.ids, enc.note_index, length=64)
        ids, mask, labels = (torch.as_tensor(a) for a in (w.ids, w.attention_mask, w.take(label_fn(enc))))
        opt = torch.optim.AdamW(net.parameters(), lr=lr)
        for _ in range(steps):
            loss = F.cross_entropy(net(ids, mask).flatten(0, 1), labels.flatten(), ignore_index=IGNORE)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return save_bundle(directory, net.eval(), cfg, tok, task=task, id2label=id2label, weights=weights)


CP_VOCAB = [8, 20, 30, 40]  # Bar, Position, Pitch, Duration
REMI_VOCAB = [60]


def batch(vocab=CP_VOCAB, B=3, L=12, seed=0) -> tuple[torch.Tensor, torch.Tensor]:
    """Random real tokens with right padding of different lengths per row."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.stack([torch.randint(3, v, (B, L), generator=g) for v in vocab], dim=-1)
    mask = torch.arange(L)[None] < torch.tensor([L, L - 4, 5])[:B, None]
    ids[~mask] = 0
    return (ids if len(vocab) > 1 else ids[..., 0]), mask


# the main job at its smallest: a few steps of bert-tiny
TINY = [
    "pipeline.pretrain=['data=pretrain_sample','encoder=bert-tiny','trainer.max_steps=4',"
    "'trainer.val_check_interval=2']",
    "pipeline.finetune=['encoder=bert-tiny','trainer.max_steps=3','trainer.val_check_interval=3',"
    "'model.head.hidden=16']",
]
