"""The library side of training; the Hydra entry points (`midibert.pretrain`, `midibert.finetune`,
`midibert.run`) stay thin at the top of the package and call into here.

- `datamodule`: windows over prepared splits (`WindowDataset`) and the Lightning data modules
- `sampler`: `StepSampler`, whose place in the data is a function of the optimizer step (resuming
  continues with the very batches)
- `masking`: which tokens masked-LM pre-training hides, and the trivial baselines it is scored against
- `masked_lm`: `MaskedLM`, the pre-training LightningModule
- `electra`: `Electra`, pre-training by replaced-token detection (`objective=electra`)
- `finetuner`: `FineTuner`, the fine-tuning LightningModule
- `optim`: AdamW with weight decay on matrices only, warmup and cosine decay
- `trainer`: seeding, the trainer with its logger and callbacks, resuming, config checks and
  one-line error reports (`CONF_DIR`, `build_trainer`, `run_hydra`, `reports_errors`, ...)

`from midibert.training import build_trainer` still works: the names of `trainer` are read from it
on first use (PEP 562), so importing the light modules here (`masking`, `sampler`, `optim`) does
not pull in Lightning or Hydra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from midibert.training.trainer import (
        CONF_DIR,
        FlushDenormals,
        KeepEarlierMetrics,
        ProgressLog,
        build_trainer,
        check_entry,
        quiet_library_warnings,
        reports_errors,
        resume_path,
        run_hydra,
        save_config,
        seed_everything,
        wandb_logger,
    )

__all__ = [
    "CONF_DIR",
    "FlushDenormals",
    "KeepEarlierMetrics",
    "ProgressLog",
    "build_trainer",
    "check_entry",
    "quiet_library_warnings",
    "reports_errors",
    "resume_path",
    "run_hydra",
    "save_config",
    "seed_everything",
    "wandb_logger",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("midibert.training.trainer"), name)
    raise AttributeError(f"module 'midibert.training' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
