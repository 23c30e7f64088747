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
import shlex
import time
from pathlib import Path

from midibert.errors import require_extra

require_extra("train", main=__name__ == "__main__")

import hydra
from omegaconf import DictConfig

from midibert.training import CONF_DIR, reports_errors, run_hydra

log = logging.getLogger("midibert")


COMMANDS_FILE = "commands.txt"


THEN = "-then"  # the name of a stage that fine-tunes on from its task's model (pipeline.then)
REFIT = "-refit"  # the name of a stage trained on every piece outside a held-out share (pipeline.refit)


def command_line(overrides) -> str:
    """The shell command that runs the main job with these Hydra overrides."""
    return " ".join(["python -m midibert.run", *(shlex.quote(str(o)) for o in overrides)])


def run_pipeline(cfg: DictConfig, command: str | None = None) -> Path:
    """Every stage of `cfg.pipeline`; returns the path of the joined report.

    `command`, the invocation, is added to the run's commands.txt when it runs any stage, and to
    the commands.txt of each stage it runs: a run resumed with other overrides keeps the record of
    every command that made it, and a stage of the ones that made that stage (Hydra's
    .hydra/overrides.yaml holds only the last one)."""
    from midibert.report import load_runs, table

    p = cfg.pipeline
    root = Path(cfg.run_dir)
    common = [
        f"paths.output_dir={cfg.paths.output_dir}",
        f"paths.cache_dir={cfg.paths.cache_dir}",
        f"paths.data_root={cfg.paths.data_root}",
        *p.get("common", []),
    ]
    stages = [(name, entry, [*common, *overrides]) for name, entry, overrides in _stages(cfg, root)]
    _check_splits(cfg, stages)
    todo = []
    for name, entry, overrides in stages:
        if (root / name / ("bundle" if entry == "pretrain" else "results.json")).exists():
            log.info("== %s: done before, reused", name)
        else:
            todo.append((name, entry, [*overrides, f"run_dir={root / name}"]))
    if command and todo:
        for folder in [root, *(root / name for name, _, _ in todo)]:
            folder.mkdir(parents=True, exist_ok=True)
            with open(folder / COMMANDS_FILE, "a", encoding="utf-8") as f:
                f.write(command + "\n")
    started = time.monotonic()
    jobs = int(p.get("jobs") or 1)
    for k, (name, entry, overrides) in enumerate(todo, 1):
        if entry == "pretrain" or jobs == 1:  # everything after pre-training may run side by side
            log.info("== [%d/%d] %s", k, len(todo), name)
            _run_stage(entry, hydra.compose(entry, overrides), None, started)
    # a stage that goes on from another's model waits for it
    parallel = [s for s in todo if s[1] != "pretrain" and not s[0].endswith(THEN)]
    if jobs > 1 and parallel:
        _run_parallel(parallel, jobs, started)
    for name, entry, overrides in todo:
        if jobs > 1 and name.endswith(THEN):
            log.info("== %s", name)
            _run_stage(entry, hydra.compose(entry, overrides), None, started)
    report = root / "report.md"
    text = table(load_runs([root]))
    report.write_text(text + "\n")
    _plots(root)
    print(text)
    print(f"\nreport: {report}\nruns, plots and bundles: {root}/*/")
    return report


def _stages(cfg: DictConfig, root: Path) -> list[tuple[str, str, list[str]]]:
    """(run name, entry point, overrides) of every stage in order.

    Encoders: `pipeline.pretrain` makes one ("pretrain"); `pipeline.encoders` (name -> overrides)
    makes one stage "pretrain-<name>" each instead, and a task fine-tunes from the encoder that
    `pipeline.encoder_of` names for it (default: the first).

    Models: "bert" starts from the pre-trained bundle, "scratch" is the same BERT from random
    weights under the same budget (so the pre-training gain is measured in the run), "rnn" the
    BiLSTM. Tasks listed in `pipeline.seeds` run once per seed there (piece-level test sets are
    small and noisy), each as `<task>-<model>-seed<n>`; those also in `pipeline.split_with_seed`
    draw their split with the seed too (`split_seed=<n>`), and their rule baselines run once per
    split, so every model is compared on the same test pieces. A task in `pipeline.then` (task ->
    overrides) is fine-tuned once more, "<task>-bert-then": from the encoder of its BERT model,
    with a new head, the task's overrides and then these (`midibert release export` ships it).
    A task in `pipeline.refit` (task -> overrides, which make the dataset's reader test on its
    held-out share: EMOPIA's `refit`) is trained once more from the encoder, "<task>-bert-refit",
    after its seeds measured the recipe, with its rule baselines "<task>-<rule>-refit" on the same
    split (`midibert release export` ships it).
    """
    p = cfg.pipeline
    encoders = encoder_stages(p)
    stages = [
        (name, "pretrain", [f"seed={cfg.seed}", f"split_seed={cfg.split_seed}", *o]) for name, o in encoders.items()
    ]
    for task, task_overrides in p.tasks.items():
        if task_overrides is None:  # an experiment drops a task it inherited
            continue
        bundle = root / encoder_of(p, task) / "bundle" if encoders else None
        seeds = list((p.get("seeds") or {}).get(task) or [])
        resplit = task in (p.get("split_with_seed") or [])
        if resplit and not seeds:
            raise ValueError(f"pipeline.split_with_seed lists {task}, to which pipeline.seeds gives no seeds")
        once = [(cfg.seed, cfg.split_seed, "")]
        runs = [(seed, seed if resplit else cfg.split_seed, f"-seed{seed}") for seed in seeds] or once
        for model in p.models:
            arch = "bert" if model == "scratch" else model
            extra = [f"pretrained={bundle}"] if model == "bert" and bundle else []
            trained = p.finetune if arch in ("bert", "rnn") else []
            stages += [
                _finetune_stage(
                    f"{task}-{model}{suffix}", seed, split_seed, task, arch, [*trained, *task_overrides, *extra]
                )
                for seed, split_seed, suffix in runs
            ]
        then = (p.get("then") or {}).get(task)
        if then is not None:
            if seeds or "bert" not in p.models or bundle is None:
                raise ValueError(f"pipeline.then.{task}: goes on from the task's one pre-trained BERT model (no seeds)")
            source = f"pretrained={root / f'{task}-bert' / 'bundle'}"
            overrides = [*p.finetune, *task_overrides, *then, source]
            stages.append(_finetune_stage(f"{task}-bert{THEN}", cfg.seed, cfg.split_seed, task, "bert", overrides))
        refit = (p.get("refit") or {}).get(task)
        splits = [(seed, split_seed, suffix, []) for seed, split_seed, suffix in (runs if resplit else once)]
        if refit is not None:
            if "bert" not in p.models or bundle is None:
                raise ValueError(f"pipeline.refit.{task}: trains the task's pre-trained BERT model once more")
            overrides = [*p.finetune, *task_overrides, *refit, f"pretrained={bundle}"]
            stages.append(_finetune_stage(f"{task}-bert{REFIT}", cfg.seed, cfg.split_seed, task, "bert", overrides))
            splits.append((cfg.seed, cfg.split_seed, REFIT, list(refit)))
        # the fine-tuning's task overrides too: a baseline reads the same tokens (features: velocity
        # or not); its model and trainer overrides are the networks' alone
        reads = [o for o in p.finetune if o.startswith("task.")]
        for arch in (p.get("baselines") or {}).get(task, []):
            # deterministic given its split: once, or once per split the networks are tested on
            stages += [
                _finetune_stage(f"{task}-{arch}{suffix}", seed, split_seed, task, arch, [*reads, *task_overrides, *o])
                for seed, split_seed, suffix, o in splits
            ]
    return stages


def encoder_stages(p: DictConfig) -> dict[str, list[str]]:
    """Pre-training stages, name -> overrides: "pretrain-<name>" for each of `pipeline.encoders`,
    else "pretrain" for `pipeline.pretrain` (null: none, every model starts from random weights)."""
    if p.get("encoders"):
        return {f"pretrain-{name}": list(overrides) for name, overrides in p.encoders.items()}
    return {} if p.get("pretrain") is None else {"pretrain": list(p.pretrain)}


def encoder_of(p: DictConfig, task: str) -> str:
    """The pre-training stage whose encoder `task` fine-tunes from."""
    stages = list(encoder_stages(p))
    name = (p.get("encoder_of") or {}).get(task)
    if name is None:
        return stages[0]
    if f"pretrain-{name}" not in stages:
        raise ValueError(
            f"pipeline.encoder_of.{task}={name}: no such encoder in pipeline.encoders ({', '.join(p.encoders or [])})"
        )
    return f"pretrain-{name}"


def _finetune_stage(
    name: str, seed: int, split_seed: int, task: str, arch: str, overrides: list[str]
) -> tuple[str, str, list[str]]:
    return name, "finetune", [f"seed={seed}", f"split_seed={split_seed}", f"task={task}", f"model={arch}", *overrides]


def _check_splits(cfg: DictConfig, stages: list[tuple[str, str, list[str]]]) -> None:
    """Refuse a task whose split varies with the seed when pre-training reads its dataset: the
    encoder would have learned from one split's training pieces, which another split tests on."""
    resplit = cfg.pipeline.get("split_with_seed") or []
    pretraining = {name: overrides for name, entry, overrides in stages if entry == "pretrain"}
    if not resplit or not pretraining:
        return
    for task in resplit:
        overrides = next((o for name, entry, o in stages if entry == "finetune" and name.startswith(f"{task}-")), None)
        dataset = overrides and hydra.compose("finetune", overrides).task.data.dataset
        corpus = {d.name for d in hydra.compose("pretrain", pretraining[encoder_of(cfg.pipeline, task)]).data.datasets}
        if dataset in corpus:
            raise ValueError(
                f"pipeline.split_with_seed: {task}'s dataset {dataset} is in the pre-training corpus, which "
                f"holds the training pieces of split {cfg.split_seed} only; other splits would test on "
                f"pieces the encoder learned from. Leave {task} out of split_with_seed"
            )


def _run_stage(entry: str, cfg: DictConfig, threads: int | None, started: float) -> str:
    """One stage; in a worker process `threads` caps torch's intra-op threads (and logging is set up)."""
    from midibert.finetune import finetune
    from midibert.pretrain import pretrain

    if threads is not None:
        import torch

        torch.set_num_threads(threads)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
        for noisy in ("pytorch_lightning", "lightning_fabric"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    t0 = time.monotonic()
    (pretrain if entry == "pretrain" else finetune)(cfg)
    done = f"{Path(cfg.run_dir).name} finished in {_clock(time.monotonic() - t0)}"
    log.info("== %s (%s since the main job started)", done, _clock(time.monotonic() - started))
    return done


def _run_parallel(stages: list[tuple[str, str, list[str]]], jobs: int, started: float) -> None:
    """Fine-tuning stages `jobs` at a time, each in its own process with an equal share of the
    cores: on a small CPU, two single-threaded trainings get more done than one two-threaded one."""
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // jobs)
    log.info("== %d stages, %d at a time, %d thread(s) each", len(stages), jobs, threads)
    from midibert.fsutil import die_with_parent

    # a killed main job must not leave its stages training on
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=spawn, initializer=die_with_parent, initargs=(os.getpid(),)) as pool:
        futures = {
            pool.submit(_run_stage, entry, hydra.compose(entry, overrides), threads, started): name
            for name, entry, overrides in stages
        }
        for future in as_completed(futures):
            future.result()  # a failed stage fails the main job, with its own traceback


def _clock(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    return f"{m} min {s:02d} s" if m else f"{s} s"


def _plots(root: Path) -> None:
    """Training curves of every trained run beside its results, and one learning-curve figure per
    task: validation accuracy against fine-tuning steps, pre-trained vs scratch vs BiLSTM."""
    from midibert.viz import training_curves

    for metrics in root.glob("*/logs/metrics.csv"):
        training_curves(metrics, metrics.parent.parent / "training_curves.png")
    tasks = sorted({f.parent.name.split("-")[0] for f in root.glob("*-*/results.json")})  # not pre-training
    for task in tasks:
        files = sorted(root.glob(f"{task}-*/logs/metrics.csv"))
        training_curves(files, root / f"learning_curve_{task}.png", metrics=["val/acc"])


@hydra.main(config_path=CONF_DIR, config_name="run", version_base="1.3")
@reports_errors
def main(cfg: DictConfig) -> None:
    from hydra.core.hydra_config import HydraConfig

    run_pipeline(cfg, command_line(HydraConfig.get().overrides.task))


if __name__ == "__main__":
    run_hydra(main)
