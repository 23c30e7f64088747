"""Fine-tuning as a LightningModule: one class for token tasks (melody, velocity) and sequence
tasks (style, emotion), whatever network computes the logits (BERT + head, or a BiLSTM)."""

from __future__ import annotations

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from midibert.heads import layerwise_lr_groups
from midibert.network import network_input
from midibert.tokenize.labels import IGNORE
from midibert.training.optim import adamw_with_schedule, decay_groups
from midibert.transpose import transpose


class FineTuner(pl.LightningModule):
    """Cross-entropy fine-tuning with accuracy logged; predictions come back as probabilities.

    hide_families: indices of the token families `network.hide_families` replaces by MASK in
    every input, so a task never sees its own target (velocity on performance tokens).
    transpose: move each training window by up to this many semitones (`transpose.transpose`),
    where the tokens' pitches are `pitch_ids` (`Tokenizer.pitch_ids`); 0 leaves them as they are.
    key_to_c: move every window, in training and in prediction, so its most used pitch class is C
    (`network.network_input`).
    """

    def __init__(
        self,
        net: torch.nn.Module,
        level: str,
        num_classes: int,
        optim: dict,
        seed: int = 0,
        class_weights: list[float] | None = None,
        hide_families: list[int] | None = None,
        transpose: int = 0,
        pitch_ids: tuple[int | None, int, int, int] | None = None,
        key_to_c: bool = False,
    ):
        super().__init__()
        self.save_hyperparameters(ignore=["net"])
        self.net = net
        weights = torch.tensor(class_weights, dtype=torch.float) if class_weights else None
        self.register_buffer("class_weights", weights, persistent=False)

    def forward(self, batch: dict) -> torch.Tensor:
        h, mask = self.hparams, batch["attention_mask"]
        ids = network_input(batch["input_ids"], mask, h.hide_families or [], h.pitch_ids if h.key_to_c else None)
        return self.net(ids, mask, batch["features"]) if "features" in batch else self.net(ids, mask)

    def _step(self, batch: dict, stage: str) -> torch.Tensor:
        logits = self(batch)
        labels = batch["labels"]
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), weight=self.class_weights, ignore_index=IGNORE
        )
        keep = labels != IGNORE
        acc = (logits.argmax(-1)[keep] == labels[keep]).float().mean()
        bs = labels.shape[0]
        self.log(f"{stage}/loss", loss, prog_bar=True, batch_size=bs, sync_dist=stage != "train")
        self.log(f"{stage}/acc", acc, prog_bar=stage != "train", batch_size=bs, sync_dist=stage != "train")
        return loss

    def on_train_batch_start(self, batch, batch_idx) -> None:
        torch.manual_seed(self.hparams.seed * 1_000_003 + self.global_step)  # exact resume, as in MaskedLM

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        if self.hparams.transpose:
            batch = {
                **batch,
                "input_ids": transpose(batch["input_ids"], self.hparams.pitch_ids, self.hparams.transpose),
            }
        return self._step(batch, "train")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._step(batch, "val")

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        probs = self(batch).float().softmax(-1)
        return {
            k: v.cpu()
            for k, v in {
                "probs": probs,
                **{k: batch[k] for k in ("labels", "note_index", "piece") if k in batch},
            }.items()
        }

    def configure_optimizers(self):
        o = self.hparams.optim
        decay = o.get("layer_decay", 1.0)
        if decay != 1.0 and hasattr(self.net, "encoder"):
            groups = layerwise_lr_groups(self.net, o["lr"], decay, weight_decay=o["weight_decay"])
        else:
            groups = decay_groups(self.net.named_parameters(), o["weight_decay"])
        return adamw_with_schedule(
            self, groups, lr=o["lr"], warmup_steps=o.get("warmup_steps", 0), betas=o.get("betas", (0.9, 0.999))
        )
