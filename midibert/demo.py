"""`midibert demo`: the whole pipeline end to end, offline, in minutes on a laptop's CPU.

On the real datasets when a data root is configured (MIDIBERT_DATA), otherwise on the sample
corpus the project generates itself (`midibert.synthetic`): prepare, pre-train, fine-tune the four
tasks with BERT and the BiLSTM, evaluate, report and plot.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path


def demo(out: str | None = None, overrides: list[str] | None = None) -> Path:
    """Run the demo pipeline; returns the path of its report."""
    from midibert.errors import require_extra

    require_extra("train")
    from hydra import compose, initialize_config_dir

    from midibert.run import run_pipeline
    from midibert.training import CONF_DIR

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    for noisy in ("pytorch_lightning", "lightning_fabric", "lightning.pytorch"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    real = os.environ.get("MIDIBERT_DATA")
    args = [f"experiment={'demo_real' if real else 'demo'}"]
    if real:
        args.append(f"paths.data_root={Path(real).resolve()}")
    if out:
        args.append(f"paths.output_dir={Path(out).resolve()}")
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("run", overrides=args + list(overrides or []))
        print(
            f"midibert demo: {'real data in ' + real if real else 'generated sample corpus'}; outputs in {cfg.run_dir}"
        )
        return run_pipeline(cfg)
