"""Masked-LM pre-training as a LightningModule: masking, per-family loss and accuracy, AdamW with
linear warmup and cosine decay."""
from __future__ import annotations

import math

import pytorch_lightning as pl
import torch

from midibert.masking import cp_bar_start, mask_tokens
from midibert.model import BertConfig, MidiBertForMLM
from midibert.tokenize.remi import BAR as REMI_BAR

MODEL_KEYS = ("arch", "preset", "lr", "freeze", "head")  # Hydra `model` keys that are not BertConfig fields


def model_config(model: dict, vocab_sizes: list[int]) -> BertConfig:
    """A BertConfig from a Hydra `model` group: a preset name plus any field overridden."""
    overrides = {k: v for k, v in dict(model).items() if k not in MODEL_KEYS}
    return BertConfig.preset(model.get("preset", "bert-small"), vocab_sizes=list(vocab_sizes), **overrides)


def adamw_with_schedule(module: pl.LightningModule, params, lr: float, weight_decay: float,
                        warmup_steps: int, betas=(0.9, 0.98), min_lr_ratio: float = 0.0):
    """AdamW (no decay on biases and norms), linear warmup, then cosine decay to the trainer's max_steps."""
    named = list(params)
    decay = [p for n, p in named if p.requires_grad and p.ndim >= 2]
    no_decay = [p for n, p in named if p.requires_grad and p.ndim < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=lr, betas=tuple(betas))
    total = max(1, module.trainer.max_steps if module.trainer.max_steps > 0 else module.trainer.estimated_stepping_batches)

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        progress = min(1.0, (step - warmup_steps) / max(1, total - warmup_steps))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


class MaskedLM(pl.LightningModule):
    """BERT pre-training on CP or REMI tokens.

    Every step's randomness (masking and dropout) is seeded from (seed, global step), so a run
    resumed from a checkpoint takes exactly the steps the uninterrupted run would have taken.
    """

    def __init__(self, model: dict, vocab_sizes: list[int], families: list[str], optim: dict, mask: dict,
                 seed: int = 0):
        super().__init__()
        self.save_hyperparameters()
        self.config = model_config(model, vocab_sizes)
        self.net = MidiBertForMLM(self.config)
        self.families = list(families)

    def _masked(self, batch: dict, generator: torch.Generator | None):
        m = self.hparams.mask
        ids = batch["input_ids"]
        # bar masking finds bar lines by the Bar family (CP, the default) or the Bar token (REMI)
        bar_start = (lambda x: x == REMI_BAR) if ids.dim() == 2 else cp_bar_start
        return mask_tokens(ids, batch["attention_mask"], self.config.vocab_sizes, rate=m.get("rate", 0.15),
                           mode=m.get("mode", "token"), generator=generator, bar_start=bar_start)

    def _step(self, batch: dict, stage: str, generator: torch.Generator | None) -> torch.Tensor:
        inputs, targets, _ = self._masked(batch, generator)
        logits = self.net(inputs, batch["attention_mask"])
        out = self.net.loss(logits, targets, weighting=self.hparams.mask.get("loss_weighting", "vocab"))
        bs, sync = batch["input_ids"].shape[0], stage != "train"
        self.log(f"{stage}/loss", out["loss"], prog_bar=True, batch_size=bs, sync_dist=sync)
        for name, loss, acc in zip(self.families, out["family_loss"], out["family_acc"]):
            if not torch.isnan(loss):  # a family with nothing masked in this batch
                self.log_dict({f"{stage}/loss_{name}": loss, f"{stage}/acc_{name}": acc}, batch_size=bs, sync_dist=sync)
        return out["loss"]

    def on_train_batch_start(self, batch, batch_idx) -> None:
        torch.manual_seed(self.hparams.seed * 1_000_003 + self.global_step)

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train", None)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        # The same masks every validation pass, so validation losses are comparable over time.
        g = torch.Generator(device=batch["input_ids"].device).manual_seed(self.hparams.seed + batch_idx)
        self._step(batch, "val", g)

    def configure_optimizers(self):
        o = self.hparams.optim
        return adamw_with_schedule(self, self.net.named_parameters(), lr=o["lr"], weight_decay=o["weight_decay"],
                                   warmup_steps=o["warmup_steps"], betas=o.get("betas", (0.9, 0.98)))
