"""ELECTRA pre-training (replaced-token detection, Clark et al. 2020) as a LightningModule.

Masked LM learns from the 15 % of tokens it hides; ELECTRA's encoder learns from every token:
a small masked-LM generator fills the hidden positions with values sampled from its predictions,
and the encoder (`ReplacedTokenDetector`) says, for each token and family, whether the value is
the original. The generator is trained as `MaskedLM` trains its model, so validation still scores
its masked accuracy against the trivial baselines; the detector is scored against its own trivial
baseline, "nothing was replaced". Only the detector's encoder is kept for fine-tuning.

    python -m midibert.pretrain objective=electra
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from midibert.model import ReplacedTokenDetector
from midibert.training.masked_lm import MaskedLM
from midibert.training.masking import per_family

log = logging.getLogger("midibert")

# ELECTRA's own: a generator a quarter of the encoder's width, the detection loss weighted 50
DEFAULTS = {"generator_scale": 0.25, "detection_weight": 50.0}


class Electra(MaskedLM):
    """`MaskedLM`'s data, masking, schedule and validation, with ELECTRA's objective:
    generator masked-LM loss + `electra.detection_weight` x the detector's binary cross-entropy
    over all real tokens and families (ELECTRA's lambda, 50)."""

    def __init__(self, *args, electra: dict | None = None, **kwargs):
        # MaskedLM's save_hyperparameters keeps `electra` too (in the checkpoint, so a resumed run
        # rebuilds the same generator), before it builds the network
        super().__init__(*args, **kwargs)

    @property
    def _electra(self) -> dict:
        return {**DEFAULTS, **(self.hparams.get("electra") or {})}

    def _network(self) -> torch.nn.Module:
        return ReplacedTokenDetector(
            self.config,
            generator_scale=self._electra["generator_scale"],
            tie_embeddings=self.hparams.mask.get("tie_embeddings", False),
        )

    @property
    def mlm_head(self) -> None:
        """None: the generator's head is a smaller model's, and no use to the detector's encoder."""
        return None

    def _losses(self, batch: dict, masked: tuple, generator: torch.Generator | None):
        inputs, targets, where = masked
        attention = batch["attention_mask"]
        gen = self.net.generator
        logits = gen(inputs, attention)
        out = gen.loss(logits, targets, weighting=self._weighting)
        original = per_family(batch["input_ids"])
        corrupted = self.net.sample(logits, original, where, generator)
        replaced = (corrupted != original)[attention.bool()]  # (tokens, F); a sample equal to the original is original
        scores = self.net(corrupted, attention)[attention.bool()]
        detection = F.binary_cross_entropy_with_logits(scores.float(), replaced.float())
        out["extra"] = {"generator_loss": out["loss"].detach(), "detection_loss": detection.detach()}
        out["loss"] = out["loss"] + self._electra["detection_weight"] * detection
        out["counts"] = {
            "detect_hits": ((scores > 0) == replaced).sum(0),
            "detect_kept": (~replaced).sum(0),
            "detect_n": torch.tensor(len(replaced), device=scores.device).expand(replaced.shape[-1]),
        }
        return out, logits

    def _log_counts(self, c: dict[str, torch.Tensor]) -> None:
        """Also val/detect_acc_<family> beside val/detect_base_<family> (guessing "original" everywhere)."""
        super()._log_counts(c)
        n = c["detect_n"].clamp(min=1)
        for f, name in enumerate(self.families):
            acc, base = c["detect_hits"][f] / n[f], c["detect_kept"][f] / n[f]
            self.log(f"val/detect_acc_{name}", acc)
            self.log(f"val/detect_base_{name}", base)
            if acc < base and self.trainer.is_global_zero:
                log.warning(
                    "step %d: replaced %s detected %.1f %% right, below guessing 'original' everywhere (%.1f %%)",
                    self.global_step,
                    name,
                    100 * float(acc),
                    100 * float(base),
                )
