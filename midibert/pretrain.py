"""Masked-LM pre-training, driven by Hydra:

    python -m midibert.pretrain experiment=smoke
    python -m midibert.pretrain experiment=score_bert trainer=gpu
    python -m midibert.pretrain experiment=cpu_small ckpt_path=last     # resume a killed run
    python -m midibert.pretrain init_from=runs/pretrain/cpu_small/bundle data.datasets=[...]  # go on, on other data
    python -m midibert.pretrain objective=electra     # replaced-token detection instead of masked LM

Writes checkpoints, logs and, at the end, a bundle (config.json, tokenizer.json,
model.safetensors, and the masked-LM head in mlm_head.safetensors) of the encoder that
fine-tuning starts from.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from midibert.errors import require_extra

require_extra("train", main=__name__ == "__main__")

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

if TYPE_CHECKING:  # both import torch, which the CLI loads only in the commands that train
    from midibert.bundle import Bundle
    from midibert.training.masked_lm import MaskedLM

log = logging.getLogger("midibert")

OBJECTIVES = ("mlm", "electra")


def pretrain(cfg: DictConfig, callbacks: list | None = None) -> Path:
    """Run one pre-training job (extra Lightning `callbacks` optional); returns the bundle directory."""
    from midibert.bundle import save_bundle

    check_entry(cfg, "pretrain")
    objective = cfg.get("objective", "mlm")
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    if objective == "electra" and cfg.get("init_from"):
        raise ValueError("init_from goes on with masked LM only (objective=mlm): a bundle keeps no ELECTRA generator")
    seed_everything(cfg.seed)
    save_config(cfg, cfg.run_dir)
    start = _start_from(cfg.init_from) if cfg.get("init_from") else None
    tokenizer = {"tokenizer": start.tokenizer.spec} if start else {}
    if start and cfg.data.tokenizer != start.tokenizer.spec:
        log.warning(
            "init_from: tokens are %s, the bundle's, not data.tokenizer=%s", start.tokenizer.spec, cfg.data.tokenizer
        )
    dm = hydra.utils.instantiate(cfg.data, seed=cfg.seed, split_seed=cfg.split_seed, **tokenizer)
    dm.prepare_data()
    dm.setup("fit")
    tok = dm.tokenizer
    encoder = start.model_config.to_dict() if start else OmegaConf.to_container(cfg.encoder, resolve=True)
    module = _module(cfg)(
        encoder=encoder,
        vocab_sizes=tok.vocab_sizes,
        families=tok.families,
        optim=OmegaConf.to_container(cfg.optim, resolve=True),
        mask=OmegaConf.to_container(cfg.mask, resolve=True),
        seed=cfg.seed,
        sources=dm.source_names,
    )
    if start:
        _load_start(module, start, cfg.init_from)
    else:
        log.info("encoder: %s, %.1fM parameters", cfg.encoder.preset, sum(p.numel() for p in module.parameters()) / 1e6)
    trainer = build_trainer(cfg, callbacks)
    trainer.fit(module, datamodule=dm, ckpt_path=resume_path(cfg.get("ckpt_path"), cfg.run_dir))
    bundle = Path(cfg.run_dir) / "bundle"
    if trainer.is_global_zero:
        save_bundle(bundle, module.encoder, module.config, tok, task=None, mlm_head=module.mlm_head)
        log.info("pre-trained encoder saved to %s", bundle)
    return bundle


def _module(cfg: DictConfig) -> Callable[..., MaskedLM]:
    """The LightningModule of `cfg.objective`, its own settings bound."""
    if cfg.get("objective", "mlm") == "electra":
        from midibert.training.electra import Electra

        return partial(Electra, electra=OmegaConf.to_container(cfg.electra, resolve=True))
    from midibert.training.masked_lm import MaskedLM

    return MaskedLM


def _start_from(path: str) -> Bundle:
    """The pre-trained bundle `init_from` names (a fine-tuned task model is refused: its encoder has
    been trained away from masked LM, and its head is a classifier)."""
    from midibert.bundle import load_bundle
    from midibert.pretrained import resolve

    start = load_bundle(resolve(path))  # a bundle directory, a packaged encoder's name or a Hub id
    if start.task is not None:
        raise ValueError(
            f"init_from={path}: a fine-tuned {start.task.get('name')} model, not a pre-trained encoder; "
            "give the bundle pre-training wrote (<run_dir>/bundle)"
        )
    return start


def _load_start(module: MaskedLM, start: Bundle, path: str) -> None:
    """Copy the bundle's encoder, and its masked-LM head where it has one, into `module`: pre-training
    goes on from there on this run's data (its tokenizer and encoder size are the bundle's)."""
    from midibert.bundle import HEAD_FILE, load_mlm_head

    module.net.bert.load_state_dict(start.state_dict)
    head = load_mlm_head(start.path)
    if head is None:
        log.warning(
            "init_from=%s has no %s (written before it was kept): the masked-LM head starts afresh", path, HEAD_FILE
        )
    else:
        try:
            module.net.head.load_state_dict(head)
        except RuntimeError as e:  # a tied head into an untied one, or the reverse
            raise ValueError(
                f"{path}/{HEAD_FILE} does not fit this run's masked-LM head (mask.tie_embeddings="
                f"{module.net.head.tied} here): {str(e).splitlines()[0]}"
            ) from e
    n = sum(p.numel() for p in module.parameters()) / 1e6
    log.info("encoder: from %s (%s), %.1fM parameters", path, start.tokenizer.spec, n)


@hydra.main(config_path=CONF_DIR, config_name="pretrain", version_base="1.3")
@reports_errors
def main(cfg: DictConfig) -> None:
    pretrain(cfg)


if __name__ == "__main__":
    run_hydra(main)
