"""Melody robustness at equal budget: which augmentation makes a melody model hold up on files as
users have them.

    python benchmarks/melody_robustness.py --out robustness                 # a GPU: every variant, two seeds
    python benchmarks/melody_robustness.py --out r task.data.seq_len=512    # ... with overrides after the recipe's
    python benchmarks/melody_robustness.py --tiny --out /tmp/robustness     # any machine: every code path, toy size
    python benchmarks/melody_robustness.py --pack .gpu                      # POP909 and wheels for a GPU machine

Every variant fine-tunes the same pre-trained encoder (default: the packaged midibert-small-score)
with the shipped melody recipe, read from `experiment=release` (its window size and batch, steps,
warm-up, transposition, and POP909 read both realigned and raw), then the overrides given on the
command line, and adds its own reader options: augmented training
copies of each song (`midibert.augment`: stretch, tempo, jitter, register, harmony). Steps, batch, seeds
and the encoder are the same for all: the variants differ only in what the training windows hold.
Each model is then scored as a user meets it, through `midibert.classify` on POP909's test songs
read realigned to their beat annotations and as the raw files, beside the skyline on the raw files.

Variants run in parallel child processes (`--parallel`; they share one GPU); `robustness.json` and
`robustness.md` in `--out` are rewritten as each one ends, so a run cut short keeps what it measured.
`--keep VARIANT-SEED` also writes that run's bundle as `VARIANT-SEED.tar` (named before the run:
picking the best by its test figures would select on the test set).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_check import _compose, tar_data, wheels  # noqa: E402  (a sibling script)

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MIDIBERT_DATA", ROOT.parent / "shared" / "data"))
VARIANTS = {
    "release": [],
    "stretch": ["stretch"],
    "tempo": ["tempo"],
    "jitter": ["jitter"],
    "register": ["register"],
    "all": ["stretch", "tempo", "jitter", "register"],
    "harmony": ["harmony"],
}
TINY = ["trainer.max_steps=4", "trainer.val_check_interval=2", "optim.warmup_steps=1", "task.data.seq_len=64",
        "task.data.batch_size=4", "task.data.max_pieces=2"]  # fmt: skip


def recipe() -> list[str]:
    """The shipped melody model's fine-tuning overrides, as `experiment=release` gives them: the
    main job's for every trained model, then melody's own."""
    cfg = _compose("run", ["experiment=release"])
    return [*cfg.pipeline.finetune, *cfg.pipeline.tasks.melody]


def child(spec: dict) -> dict:
    """Fine-tune one variant and score it on the realigned and raw test songs."""
    import torch

    from midibert.classify import Classifier
    from midibert.evaluate import score_predictions, skyline_metrics, split_sources
    from midibert.finetune import finetune

    cuda = torch.cuda.is_available()
    augment = VARIANTS[spec["variant"]]
    overrides = [
        "task=melody",
        f"pretrained={spec['encoder']}",
        f"seed={spec['seed']}",
        f"paths.data_root={spec['data_root']}",
        f"paths.cache_dir={spec['work']}/cache",
        f"run_dir={spec['work']}/{spec['name']}",
        f"trainer={'gpu' if cuda else 'cpu'}",
        "logger=csv",
        "trainer.enable_progress_bar=false",
        *recipe(),
        *spec["overrides"],
        *([f"+task.data.options.augment=[{','.join(augment)}]"] if augment else []),
        *(TINY if spec["tiny"] else []),
    ]
    cfg = _compose("finetune", overrides)
    t0 = time.monotonic()
    run_dir = finetune(cfg)
    train_s = time.monotonic() - t0
    results = json.loads((run_dir / "results.json").read_text())
    clf = Classifier.from_pretrained(run_dir / "bundle", answer=False)
    out = {"variant": spec["variant"], "seed": spec["seed"], "augment": augment, "train_s": round(train_s, 1),
           "steps": results["scale"]["steps"], "train_windows": results["scale"]["train_windows"],
           "device": "cuda" if cuda else "cpu", "run_dir": str(run_dir)}  # fmt: skip
    for timing in ("beats", "raw"):
        pieces, files = split_sources("pop909", cfg.task.data.path, kind="score", timing=timing, limit=spec["limit"])
        preds = clf.predict_batch(files)
        m = score_predictions(preds, pieces)
        out[timing] = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "n": m["n"]}
        if timing == "raw":
            out["raw"]["skyline"] = skyline_metrics(preds, pieces)["accuracy"]
    return out


def markdown(rows: list[dict]) -> str:
    """One line per variant: mean over its seeds (each seed's figure in brackets)."""
    lines = [
        "| variant | augmentations | seeds | realigned test | raw test files | skyline (raw) | train s |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for v in VARIANTS:
        done = [r for r in rows if r["variant"] == v and "raw" in r]
        if not done:
            continue

        def cell(key: str, done: list[dict] = done) -> str:
            vals = [r[key]["accuracy"] for r in done]
            each = " / ".join(f"{x:.2%}" for x in vals)
            return f"{sum(vals) / len(vals):.2%}" + (f" ({each})" if len(vals) > 1 else "")

        sky = done[0]["raw"]["skyline"]
        train = sum(r["train_s"] for r in done) / len(done)
        lines.append(
            f"| {v} | {', '.join(VARIANTS[v]) or '-'} | {len(done)} | {cell('beats')} | {cell('raw')} | {sky:.2%} | {train:.0f} |"
        )
    failed = [r for r in rows if "raw" not in r]
    lines += [f"\n{r['variant']} seed {r['seed']}: {r['status']}" for r in failed]
    return "\n".join(lines) + "\n"


def run_one(spec: dict, out: Path, limit_s: float) -> dict:
    """A variant in a fresh process (its log appended to robustness.log); its result or why none."""
    result = Path(spec["work"]) / f"{spec['name']}.json"
    log = Path(spec["work"]) / f"{spec['name']}.log"
    env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"]), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps({**spec, "result": str(result)})]
    with log.open("w") as f:
        try:
            code = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env=env, timeout=limit_s).returncode
        except subprocess.TimeoutExpired:
            code = "timeout"
    text = log.read_text(errors="replace")
    with (out / "robustness.log").open("a") as f:
        f.write(f"---- {spec['name']} ----\n{text}\n")
    if code != 0 or not result.is_file():
        tail = [line for line in text.splitlines() if line.strip()][-1:] or ["no output"]
        return {"variant": spec["variant"], "seed": spec["seed"], "status": f"failed ({code}): {tail[0]}"}
    return json.loads(result.read_text())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, help="folder for robustness.json, robustness.md, robustness.log")
    p.add_argument("--data-root", type=Path, default=DATA, help="folder holding pop909/")
    p.add_argument("--encoder", default="midibert-small-score", help="pre-trained bundle folder or packaged name")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS))
    p.add_argument("--seeds", type=int, nargs="+", default=[42, 43])
    p.add_argument("--parallel", type=int, default=6, help="variants trained at once")
    p.add_argument("--minutes", type=float, default=9.0, help="no run starts after this; each is killed at it")
    p.add_argument("--work", type=Path, help="runs and caches (default: a temporary folder)")
    p.add_argument("--keep", metavar="VARIANT-SEED", help="--out/VARIANT-SEED.tar: that run's bundle and results")
    p.add_argument("--tiny", action="store_true", help="4 steps at bert-small on 2 songs a split (CPU): code paths")
    p.add_argument("--pack", type=Path, metavar="DIR", help="write DIR/data.tar.gz (POP909) and DIR/*.whl")
    p.add_argument("overrides", nargs="*", help="fine-tuning overrides after the recipe's, for every variant")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        spec = json.loads(args.child)
        Path(spec["result"]).write_text(json.dumps(child(spec)))
        return
    if args.pack:
        tar_data(
            args.pack, args.data_root, {("pop909", str(args.data_root / "pop909"), json.dumps({"timing": "both"}))}
        )
        wheels(args.pack)
        return
    if not args.out:
        p.error("--out is required")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "robustness.log").write_text("")
    work = args.work or Path(tempfile.mkdtemp(prefix="robustness-"))
    work.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + 60 * args.minutes
    jobs = [
        {
            "variant": v,
            "seed": s,
            "name": f"{v}-{s}",
            "encoder": args.encoder,
            "data_root": str(args.data_root),
            "work": str(work),
            "tiny": args.tiny,
            "limit": 2 if args.tiny else None,
            "threads": max(1, (os.cpu_count() or 1) // args.parallel),
        }  # fmt: skip
        for s in args.seeds  # every variant's first seed before any second one
        for v in args.variants
    ]
    rows: list[dict] = []
    info = {"recipe": [*recipe(), *args.overrides], "encoder": args.encoder, "seeds": args.seeds, "tiny": args.tiny}

    def go(spec: dict) -> None:
        left = deadline - time.monotonic()
        if left < 60 and not args.tiny:
            rows.append({"variant": spec["variant"], "seed": spec["seed"], "status": "not started: out of time"})
        else:
            rows.append(run_one(spec, args.out, left if not args.tiny else 3600))
        (args.out / "robustness.json").write_text(json.dumps({**info, "runs": rows}, indent=1) + "\n")
        (args.out / "robustness.md").write_text(markdown(rows))
        print(f"{spec['name']}: done", flush=True)

    with ThreadPoolExecutor(args.parallel) as pool:
        list(pool.map(go, jobs))
    print(markdown(rows))
    kept = next((r for r in rows if f"{r['variant']}-{r['seed']}" == args.keep and "raw" in r), None)
    if kept:
        with tarfile.open(args.out / f"{args.keep}.tar", "w") as tar:
            for name in ("bundle", "results.json", "config.yaml"):
                tar.add(Path(kept["run_dir"]) / name, arcname=f"{args.keep}/{name}")


if __name__ == "__main__":
    main()
