"""Masked-LM pre-training as a LightningModule: masking, per-family loss and accuracy beside
trivial baselines on the same masked positions (overall and per corpus of the mix), AdamW with
warmup and cosine decay (`optim`)."""

from __future__ import annotations

import logging

import pytorch_lightning as pl
import torch

from midibert.model import BertConfig, MidiBertForMLM
from midibert.training.masking import copy_baselines, mask_tokens, per_family
from midibert.training.optim import adamw_with_schedule, decay_groups

log = logging.getLogger("midibert")


def model_config(encoder: dict, vocab_sizes: list[int]) -> BertConfig:
    """A BertConfig from a Hydra `encoder` group (a preset size plus any BertConfig field
    overridden) or from a bundle's config (every field, no preset)."""
    fields = {k: v for k, v in encoder.items() if k != "vocab_sizes"}
    if "preset" not in fields:
        return BertConfig(vocab_sizes=list(vocab_sizes), **fields)
    return BertConfig.preset(fields.pop("preset"), vocab_sizes=list(vocab_sizes), **fields)


class MaskedLM(pl.LightningModule):
    """BERT pre-training on CP or REMI tokens.

    Every step's randomness (masking and dropout) is seeded from (seed, global step), so a run
    resumed from a checkpoint takes exactly the steps the uninterrupted run would have taken.
    `sources` names the corpora of the mix (the batches' `source` indexes it): validation then
    also scores each corpus apart, since one average over transcriptions and quantized scores
    hides where a family is hard.
    """

    def __init__(
        self,
        encoder: dict,
        vocab_sizes: list[int],
        families: list[str],
        optim: dict,
        mask: dict,
        seed: int = 0,
        sources: list[str] | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.config = model_config(encoder, vocab_sizes)
        self.net = self._network()
        self.families = list(families)
        self.sources = list(sources or [])

    def _network(self) -> torch.nn.Module:
        return MidiBertForMLM(self.config, tie_embeddings=self.hparams.mask.get("tie_embeddings", False))

    @property
    def encoder(self) -> torch.nn.Module:
        """The encoder that fine-tuning starts from."""
        return self.net.bert

    @property
    def mlm_head(self) -> torch.nn.Module | None:
        """The masked-LM head that goes on with the encoder (`init_from`)."""
        return self.net.head

    def _masked(self, batch: dict, generator: torch.Generator | None):
        m = self.hparams.mask
        return mask_tokens(
            batch["input_ids"],
            batch["attention_mask"],
            self.config.vocab_sizes,
            rate=m.get("rate", 0.15),
            mode=m.get("mode", "token"),
            generator=generator,
            bar_start=batch.get("bar_start"),
        )

    def _losses(self, batch: dict, masked: tuple, generator: torch.Generator | None) -> tuple[dict, list[torch.Tensor]]:
        """The loss dict of `MidiBertForMLM.loss` (plus any `extra` scalars to log and validation
        `counts` to sum) and the masked-LM logits the validation scores count."""
        inputs, targets, _ = masked
        logits = self.net(inputs, batch["attention_mask"])
        return self.net.loss(logits, targets, weighting=self._weighting), logits

    @property
    def _weighting(self) -> str:
        # checkpoints from before the option existed were trained with the paper's weighting
        return self.hparams.mask.get("loss_weighting", "vocab")

    def _step(self, batch: dict, stage: str, generator: torch.Generator | None) -> torch.Tensor:
        masked = self._masked(batch, generator)
        out, logits = self._losses(batch, masked, generator)
        bs = batch["input_ids"].shape[0]
        self.log(f"{stage}/loss", out["loss"], prog_bar=True, batch_size=bs, sync_dist=stage != "train")
        for key, value in out.get("extra", {}).items():
            self.log(f"{stage}/{key}", value, batch_size=bs, sync_dist=stage != "train")
        if stage == "train":
            for name, loss, acc in zip(self.families, out["family_loss"], out["family_acc"]):
                if not torch.isnan(loss):  # a family with nothing masked in this batch
                    self.log_dict({f"train/loss_{name}": loss, f"train/acc_{name}": acc}, batch_size=bs)
        else:
            self._count(batch, logits, *masked[1:])
            for key, val in out.get("counts", {}).items():
                self._counts[key] = self._counts.get(key, 0) + val
        return out["loss"]

    def _count(self, batch: dict, logits: list[torch.Tensor], targets: torch.Tensor, where: torch.Tensor) -> None:
        """Exact per-family hit counts of the model and of the trivial baselines over a validation pass."""
        t3 = per_family(targets)
        right = torch.stack([lg.argmax(-1) == t3[..., f] for f, lg in enumerate(logits)], -1)  # (B, L, F)
        prev, nxt, n = copy_baselines(batch["input_ids"], where, batch["attention_mask"])
        size = max(self.config.vocab_sizes)  # one row per family, padded to the largest vocabulary
        values = torch.stack([torch.bincount(t3[..., f][where], minlength=size) for f in range(t3.shape[-1])])
        counts = {"model": right[where].sum(0), "prev": prev, "next": nxt, "n": n, "values": values}
        if self.sources and "source" in batch:
            per = []
            for k in range(len(self.sources)):
                # rows of other corpora drop out of `where`; a row's own neighbours are unchanged
                mine = where & (batch["source"] == k)[:, None]
                p, _, m = copy_baselines(batch["input_ids"], mine, batch["attention_mask"])
                per.append(torch.stack([right[mine].sum(0), p, m]))
            counts["by_source"] = torch.stack(per)  # (sources, model/prev/n, F)
        for key, val in counts.items():
            self._counts[key] = self._counts.get(key, 0) + val

    def on_validation_epoch_start(self) -> None:
        self._counts: dict[str, torch.Tensor] = {}

    def on_validation_epoch_end(self) -> None:
        if self._counts:
            self._log_counts(
                {k: self.trainer.strategy.reduce(v.float(), reduce_op="sum") for k, v in self._counts.items()}
            )

    def _log_counts(self, c: dict[str, torch.Tensor]) -> None:
        """Log val/acc_<family> beside val/base_{prev,next,unigram}_<family>; warn when the model
        is below its best trivial baseline (it then treats the window as a bag of tokens)."""
        n = c["n"].clamp(min=1)
        unigram = c["values"].max(-1).values  # the most frequent value among the masked targets
        for f, name in enumerate(self.families):
            accs = {
                "model": c["model"][f] / n[f],
                "prev": c["prev"][f] / n[f],
                "next": c["next"][f] / n[f],
                "unigram": unigram[f] / n[f],
            }
            self.log(f"val/acc_{name}", accs["model"])
            for base in ("prev", "next", "unigram"):
                self.log(f"val/base_{base}_{name}", accs[base])
            best = max(("prev", "next", "unigram"), key=lambda b: float(accs[b]))
            if accs["model"] < accs[best] and self.trainer.is_global_zero:
                log.warning(
                    "step %d: masked %s accuracy %.1f %% is below the trivial %s baseline %.1f %%",
                    self.global_step,
                    name,
                    100 * float(accs["model"]),
                    best,
                    100 * float(accs[best]),
                )
        if "by_source" in c:
            self._log_sources(c["by_source"])

    def _log_sources(self, counts: torch.Tensor) -> None:
        """val/<corpus>/acc_<family> and val/<corpus>/base_prev_<family>, and one log line per corpus."""
        for k, source in enumerate(self.sources):
            hits, prev, n = counts[k]
            if not n.any():
                continue
            for f, name in enumerate(self.families):
                self.log(f"val/{source}/acc_{name}", hits[f] / n[f])
                self.log(f"val/{source}/base_prev_{name}", prev[f] / n[f])
            if self.trainer.is_global_zero:
                log.info(
                    "step %d: masked accuracy on %s (copy previous), %d tokens: %s",
                    self.global_step,
                    source,
                    int(n[0]),
                    ", ".join(
                        f"{name} {100 * float(hits[f] / n[f]):.1f} ({100 * float(prev[f] / n[f]):.1f})"
                        for f, name in enumerate(self.families)
                    ),
                )

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
        return adamw_with_schedule(
            self,
            decay_groups(self.net.named_parameters(), o["weight_decay"]),
            lr=o["lr"],
            warmup_steps=o["warmup_steps"],
            betas=o.get("betas", (0.9, 0.98)),
        )
