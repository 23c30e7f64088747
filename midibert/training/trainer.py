"""What the Hydra entry points share: seeding, the trainer with its logger and callbacks, resuming,
refusing a config of another entry point, and one-line error reports.

Only the commands that train import this module (it pulls in torch and Lightning).
"""

from __future__ import annotations

import csv
import functools
import logging
import os
import socket
import sys
import time
import warnings
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import NoReturn

import hydra
import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("midibert")

# The Hydra configs ship inside the package, so an installed wheel finds them; the checkout's
# top-level conf/ is a link to this folder. pip never installs a package zipped, so it is a real
# directory that Hydra can search.
CONF_DIR = str(files("midibert") / "conf")


def wandb_logger(project: str, save_dir: str, name: str | None = None, **kwargs):
    """A WandbLogger that never hangs or prompts: offline without an API key or a reachable server."""
    from pytorch_lightning.loggers import WandbLogger

    from midibert.errors import require_extra

    require_extra("train", modules=("wandb",))

    mode = os.environ.get("WANDB_MODE")  # the user's choice; else decided here, for this run only
    if mode is None:
        online = bool(os.environ.get("WANDB_API_KEY") or _netrc_has_wandb()) and _reachable("api.wandb.ai")
        mode = "online" if online else "offline"
    log.info("wandb mode: %s", mode)
    kwargs.setdefault("mode", mode)
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


class FlushDenormals(pl.Callback):
    """Denormal floats flushed to zero while a trainer fits, as they were before afterwards.

    A training LSTM drifts into denormal floats, which x86 CPUs compute many times slower: the
    BiLSTM's steps slow down several-fold as it learns unless they are flushed (docs/speed.md).
    Values below 1e-38 change no prediction. The setting is
    the process's, so it is undone when fitting ends rather than left for the caller's code.
    """

    _before = False  # what an exception in setup, before fitting starts, puts back

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # torch has no getter: a denormal times one is zero only while flushing is on
        self._before = bool(torch.tensor(1e-40) * 1.0 == 0)
        torch.set_flush_denormal(True)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        torch.set_flush_denormal(self._before)

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.on_fit_end(trainer, pl_module)


class ProgressLog(pl.Callback):
    """One log line every `every_s` seconds of training (step, loss, elapsed, time left), so a run
    with the progress bar off (logs, CI, the main job) is never silent for minutes."""

    def __init__(self, every_s: float = 30.0):
        self.every_s = every_s

    def on_train_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.start = self.last = time.monotonic()
        self.first_step = trainer.global_step

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs, batch, batch_idx) -> None:
        now = time.monotonic()
        if now - self.last < self.every_s or trainer.progress_bar_callback is not None:
            return
        self.last = now
        step, total = trainer.global_step, trainer.max_steps
        rate = (step - self.first_step) / max(now - self.start, 1e-9)
        loss = trainer.callback_metrics.get("train/loss")
        left = f", ~{(total - step) / rate / 60:.1f} min left" if total > 0 and rate > 0 else ""
        log.info(
            "%s step %d/%s%s, %.1f min%s",
            Path(trainer.default_root_dir).name,
            step,
            total if total > 0 else "?",
            f", loss {float(loss):.3f}" if loss is not None else "",
            (now - self.start) / 60,
            left,
        )


def quiet_library_warnings() -> None:
    """Silence warnings that tell a user nothing they can act on: a deprecation inside Lightning's
    own pytree code, and the logging interval exceeding a short epoch (steps, not epochs, matter here)."""
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")
    warnings.filterwarnings("ignore", message=r".*smaller than the logging interval.*")
    warnings.filterwarnings("ignore", message=r".*does not have many workers which may be a bottleneck.*")


def build_trainer(cfg: DictConfig, extra_callbacks: list | None = None, **overrides) -> pl.Trainer:
    """The trainer of `cfg.trainer` with the logger of `cfg.logger` and callbacks of `cfg.callbacks`."""
    quiet_library_warnings()
    if cfg.trainer.get("accelerator") in ("gpu", "cuda"):
        # fp32 matmuls left outside autocast (or all of them at precision 32) run on tensor cores
        torch.backends.cuda.matmul.allow_tf32 = True
    callbacks = [hydra.utils.instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c]
    logger = hydra.utils.instantiate(cfg.logger) if cfg.get("logger") else False
    if logger is False:  # a learning-rate monitor has nothing to write to without a logger
        callbacks = [c for c in callbacks if not isinstance(c, pl.callbacks.LearningRateMonitor)]
    if cfg.get("ckpt_path") and isinstance(logger, pl.loggers.CSVLogger):
        callbacks.append(KeepEarlierMetrics(logger))
    callbacks.append(FlushDenormals())
    return hydra.utils.instantiate(
        cfg.trainer,
        callbacks=callbacks + (extra_callbacks or []),
        logger=logger,
        default_root_dir=cfg.run_dir,
        **overrides,
    )


class KeepEarlierMetrics(pl.Callback):
    """Lightning's CSVLogger deletes the metrics.csv it finds, so a resumed run would keep only the
    steps after the kill. This reads the file before that happens and, once the checkpoint has
    set the step training resumes from, puts back the rows of the steps before it (later rows
    are logged again by the resumed run)."""

    def __init__(self, logger: pl.loggers.CSVLogger):
        self.logger = logger
        path = Path(logger.log_dir) / "metrics.csv"
        self.rows: list[dict] = []
        if path.is_file():
            with open(path, newline="") as f:  # a row cut short by the kill has missing fields: dropped
                self.rows = [r for r in csv.DictReader(f) if None not in r.values() and None not in r]

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        keep = [r for r in self.rows if r.get("step", "").isdigit() and int(r["step"]) < trainer.global_step]
        self.logger.experiment.metrics[:0] = keep
        self.rows = []


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


# Keys that belong to another entry point's config, and what to say when one turns up: a config
# composed for the wrong entry point (an experiment of the main job given to pre-training, a
# fine-tuning architecture given to pre-training ...) would otherwise run something else silently.
_FOREIGN = {
    "pipeline": "is the main job's: run it with `python -m midibert.run experiment=...`",
    "model": "is fine-tuning's choice of bert / rnn / skyline / majority / features; pre-training trains a BERT "
    "encoder, sized with encoder=bert-tiny|bert-small|bert-base|bert-base-paper",
    "task": "is fine-tuning's: run it with `python -m midibert.finetune task=...`",
    "data": "is pre-training's corpus; fine-tuning reads task.data (`python -m midibert.pretrain data=...`)",
    "mask": "is pre-training's masking; fine-tuning masks nothing",
}
_NOT_FOR = {"pretrain": ("pipeline", "model", "task"), "finetune": ("pipeline", "data", "mask")}


def check_entry(cfg: DictConfig, entry: str) -> None:
    """Refuse, in one line, a config that holds a key of another entry point ("pretrain" | "finetune")."""
    for key in _NOT_FOR[entry]:
        if cfg.get(key) is not None:
            raise ValueError(f"{entry}: `{key}` {_FOREIGN[key]}")


def save_config(cfg: DictConfig, run_dir: str) -> None:
    """The resolved config beside the run's outputs, so results name exactly what made them."""
    Path(run_dir).mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, Path(run_dir) / "config.yaml", resolve=True)


# The user's own HYDRA_FULL_ERROR, remembered across the processes a run starts (DDP ranks run
# the same command), because run_hydra sets HYDRA_FULL_ERROR itself.
_USER_FULL_ERROR = "MIDIBERT_USER_HYDRA_FULL_ERROR"


def _report(e: Exception) -> NoReturn:
    """A user error (missing file, bad bundle or path, bad override) as one line naming the cause,
    exit status 2; a bug as one line, status 1; the traceback instead with HYDRA_FULL_ERROR=1."""
    from midibert.errors import one_line, user_errors

    if os.environ.get(_USER_FULL_ERROR, os.environ.get("HYDRA_FULL_ERROR")) == "1":
        raise e
    if isinstance(e, user_errors()):
        print(f"midibert: error: {one_line(e)}", file=sys.stderr)
        sys.exit(2)
    print(
        f"midibert: internal error: {type(e).__name__}: {one_line(e)} (set HYDRA_FULL_ERROR=1 for the traceback)",
        file=sys.stderr,
    )
    sys.exit(1)


def reports_errors(task: Callable[[DictConfig], None]) -> Callable[[DictConfig], None]:
    """For a Hydra task function (under @hydra.main): its errors reported by `_report`.

    Hydra would print a traceback, after a line of its own; SystemExit passes through Hydra.
    """

    @functools.wraps(task)
    def wrapped(cfg: DictConfig) -> None:
        try:
            task(cfg)
        except Exception as e:  # noqa: BLE001  (_report tells user errors from bugs)
            _report(e)

    return wrapped


def run_hydra(main: Callable[[], None]) -> None:
    """Run a @hydra.main entry point with the errors of composing its config (a bad override, an
    unknown option) reported by `_report` too: HYDRA_FULL_ERROR makes Hydra raise them rather
    than print several lines of its own."""
    os.environ.setdefault(_USER_FULL_ERROR, os.environ.get("HYDRA_FULL_ERROR", "0"))
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        main()
    except Exception as e:  # noqa: BLE001
        _report(e)
