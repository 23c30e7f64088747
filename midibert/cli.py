"""The `midibert` command. Each subcommand imports what it needs when it runs, so that
`midibert tokenize` starts in well under a second and only training / inference pay for torch."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _tokenize(args: argparse.Namespace) -> int:
    from midibert.tokenize import Tokenizer

    tok = Tokenizer.create(args.representation, kind=args.kind)
    enc = tok.encode(args.file)
    names = tok.names(enc.ids)
    if args.json:
        json.dump({"tokenizer": tok.spec, "families": tok.families, "ids": enc.ids.tolist(),
                   "tokens": names, "note_index": enc.note_index.tolist(), "stats": enc.stats},
                  sys.stdout)
        print()
        return 0
    print(f"# {args.file}: {len(enc)} tokens ({tok.spec}), {len(enc.notes)} notes; families: "
          f"{' '.join(tok.families)}")
    for i, (row, note) in enumerate(zip(names, enc.note_index)):
        print(f"{i:6d}  {' '.join(f'{n:<16s}' for n in row).rstrip()}" + (f"  # note {note}" if note >= 0 else ""))
    return 0


def _report(args: argparse.Namespace) -> int:
    from midibert import report

    try:
        report.main(args.run_dirs, out=args.out)
    except FileNotFoundError as e:  # a dir holding no results.json is a usage error, not a crash
        print(f"midibert: error: {e}", file=sys.stderr)
        return 2
    return 0


def _demo(args: argparse.Namespace) -> int:
    from midibert.demo import demo

    demo(out=args.out, overrides=args.overrides)
    return 0


def _classify(args: argparse.Namespace) -> int:
    from midibert.classify import Classifier
    from midibert.errors import MidiError

    try:
        clf = Classifier.from_pretrained(args.model)
    except (ValueError, OSError) as e:  # not a bundle, a mismatched one, or one without a task head
        print(f"midibert: error: {e}", file=sys.stderr)
        return 2
    failed = 0
    for file in args.files:
        try:  # one bad file is reported and the rest still get classified
            res = clf.predict(file)
        except MidiError as e:
            print(f"midibert: error: {e}", file=sys.stderr)
            failed += 1
            continue
        if args.out:
            res.to_midi(Path(args.out) / Path(file).name)
        if args.json:
            print(res.to_json(), flush=True)
            continue
        shares = "" if res.level == "piece" else "  " + " ".join(f"{c} {v:.0%}" for c, v in res.shares().items())
        print(f"{file}\t{res.label}\t{res.confidence:.2f}{shares}", flush=True)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="midibert", description=__doc__.split("\n")[0])
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

    c = sub.add_parser("classify", help="label the notes or the piece of MIDI files with a fine-tuned bundle")
    c.add_argument("files", nargs="+", metavar="FILE")
    c.add_argument("--model", required=True, help="bundle directory (config.json, tokenizer.json, model.safetensors)")
    c.add_argument("--out", help="write annotated MIDI files into this directory")
    c.add_argument("--json", action="store_true", help="one JSON object per file instead of a table")
    c.set_defaults(func=_classify)
    return p


def main(argv: list[str] | None = None) -> int:
    from midibert.errors import MidiError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except MidiError as e:
        print(f"midibert: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `midibert tokenize x.mid | head` is normal use
        return 0


if __name__ == "__main__":
    sys.exit(main())
