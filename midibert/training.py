"""What the Hydra entry points share: seeding, the trainer with its logger and callbacks, resuming.

Only the commands that train import this module (it pulls in torch and Lightning).
"""
from __future__ import annotations

import logging
import os
import socket
from importlib.resources import files
from pathlib import Path

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("midibert")

# The Hydra configs ship inside the package, so an installed wheel finds them; the checkout's
# top-level conf/ is a link to this folder. pip never installs a package zipped, so it is a real
# directory that Hydra can search.
CONF_DIR = str(files("midibert") / "conf")


def wandb_logger(project: str, save_dir: str, name: str | None = None, **kwargs):
    """A WandbLogger that never hangs or prompts: offline without an API key or a reachable server."""
    from pytorch_lightning.loggers import WandbLogger

    if "WANDB_MODE" not in os.environ:
        online = bool(os.environ.get("WANDB_API_KEY") or _netrc_has_wandb()) and _reachable("api.wandb.ai")
        os.environ["WANDB_MODE"] = "online" if online else "offline"
    log.info("wandb mode: %s", os.environ["WANDB_MODE"])
    os.environ.setdefault("WANDB_SILENT", "true")
    return WandbLogger(project=project, save_dir=save_dir, name=name, **kwargs)


def _netrc_has_wandb() -> bool:
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    return path.is_file() and "api.wandb.ai" in path.read_text(errors="ignore")


def _reachable(host: str, port: int = 443, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def seed_everything(seed: int) -> int:
    """Seed python, numpy and torch (and dataloader workers); logged so every run names its seed."""
    pl.seed_everything(seed, workers=True)
    log.info("seed: %d", seed)
    return seed


def build_trainer(cfg: DictConfig, extra_callbacks: list | None = None, **overrides) -> pl.Trainer:
    """The trainer of `cfg.trainer` with the logger of `cfg.logger` and callbacks of `cfg.callbacks`."""
    callbacks = [hydra.utils.instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    logger = hydra.utils.instantiate(cfg.logger) if cfg.get("logger") else False
    if logger is False:  # a learning-rate monitor has nothing to write to without a logger
        callbacks = [c for c in callbacks if not isinstance(c, pl.callbacks.LearningRateMonitor)]
    return hydra.utils.instantiate(cfg.trainer, callbacks=callbacks + (extra_callbacks or []),
                                   logger=logger, default_root_dir=cfg.run_dir, **overrides)


def resume_path(ckpt_path: str | None, run_dir: str) -> str | None:
    """`ckpt_path=last` means this run's own last.ckpt when there is one (else start fresh)."""
    if ckpt_path != "last":
        return ckpt_path
    last = Path(run_dir) / "checkpoints" / "last.ckpt"
    if last.is_file():
        log.info("resuming from %s", last)
        return str(last)
    log.info("no %s yet: starting fresh", last)
    return None


def save_config(cfg: DictConfig, run_dir: str) -> None:
    """The resolved config beside the run's outputs, so results name exactly what made them."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, Path(run_dir) / "config.yaml", resolve=True)
