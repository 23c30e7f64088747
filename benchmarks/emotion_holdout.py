"""Emotion models on EMOPIA songs no split has seen, and on another source, beside the
note-statistics baseline.

    python benchmarks/emotion_holdout.py runs/run/release                  # after experiment=release
    python benchmarks/emotion_holdout.py runs/run/release --shipped midibert-small-emotion
    python benchmarks/emotion_holdout.py runs/run/release --vgmidi $MIDIBERT_DATA/vgmidi

`experiment=release` trains emotion with `holdout=0.15`: about a seventh of EMOPIA's songs (fixed by the
song's id, `datasets.emopia.held_out`) stays out of the train, valid and test split of every
seed, so no training or early stopping has seen them. For each `emotion-bert-seed<n>` run of
RUN_DIR, and its `emotion-bert-refit` (the recipe trained once more on every other song; the
held-out songs are its test split), this scores, on those held-out clips read from disk through
`midibert.classify`: the fine-tuned model, and the note-statistics baseline (logistic regression
on `baselines.note_statistics`, the rule the release gate compares with) fitted to that run's own
train split. `--shipped` adds the packaged model as users get it (its CPU default: int8 linears),
beside the run it was exported from: the refit where there is one, else seed 1.

`--vgmidi` scores the same models and baselines on music from another source as well: VGMIDI's
204 labelled phrases (piano arrangements of video-game music, valence and arousal each marked
high or low by listeners, as EMOPIA's quadrants), every one of them, read from disk.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from omegaconf import OmegaConf

from midibert.classify import Classifier
from midibert.datasets.emopia import HOLDOUT
from midibert.evaluate import score_predictions, split_sources, statistics_scorer


def evaluate_run(run: Path, shipped: str | None = None, vgmidi: Path | None = None) -> list[dict]:
    """One row per emotion-bert-seed<n> run and the refit (and the shipped model, beside the run it
    came from), per test set: EMOPIA's held-out clips, and VGMIDI's phrases where given."""
    rows = []
    refit = run / "emotion-bert-refit"
    stages = sorted(run.glob("emotion-bert-seed*")) + ([refit] if refit.is_dir() else [])
    source = refit if refit.is_dir() else run / "emotion-bert-seed1"
    # every labelled phrase, whatever split its reader puts it in
    other = [("VGMIDI", split_sources("vgmidi", vgmidi, kind="performance", split=None))] if vgmidi else []
    for stage in stages:
        cfg = OmegaConf.load(stage / "config.yaml")
        data = cfg.task.data
        options = dict(data.get("options") or {})
        if not options.get("holdout"):
            raise SystemExit(f"{stage}: trained without a held-out share (task.data.options.holdout); nothing to score")
        read = dict(path=data.path, kind="performance", split_seed=cfg.split_seed, **options)
        held = split_sources("emopia", split="test" if options.get("refit") else HOLDOUT, **read)
        train = split_sources("emopia", split="train", **read)
        models = [(stage.name, Classifier.from_pretrained(stage / "bundle", device="cpu", quantize=False))]
        if shipped and stage == source:
            models.append((f"{shipped} (shipped, CPU default)", Classifier.from_pretrained(shipped, device="cpu")))
        statistics = statistics_scorer(train, models[0][1].tokenizer, data.label_key, list(cfg.task.class_names))
        for test_set, test in [("EMOPIA held-out", held), *other]:
            stats = statistics(test)
            for name, clf in models:
                m = score_predictions(clf.predict_batch(test[1]), test[0], data.label_key)
                rows.append({"model": name, "test": test_set, "split_seed": cfg.split_seed, "refit": bool(options.get("refit")),
                             "clips": len(test[0]), "songs": len({p.group for p in test[0]}),
                             "accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
                             "statistics_accuracy": stats["accuracy"], "statistics_macro_f1": stats["macro_f1"]})  # fmt: skip
    if not rows:
        raise SystemExit(f"{run}: no emotion-bert-seed<n> or emotion-bert-refit runs")
    return rows


def markdown(rows: list[dict]) -> str:
    lines = [
        "| model | split | test | clips (songs) | accuracy | macro-F1 | note statistics: accuracy | macro-F1 | ahead by |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ahead = r["accuracy"] - r["statistics_accuracy"]
        lines.append(
            f"| {r['model']} | {'refit, ' * r.get('refit', False)}{r['split_seed']} | {r['test']} | {r['clips']} ({r['songs']}) "
            f"| {r['accuracy']:.2%} | {r['macro_f1']:.2%} "
            f"| {r['statistics_accuracy']:.2%} | {r['statistics_macro_f1']:.2%} | {100 * ahead:+.2f} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("run", type=Path, help="the main job's run folder (experiment=release)")
    p.add_argument("--shipped", help="also the packaged model of this name, beside the run it was exported from")
    p.add_argument("--vgmidi", type=Path, help="VGMIDI's folder: score its labelled phrases too")
    p.add_argument("--json", type=Path, help="write the rows here too")
    args = p.parse_args()
    rows = evaluate_run(args.run, args.shipped, args.vgmidi)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    print(markdown(rows))


if __name__ == "__main__":
    main()
