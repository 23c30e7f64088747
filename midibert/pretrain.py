"""Masked-LM pre-training, driven by Hydra:

    python -m midibert.pretrain experiment=smoke
    python -m midibert.pretrain experiment=score_bert trainer=gpu
    python -m midibert.pretrain experiment=cpu_small ckpt_path=last     # resume a killed run

Writes checkpoints, logs and, at the end, a bundle (config.json, tokenizer.json,
model.safetensors) of the encoder that fine-tuning starts from.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from midibert.training import (
    CONF_DIR,
    build_trainer,
    check_entry,
    reports_errors,
    resume_path,
    run_hydra,
    save_config,
    seed_everything,
)

log = logging.getLogger("midibert")


def pretrain(cfg: DictConfig, callbacks: list | None = None) -> Path:
    """Run one pre-training job (extra Lightning `callbacks` optional); returns the bundle directory."""
    from midibert.bundle import save_bundle
    from midibert.training.masked_lm import MaskedLM

    check_entry(cfg, "pretrain")
    seed_everything(cfg.seed)
    save_config(cfg, cfg.run_dir)
    dm = hydra.utils.instantiate(cfg.data, seed=cfg.seed, split_seed=cfg.split_seed)
    dm.prepare_data()
    dm.setup("fit")
    tok = dm.tokenizer
    module = MaskedLM(
        encoder=OmegaConf.to_container(cfg.encoder, resolve=True),
        vocab_sizes=tok.vocab_sizes,
        families=tok.families,
        optim=OmegaConf.to_container(cfg.optim, resolve=True),
        mask=OmegaConf.to_container(cfg.mask, resolve=True),
        seed=cfg.seed,
        sources=dm.source_names,
    )
    log.info("encoder: %s, %.1fM parameters", cfg.encoder.preset, sum(p.numel() for p in module.parameters()) / 1e6)
    trainer = build_trainer(cfg, callbacks)
    trainer.fit(module, datamodule=dm, ckpt_path=resume_path(cfg.get("ckpt_path"), cfg.run_dir))
    bundle = Path(cfg.run_dir) / "bundle"
    if trainer.is_global_zero:
        save_bundle(bundle, module.net.bert, module.config, tok, task=None)
        log.info("pre-trained encoder saved to %s", bundle)
    return bundle


@hydra.main(config_path=CONF_DIR, config_name="pretrain", version_base="1.3")
@reports_errors
def main(cfg: DictConfig) -> None:
    pretrain(cfg)


if __name__ == "__main__":
    run_hydra(main)
