"""The `midibert` command. Each subcommand imports what it needs when it runs, so that
`midibert tokenize` starts in well under a second and only training / inference pay for torch."""

from __future__ import annotations

import argparse
import json
import sys
import traceback
from pathlib import Path

from midibert.tasks import REGISTRY


def _tokenize(args: argparse.Namespace) -> int:
    from midibert.tokenize import Tokenizer

    tok = Tokenizer.create(args.representation, kind=args.kind)
    enc = tok.encode(args.file)
    names = tok.names(enc.ids)
    if args.json:
        json.dump(
            {
                "tokenizer": tok.spec,
                "families": tok.families,
                "ids": enc.ids.tolist(),
                "tokens": names,
                "note_index": enc.note_index.tolist(),
                "stats": enc.stats,
            },
            sys.stdout,
        )
        print()
        return 0
    print(f"# {args.file}: {len(enc)} tokens ({tok.spec}), {len(enc.notes)} notes; families: {' '.join(tok.families)}")
    for i, (row, note) in enumerate(zip(names, enc.note_index)):
        print(f"{i:6d}  {' '.join(f'{n:<16s}' for n in row).rstrip()}" + (f"  # note {note}" if note >= 0 else ""))
    return 0


def _report(args: argparse.Namespace) -> int:
    from midibert import report

    report.main(args.run_dirs, out=args.out)  # a dir holding no results.json: FileNotFoundError, exit 2
    return 0


def _demo(args: argparse.Namespace) -> int:
    import os

    from midibert.demo import demo

    os.environ.setdefault("WANDB_MODE", "disabled")  # the demo talks to no server, whatever the logger
    demo(out=args.out, overrides=args.overrides)
    return 0


def _each_file(args: argparse.Namespace, work) -> int:
    """`work(file)` for every file of the command; one that fails, whatever went wrong, is one line
    on stderr and the rest still get done. The number of failed files."""
    from midibert.errors import user_errors

    failed = 0
    for file in args.files:
        try:
            work(file)
        except user_errors() as e:
            print(f"midibert: error: {e}" if file in str(e) else f"midibert: error: {file}: {e}", file=sys.stderr)
            failed += 1
        except Exception as e:  # noqa: BLE001  (a bug: still one line, so the other files go on)
            _internal_error(e, args, f" on {file}")
            failed += 1
    return failed


def _classify(args: argparse.Namespace) -> int:
    from midibert.classify import Classifier, has_tune
    from midibert.pretrained import default_model

    if not (args.model or args.task):
        raise ValueError("say which model: --task TASK (its packaged model) or --model NAME|DIR")
    # unknown name, not a bundle, a mismatched one, another task's model: one line, exit 2, before any output
    clf = Classifier.from_pretrained(args.model or default_model(args.task), task=args.task)
    if args.line and not has_tune(clf.level, clf.class_names):
        raise ValueError(f"--line is for melody models; {args.model or args.task} answers {clf.task_name}")

    def classify(file: str) -> None:
        res = clf.predict(file)
        for caveat in res.caveats:
            print(f"{file}: {caveat}", file=sys.stderr)
        if args.line:
            res = res.line()
        if args.out:
            res.to_midi(Path(args.out) / Path(file).name)
        if args.json:
            print(res.to_json(), flush=True)
            return
        shares = "" if res.level == "piece" else "  " + " ".join(f"{c} {v:.0%}" for c, v in res.shares().items())
        print(f"{file}\t{res.label}\t{res.confidence:.2f}{shares}", flush=True)

    return 1 if _each_file(args, classify) else 0


def _embed(args: argparse.Namespace) -> int:
    """Embed every file; a bad one is one line on stderr and the others are still embedded; the
    vectors (or per-note rows) go to one .npz with the file names, written whole or not at all."""
    import numpy as np

    from midibert.embedding import Embedder
    from midibert.fsutil import atomic_path

    embedder = Embedder.from_pretrained(args.model, level=args.level)
    names, vectors = [], []

    def embed(file: str) -> None:
        vectors.append(embedder.embed([file])[0])
        names.append(file)

    failed = _each_file(args, embed)
    if args.level == "piece":
        arrays = {"embeddings": np.stack(vectors) if vectors else np.zeros((0, embedder.width), np.float32)}
    else:  # one array of rows per file, and which file each row belongs to
        arrays = {
            "embeddings": np.concatenate(vectors) if vectors else np.zeros((0, embedder.width), np.float32),
            "piece": np.repeat(np.arange(len(vectors)), [len(v) for v in vectors]),
        }
    with atomic_path(args.out) as tmp, open(tmp, "wb") as f:
        np.savez(f, files=np.asarray(names, dtype=str), **arrays)
    print(f"{len(names)} of {len(args.files)} files embedded ({args.level}) -> {args.out}", file=sys.stderr)
    return 1 if failed else 0


def _models(args: argparse.Namespace) -> int:
    from midibert.pretrained import ENCODER, models_dir, packaged

    models = packaged()
    if args.json:
        for name, m in models.items():
            print(json.dumps({"name": name, **m}))
        return 0
    if not models:
        print(f"no packaged models in {models_dir()}")
        return 0
    print(
        "| name | task | size | trained on | licence | test accuracy | rule baselines | files read raw "
        "| music it never saw |"
    )
    print("| --- | --- | --- | --- | --- | ---: | --- | --- | --- |")
    for name, m in models.items():
        if m["task"] == ENCODER:
            continue
        test, raw, cross = m["test"], m.get("raw"), m.get("cross_domain")
        rules = ", ".join(f"{a} {acc:.2%}" for a, acc in sorted((m.get("baselines") or {}).items())) or "-"
        raw = f"{raw['accuracy']:.2%} of {raw['n']:,} {test['unit']}" if raw else "-"
        held = m.get("holdout")
        cross = (
            f"melody F1 {cross['f1']:.3f} (skyline {cross['skyline_f1']:.3f}, top line {cross['top_line_f1']:.3f}) "
            f"on {cross['files']:,} files of "
            f"{', '.join(cross['genres'])} ({cross['corpus']})"
            if cross
            else f"{held['accuracy']:.2%} of {held['n']:,} held-out {test['unit']} of {held['songs']} songs "
            f"(note statistics {held['statistics']:.2%})"
            if held
            else "-"
        )
        print(
            f"| {name}{' (default)' if m.get('default') else ''} | {m['task']} | {m['size']} | {m['data']} | "
            f"{m['licence']} | {test['accuracy']:.2%} of {test['n']:,} {test['unit']} | {rules} | {raw} | {cross} |"
        )
    encoders = {n: m for n, m in models.items() if m["task"] == ENCODER}
    if encoders:
        print(
            "\n| pre-trained encoder | tokens | size | trained on | licence | masked accuracy (best trivial baseline) |"
        )
        print("| --- | --- | --- | --- | --- | --- |")
        for name, m in encoders.items():
            masked = ", ".join(f"{f} {s['masked']:.1%} ({s['baseline']:.1%})" for f, s in m["masked"].items())
            print(f"| {name} | {m['kind']} | {m['size']} | {m['data']} | {m['licence']} | {masked} |")
    return 0


def _release(args: argparse.Namespace) -> int:
    from midibert.pretrained import models_dir
    from midibert.release import export

    export(  # no runs, unknown licence, int8 disagreeing, below a rule baseline: exit 2
        args.run_dir,
        args.out or models_dir(),
        weights=args.weights,
        commit=args.commit,
        allow_below_baselines=args.allow_below_baselines,
        cross_domain=args.cross_domain or (),
    )
    return 0


def _release_encoder(args: argparse.Namespace) -> int:
    from midibert.pretrained import models_dir
    from midibert.release import export_encoder

    # the embeddings' agreement with fp32 is measured on the MIDI files shipped for tests, when present
    shipped = Path(__file__).resolve().parent.parent / "tests" / "data"
    check = sorted(shipped.glob("*.mid")) if shipped.is_dir() else None
    export_encoder(args.pretrain_dir, args.out or models_dir(), weights=args.weights, commit=args.commit, check=check)
    return 0


def _internal_error(e: BaseException, args: argparse.Namespace, where: str = "") -> None:
    """A bug, not bad input: one line saying so, and the traceback only with --debug."""
    if getattr(args, "debug", False):
        traceback.print_exception(e)
    print(
        f"midibert: internal error{where}: {type(e).__name__}: {e}"
        + ("" if getattr(args, "debug", False) else " (rerun with --debug for the traceback)"),
        file=sys.stderr,
    )


def _plot(args: argparse.Namespace) -> int:
    from midibert import viz

    out = Path(args.out) if args.out else None
    if args.plot == "curves":
        done = viz.training_curves(args.paths, out or Path("training_curves.png"), metrics=args.metric)
    elif args.plot == "confusion":
        with open(Path(args.run_dir) / f"confusion_{args.level}.json") as f:
            cm = json.load(f)
        done = viz.confusion_matrix(
            cm["matrix"],
            cm["class_names"],
            out or Path(args.run_dir) / f"confusion_{args.level}.png",
            normalize=not args.counts,
        )
    else:
        done = _plot_notes(args.file, args.model, out, args.beats)
    print(done)
    return 0


def _plot_notes(file: str, model: str, out: Path | None, beats: float | None = None) -> Path:
    """A note-level bundle's predictions on one file beside the truth the file itself carries:
    melody classes from its track names (POP909 convention), velocity bins from its velocities;
    with `beats`, only the notes starting in the first that many beats (a whole song is too dense to read)."""
    import numpy as np

    from midibert import viz
    from midibert.classify import Classifier
    from midibert.evaluate import prediction_truth
    from midibert.tasks import get_task
    from midibert.tokenize.labels import velocity_classes

    pred = Classifier.from_pretrained(model).predict(file)
    if pred.level != "note":
        raise ValueError(
            f"{model} classifies whole pieces ({pred.task}); `plot notes` needs a melody or velocity bundle"
        )
    labels = np.asarray(pred.labels)
    known = labels != ""  # notes the tokenizer dropped have no prediction
    if beats is not None:
        known &= pred.onset < beats * pred.encoding.notes.tpq
    predicted = np.array([pred.class_names.index(c) for c in labels[known]], dtype=int)
    out = out or Path(f"{Path(file).stem}_{pred.task}.png")
    if get_task(pred.task).writes == "velocity":
        return viz.velocity_scatter(velocity_classes(pred.velocity)[known], predicted, out)
    truth = prediction_truth(pred, None)[known] if {"MELODY", "BRIDGE"} & set(pred.track) else None
    return viz.pianoroll(
        pred.onset[known],
        pred.duration[known],
        pred.pitch[known],
        truth,
        predicted,
        class_names=pred.class_names,
        path=out,
    )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="midibert", description=__doc__.split(". ")[0] + ".")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("tokenize", help="print the tokens of a MIDI file")
    t.add_argument("file")
    t.add_argument("--representation", choices=("cp", "remi"), default="cp")
    t.add_argument("--kind", choices=("score", "performance"), default="score")
    t.add_argument("--json", action="store_true", help="one JSON object instead of a table")
    t.set_defaults(func=_tokenize)

    r = sub.add_parser("report", help="one markdown table of runs' results beside the paper's figures")
    r.add_argument("run_dirs", nargs="+", metavar="RUN_DIR", help="a run dir, or a dir searched for results.json")
    r.add_argument("--out", help="also write the table to this file")
    r.set_defaults(func=_report)

    d = sub.add_parser("demo", help="the whole pipeline end to end on a generated corpus (or MIDIBERT_DATA)")
    d.add_argument("--out", help="where runs go (default: runs/)")
    d.add_argument("overrides", nargs="*", help="Hydra overrides of conf/run.yaml, e.g. pipeline.models=[bert]")
    d.set_defaults(func=_demo)

    e = sub.add_parser("embed", help="vectors of MIDI files (or of their notes) from a pre-trained encoder")
    e.add_argument("files", nargs="+", metavar="FILE")
    e.add_argument("--out", required=True, help="the .npz to write: files, embeddings (and piece, per note)")
    e.add_argument("--model", help="packaged encoder, bundle directory or Hub repo id (default: the score encoder)")
    e.add_argument("--level", choices=("piece", "note"), default="piece", help="one vector per file, or per note")
    e.set_defaults(func=_embed)

    c = sub.add_parser("classify", help="label the notes or the piece of MIDI files with a fine-tuned model")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.add_argument(
        "--task",
        choices=list(REGISTRY),
        help="what to predict (melody: the tune against accompaniment; melody3: POP909's melody, bridge and "
        "accompaniment); without --model, the packaged model for it (`midibert models`)",
    )
    c.add_argument("--model", help="packaged model name, bundle directory, or Hugging Face Hub repo id (org/name)")
    c.add_argument("--out", help="write annotated MIDI files into this directory")
    c.add_argument("--json", action="store_true", help="one JSON object per file instead of a table")
    c.add_argument(
        "--line",
        action="store_true",
        help="melody: the tune as one line, the highest tune note sounding at each moment (part music: hymns, "
        "quartets; POP909's tune is partly in chords)",
    )
    c.set_defaults(func=_classify)

    m = sub.add_parser("models", help="the models shipped with midibert: task, size, data, licence, test scores")
    m.add_argument("--json", action="store_true", help="one JSON object per model instead of a table")
    m.set_defaults(func=_models)

    rel = sub.add_parser("release", help="maintainers: ship a main job's fine-tuned models as packaged ones")
    rel_sub = rel.add_subparsers(dest="release", required=True)
    ex = rel_sub.add_parser("export", help="compact weights, re-measured on the test splits, model cards, the index")
    ex.add_argument("run_dir", metavar="RUN_DIR", help="a main-job run, e.g. runs/run/release")
    ex.add_argument("out", nargs="?", metavar="OUT", help="models folder (default: the installed package's)")
    ex.add_argument("--weights", default="int8", help="how weights are stored: int8 (default), fp16 or fp32")
    ex.add_argument(
        "--commit", help="the midibert commit the run was made at, for the model cards (runs do not record it)"
    )
    ex.add_argument(
        "--allow-below-baselines",
        action="store_true",
        help="export a model that does not beat every rule baseline of its task (its card says so); "
        "for demos, never for the packaged models",
    )
    ex.add_argument(
        "--cross-domain",
        action="append",
        metavar="JSON",
        help="a result of benchmarks/melody_cross_domain.py, run on a bundle of RUN_DIR: shown on its card "
        "and in `midibert models` (repeatable)",
    )
    ex.set_defaults(func=_release)
    en = rel_sub.add_parser("encoder", help="a pre-training run's encoder as a packaged one, with its card")
    en.add_argument("pretrain_dir", metavar="PRETRAIN_DIR", help="a pre-training run, e.g. runs/run/release/pretrain")
    en.add_argument("out", nargs="?", metavar="OUT", help="models folder (default: the installed package's)")
    en.add_argument("--weights", default="int4", help="how weights are stored: int4 (default), int8, fp16 or fp32")
    en.add_argument("--commit", help="the midibert commit the run was made at, for the card")
    en.set_defaults(func=_release_encoder)

    pl = sub.add_parser("plot", help="PNG plots: training curves, confusion matrices, a bundle's note predictions")
    kinds = pl.add_subparsers(dest="plot", required=True)
    cu = kinds.add_parser("curves", help="training curves from Lightning metrics.csv files (folders searched)")
    cu.add_argument("paths", nargs="+", metavar="PATH")
    cu.add_argument("--metric", action="append", help="only this metric (repeatable), e.g. val/loss")
    cm = kinds.add_parser("confusion", help="a fine-tuning run's confusion matrix")
    cm.add_argument("run_dir", metavar="RUN_DIR")
    cm.add_argument("--level", default="note", help="note | piece | window (default note)")
    cm.add_argument("--counts", action="store_true", help="counts instead of row-normalised shares")
    no = kinds.add_parser("notes", help="piano roll (melody) or velocity scatter of a bundle's predictions on a file")
    no.add_argument("file", metavar="FILE")
    no.add_argument(
        "--model", required=True, help="a melody or velocity model: packaged name, bundle directory or Hub id"
    )
    no.add_argument("--beats", type=float, help="only the notes starting in the first BEATS beats")
    for k in (cu, cm, no):
        k.add_argument("--out", help="PNG to write (default: beside the input, or in the current folder)")
    pl.set_defaults(func=_plot)

    from midibert.datasets.cli import add_parser as add_data_parser

    add_data_parser(sub)
    _add_everywhere(
        p,
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the traceback of any error (for bug reports)",
    )
    return p


def _add_everywhere(parser: argparse.ArgumentParser, *names: str, **kwargs) -> None:
    """Add an option to a parser and every subcommand below it, so it may be written anywhere on
    the line (`midibert classify a.mid --debug`). SUPPRESS as default keeps a subcommand from
    resetting what the line set before it."""
    parser.add_argument(*names, **kwargs)
    for action in parser._actions:  # argparse has no public way to list the subparsers
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                _add_everywhere(sub, *names, **kwargs)


def main(argv: list[str] | None = None) -> int:
    from midibert.errors import one_line, user_errors

    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    try:
        return args.func(args)
    except BrokenPipeError:  # `midibert tokenize x.mid | head` is normal use
        return 0
    except KeyboardInterrupt:
        print("midibert: interrupted", file=sys.stderr)
        return 130
    except user_errors() as e:  # bad input or usage: one line naming the cause
        if debug:
            raise
        print(f"midibert: error: {one_line(e)}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001  (a bug: one line, the traceback with --debug)
        _internal_error(e, args)
        return 1


if __name__ == "__main__":
    sys.exit(main())
