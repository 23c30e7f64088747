"""The main job: pre-train -> fine-tune every task with BERT and the RNN -> rule baselines ->
evaluate -> report -> plots, driven by Hydra:

    python -m midibert.run experiment=cpu_reference
    python -m midibert.run experiment=demo

Each stage is composed from the same configs as `midibert.pretrain` / `midibert.finetune`, with
the overrides the experiment's `pipeline` block lists. A stage whose outputs exist is skipped,
so a killed main job resumes where it stopped.
"""
from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

from midibert.training import CONF_DIR

log = logging.getLogger("midibert")


def run_pipeline(cfg: DictConfig) -> Path:
    """Every stage of `cfg.pipeline`; returns the path of the joined report."""
    from midibert.finetune import finetune
    from midibert.pretrain import pretrain
    from midibert.report import load_runs, table

    p = cfg.pipeline
    root = Path(cfg.run_dir)
    common = [f"seed={cfg.seed}", f"paths.output_dir={cfg.paths.output_dir}", f"paths.cache_dir={cfg.paths.cache_dir}",
              f"paths.data_root={cfg.paths.data_root}", *p.get("common", [])]
    bundle = root / "pretrain" / "bundle"
    if p.get("pretrain") is not None:
        if not bundle.is_dir():
            log.info("== pre-training")
            pretrain(hydra.compose("pretrain", [*common, *p.pretrain, f"run_dir={root / 'pretrain'}"]))
        else:
            log.info("== pre-training: %s exists, reused", bundle)
    for task, task_overrides in p.tasks.items():
        for arch in p.models:
            run_dir = root / f"{task}-{arch}"
            if (run_dir / "results.json").is_file():
                log.info("== %s %s: done before, reused", task, arch)
                continue
            log.info("== %s %s", task, arch)
            extra = [f"pretrained={bundle}"] if arch == "bert" and bundle.is_dir() else []
            trained = arch in ("bert", "rnn")
            finetune(hydra.compose("finetune", [*common, f"task={task}", f"model={arch}", f"run_dir={run_dir}",
                                           *(p.finetune if trained else []), *task_overrides, *extra]))
        for arch in p.get("baselines", {}).get(task, []):
            run_dir = root / f"{task}-{arch}"
            if not (run_dir / "results.json").is_file():
                finetune(hydra.compose("finetune", [*common, f"task={task}", f"model={arch}", f"run_dir={run_dir}",
                                               *task_overrides]))
    report = root / "report.md"
    text = table(load_runs([root]))
    report.write_text(text + "\n")
    _plots(root)
    print(text)
    print(f"\nreport: {report}\nruns, plots and bundles: {root}/*/")
    return report


def _plots(root: Path) -> None:
    """Training curves of every trained run, beside its results."""
    from midibert.viz import training_curves

    for metrics in root.glob("*/logs/metrics.csv"):
        training_curves(metrics, metrics.parent.parent / "training_curves.png")


@hydra.main(config_path=CONF_DIR, config_name="run", version_base="1.3")
def main(cfg: DictConfig) -> None:
    run_pipeline(cfg)


if __name__ == "__main__":
    main()
