"""One prepared GPU run, under 10 minutes: paper-scale training throughput and MFU, a bert-base
pre-training, a melody result beside the BiLSTM's, and inference batching, in one go.

    python benchmarks/gpu_check.py --out results               # one CUDA device: the whole check (9 min)
    python benchmarks/gpu_check.py --tiny --out /tmp/check     # any machine, about a minute: every code path, tiny
    python benchmarks/gpu_check.py --pack .gpu                 # on the development machine: data and wheels to carry

Stages, each stopped by its own time budget, never by a step count, so the run cannot overrun:
1. throughput: MLM training of bert-base at 512 tokens, bf16 autocast, each variant in a fresh
   process (benchmarks/train_throughput.py): midibert as training runs it (fused AdamW, TF32,
   no mask on full windows), with a padding mask, with AdamW unfused, with torch.compile, and
   Hugging Face BERT (sdpa) fed the same CP embeddings. Tokens/s, model FLOPs utilisation against
   the device's bf16 peak (printed), peak memory; and which SDPA kernel runs with and without a
   padding mask.
2. pretrain: bert-base, the library's recipe (rotary, pre-LN, no dropout, AdamW betas (0.9,
   0.98), warmup then cosine to zero), on the full pre-training corpus (`pretrain_reference`),
   length-bucketed batches, for about 3.5 minutes. The trainer stops on `max_time`, and after
   warmup the cosine decays by elapsed time to reach zero exactly there
   (midibert.training.optim.adamw_with_schedule): whatever the device's speed, the run is a complete
   schedule, not a truncated one. Validation every minute and at the stop: masked accuracy per
   family beside the trivial baselines.
3. melody: fine-tunes that encoder (3 classes) and trains the BiLSTM, side by side on the same
   device, each for about 100 s; test notes of POP909, beside the paper's 96.37 / 88.66.
4. classify: `Classifier.predict_batch` (32 windows a batch) vs one window at a time, bert-base,
   the POP909 test split (generated pieces where the data is absent).

Stages 2-4 run in child processes with hard time limits; the JSON (`gpu_check.json`) and the
markdown table (`gpu_check.md`) in `--out` are rewritten after every stage, so a run cut short
still brings back what it measured. Without the data under `--data-root`, stages 2-3 say so and
are skipped. `--tiny` runs everything at bert-tiny size for a few seconds a stage, in fp32 on
CPU (the test suite does), so the script is known to work before a GPU is available.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MIDIBERT_DATA", ROOT.parent / "shared" / "data"))
GOALS = {"mfu": 0.40, "x_hf_speed": 1.3, "x_hf_memory": 1.0, "x_one_window": 3.0}
STAGES = ("throughput", "pretrain", "melody", "classify")
# what the GPU machine's image lacks (its torch, Lightning, transformers, numpy and scikit-learn serve)
WHEELS = ("hydra-core", "omegaconf", "antlr4-python3-runtime", "symusic", "pySmartDL", "platformdirs")


@dataclass(frozen=True)
class Plan:
    """Sizes and time budgets of one run. `limits` are each stage's hard limit in seconds; a
    training stage trains for its limit less `overhead` (process start, data, evaluation), at
    most `train_cap` seconds."""

    model: str
    seq_len: int
    bench_batch: int
    bench_steps: int
    bench_warmup: int
    batch: int
    pretrain_lr: float
    finetune_lr: float
    warmup_steps: int
    val_every_s: int
    workers: int
    max_pieces: int | None  # per dataset and split
    songs: int | None  # stage 4
    limits: dict
    overhead: dict
    compile_min_s: float | None  # torch.compile is measured only with this much of stage 1 left
    train_cap: dict = field(default_factory=dict)
    val_batches: float = 1.0  # of each validation (an int: that many batches)
    rnn: tuple = ()  # overrides of the BiLSTM's size
    bench_parallel: int = 1  # stage 1's variants measured at once

    def train_seconds(self, stage: str, limit: float) -> int:
        return max(1, int(min(self.train_cap.get(stage, math.inf), limit - self.overhead[stage])))


def full_plan(minutes: float) -> Plan:
    """bert-base at 512 tokens; the stages share `minutes` (of 9: 1.8, 4.1, 2.3 and 0.6), and
    pre-training also takes whatever stage 1 leaves unused."""
    total = 60 * minutes
    shares = {"throughput": 0.20, "pretrain": 0.46, "melody": 0.26, "classify": 0.07}
    # lr: score_bert's 5e-4 for pre-training (the recipe's 1e-3 is measured at bert-small only);
    # fine-tuning a pre-LN bert-base is unmeasured: 1e-4, between the paper's 2e-5 and bert-small's 1e-3
    return Plan(
        model="bert-base",
        seq_len=512,
        bench_batch=32,
        bench_steps=20,
        bench_warmup=5,
        batch=32,
        pretrain_lr=5e-4,
        finetune_lr=1e-4,
        warmup_steps=200,
        val_every_s=60,
        workers=6,
        max_pieces=None,
        songs=None,
        limits={k: v * total for k, v in shares.items()},
        overhead={"pretrain": 45, "melody": 40},
        compile_min_s=45,
    )


# the limits only guard against a hang: --tiny has no overall budget, and on a 2-core machine busy
# with other work a niced stage took 10 minutes (about 20 s of CPU time) just to import and start
TINY = Plan(
    model="bert-tiny",
    seq_len=64,
    bench_batch=2,
    bench_steps=2,
    bench_warmup=1,
    batch=4,
    pretrain_lr=1e-3,
    finetune_lr=1e-3,
    warmup_steps=2,
    val_every_s=1,
    workers=0,
    max_pieces=2,
    songs=3,
    limits={"throughput": 1800, "pretrain": 1800, "melody": 1800, "classify": 1800},
    overhead={"pretrain": 30, "melody": 30},
    compile_min_s=None,
    train_cap={"pretrain": 3, "melody": 3},
    val_batches=4,
    rnn=("model.head.hidden=32", "model.head.layers=1"),
    bench_parallel=5,
)


# ---- results: one JSON and one markdown table, rewritten after every stage ----------------------


class Results:
    def __init__(self, out: Path, info: dict):
        self.out, self.data = out, {**info, "stages": {s: {"status": "not run"} for s in STAGES}}
        out.mkdir(parents=True, exist_ok=True)

    def set(self, stage: str, result: dict) -> None:
        self.data["stages"][stage] = result
        self.data["wall_s"] = round(time.monotonic() - self.data["_t0"], 1)
        public = {k: v for k, v in self.data.items() if not k.startswith("_")}
        (self.out / "gpu_check.json").write_text(json.dumps(public, indent=2) + "\n")
        (self.out / "gpu_check.md").write_text(markdown(public))


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.2f} %"


def markdown(r: dict) -> str:
    """The run as one table: stage, what, measured, goal or reference."""
    rows = []

    def row(stage, what, value, ref=""):
        rows.append(f"| {stage} | {what} | {value} | {ref} |")

    def throughput(t):
        k = t["sdpa"]
        row(
            1,
            "SDPA kernel: full windows / one window half padding",
            k.get("error")
            or f"{k['no mask']['kernel']} ({k['no mask']['ms']:.2f} ms) / {k['padding mask']['kernel']} "
            f"({k['padding mask']['ms']:.2f} ms)",
            "forward + backward of one layer's attention",
        )
        for v in t["rows"]:
            if "error" in v or "skipped" in v:
                row(1, v["name"], v.get("error") or v["skipped"])
                continue
            mfu = f", MFU {_pct(v['mfu'])}" if v.get("mfu") is not None else ""
            row(
                1,
                f"{v['name']}: tokens/s{', MFU' if mfu else ''}, peak memory",
                f"{v['tokens_per_s']:,.0f}{mfu}, {v['peak_mb']:,.0f} MiB",
                f"MFU ≥ {GOALS['mfu']:.0%}" if v["name"] == "midibert" and mfu else "",
            )
        if t["mfu"]["status"] != "ok":
            row(1, "MFU", t["mfu"]["status"], f"≥ {GOALS['mfu']:.0%}")
        if t.get("x_hf_speed") is not None:
            row(
                1,
                "midibert vs HF BERT (sdpa): speed, memory",
                f"{t['x_hf_speed']:.2f}x, {t['x_hf_memory']:.2f}x",
                f"≥ {GOALS['x_hf_speed']}x at ≤ {GOALS['x_hf_memory']:.1f}x memory",
            )

    def pretrain(p):
        row(
            2,
            f"pre-training {p['model']}, {p['train_s']} s, batch {p['batch']} x {p['seq_len']}, lr {p['lr']:g}",
            f"{p['steps']:,} steps, {p['real_tokens_per_s']:,.0f} real tokens/s"
            + (f", MFU {_pct(p['mfu'])}" if p.get("mfu") is not None else ""),
            f"{p['unmasked_batches']:.0%} of batches without attention mask, {p['padding']:.1%} padding",
        )
        fams = list(p["val_acc"])
        row(
            2,
            "masked accuracy % " + " / ".join(fams),
            " / ".join(f"{100 * p['val_acc'][f]:.1f}" for f in fams),
            "best trivial baseline " + " / ".join(f"{100 * p['val_baseline'][f]:.1f}" for f in fams),
        )

    def melody(m):
        for arch, name in (("bert", "BERT from stage 2"), ("rnn", "BiLSTM")):
            if m[arch]["status"] != "ok":
                row(3, f"melody, {name}", m[arch]["status"])
                continue
            row(
                3,
                f"melody, {name}, {m[arch]['train_s']} s: test note accuracy",
                f"{_pct(m[arch]['accuracy'])} ({m[arch]['steps']:,} steps)",
                f"paper {m[arch]['paper']:.2f} %",
            )

    def classify(c):
        row(
            4,
            f"predict_batch ({c['batch']} windows) vs one window at a time, {c['model']}, {c['songs']} songs "
            f"({c['source']}, {c['windows']:,} windows)",
            f"{c['speedup']:.2f}x ({c['songs_per_s_batched']:.2f} vs {c['songs_per_s_one']:.2f} songs/s)",
            f"≥ {GOALS['x_one_window']:.0f}x",
        )

    for n, (name, render) in enumerate(zip(STAGES, (throughput, pretrain, melody, classify)), 1):
        stage = r["stages"][name]
        if stage["status"] != "ok":
            row(n, name, stage["status"])
            continue
        try:
            render(stage)
        except (KeyError, TypeError) as e:  # a result without what the table shows: say so, keep the rest
            row(n, name, f"ok, but the result lacks {e}")
    d = r["device"]
    head = (
        f"{d['name']}, torch {d['torch']}, transformers {d['transformers'] or 'absent'}, {d['dtype']}"
        + (f", bf16 peak assumed {d['peak_tflops']:.0f} TFLOP/s" if d["peak_tflops"] else "")
        + f"; {r['wall_s']:.0f} s wall, {r['started']}{', --tiny' if r['tiny'] else ''}"
    )
    return "\n".join([head, "", "| stage | what | measured | goal / reference |", "|---|---|---|---|", *rows]) + "\n"


# ---- stage 1: throughput, in this process (each variant is its own subprocess) ---------------------


def sdpa_kernels(device: str, dtype) -> dict:
    """Which attention kernel SDPA picks for one bert-base layer's shapes, without a mask and
    with a key padding mask (one window half padding), with the forward + backward time."""
    import torch
    import torch.nn.functional as F

    B, H, L, D = (8, 12, 512, 64) if device == "cuda" else (2, 2, 64, 16)
    q, k, v = (torch.randn(B, H, L, D, device=device, dtype=dtype, requires_grad=True) for _ in range(3))
    keys = torch.ones(B, 1, 1, L, dtype=torch.bool, device=device)
    keys[0, ..., L // 2 :] = False
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    out = {}
    for name, mask in (("no mask", None), ("padding mask", keys)):
        F.scaled_dot_product_attention(q, k, v, attn_mask=mask).sum().backward()  # warm-up
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            F.scaled_dot_product_attention(q, k, v, attn_mask=mask).sum().backward()
        ops = {
            e.name for e in prof.events() if "attention" in e.name and e.name != "aten::scaled_dot_product_attention"
        }
        kernel = next(
            (k for k in ("flash", "cudnn", "efficient", "math") if any(k in o for o in ops)), "/".join(sorted(ops))
        )
        sync()
        t0 = time.perf_counter()
        for _ in range(5):
            F.scaled_dot_product_attention(q, k, v, attn_mask=mask).sum().backward()
        sync()
        out[name] = {"kernel": kernel, "ms": 1000 * (time.perf_counter() - t0) / 5, "ops": sorted(ops)}
    return out


def stage_throughput(plan: Plan, device: dict, limit: float) -> dict:
    import train_throughput as tt

    deadline = time.monotonic() + limit
    base = {
        "size": plan.model,
        "batch": plan.bench_batch,
        "seq_len": plan.seq_len,
        "steps": plan.bench_steps,
        "warmup": plan.bench_warmup,
        "device": device["device"],
        "dtype": device["dtype"],
        "attn_dropout": 0.0,
        "position": "rotary",
        "impl": "midibert",
    }
    variants = [
        ("midibert", {}),
        ("HF BERT (sdpa)", {"impl": "hf-sdpa", "position": "learned"}),
        ("midibert, one window half padding (mask)", {"short_window": True}),
        ("midibert, AdamW not fused", {"fused": False}),
        ("midibert, torch.compile", {"compile": True}),
    ]

    def row(variant: tuple[str, dict]) -> dict:
        name, options = variant
        left = deadline - time.monotonic()
        if options.get("impl", "").startswith("hf-") and not device["transformers"]:
            return {"name": name, "skipped": "skipped: transformers not installed"}
        if options.get("compile") and plan.compile_min_s is None:
            return {"name": name, "skipped": "skipped: not at --tiny size (compiling takes longer than the rest)"}
        if options.get("compile") and left < plan.compile_min_s:
            return {
                "name": name,
                "skipped": f"skipped: compiling needs ~{plan.compile_min_s:.0f} s, {max(left, 0):.0f} s of the stage left",
            }
        if left < 1:
            return {"name": name, "skipped": "skipped: the stage's time budget is spent"}
        r = {"name": name, **options, **tt.measure({**base, **options}, timeout=left)}
        if "error" not in r and device["peak_tflops"]:
            r["mfu"] = r["tokens_per_s"] * r["flops_per_token"] / (device["peak_tflops"] * 1e12)
        log(
            f"throughput | {name}: " + (r.get("error") or f"{r['tokens_per_s']:,.0f} tokens/s, {r['peak_mb']:,.0f} MiB")
        )
        return r

    # one variant at a time where timings count; --tiny only checks that each runs, so all at once
    with ThreadPoolExecutor(plan.bench_parallel) as pool:
        rows = list(pool.map(row, variants))
    ours, hf = rows[0], rows[1]
    try:
        sdpa = sdpa_kernels(device["device"], device["torch_dtype"])
    except Exception as e:  # noqa: BLE001  (a profiler or kernel failure must not cost the other stages)
        sdpa = {"error": f"{type(e).__name__}: {e}"}
    result = {"status": "ok", "limit_s": round(limit), "rows": rows, "sdpa": sdpa}
    if not device["cuda"]:
        result["mfu"] = {"status": "skipped: no CUDA device (MFU is against a GPU's bf16 peak; this run is fp32)"}
    elif not device["peak_tflops"]:
        result["mfu"] = {"status": f"skipped: no bf16 peak known for {device['name']} (train_throughput.PEAK_TFLOPS)"}
    elif "mfu" in ours:
        result["mfu"] = {"status": "ok", "value": ours["mfu"]}
    else:
        result["mfu"] = {
            "status": f"failed: the midibert run did not finish ({ours.get('error') or ours.get('skipped')})"
        }
    if "tokens_per_s" in ours and "tokens_per_s" in hf:
        result["x_hf_speed"] = ours["tokens_per_s"] / hf["tokens_per_s"]
        result["x_hf_memory"] = ours["peak_mb"] / hf["peak_mb"]
    return result


# ---- stages 2-4: child processes ------------------------------------------------------------------


def _compose(name: str, overrides: list[str]):
    from hydra import compose, initialize_config_dir

    from midibert.training import CONF_DIR

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(name, overrides=overrides)


def _clock(seconds: float) -> str:
    """DD:HH:MM:SS, as Lightning's max_time and time-based val_check_interval read it."""
    s = max(1, int(seconds))
    return f"{s // 86400:02d}:{s // 3600 % 24:02d}:{s // 60 % 60:02d}:{s % 60:02d}"


def _configs(spec: dict, stage: str, arch: str = "bert"):
    """The composed config of a data stage: the library's recipe and configs, sized by the plan,
    bounded by time; `spec` carries the plan, paths, device and (fine-tuning) the bundle."""
    from omegaconf import open_dict

    plan, work, real = Plan(**spec["plan"]), Path(spec["work"]), spec["real_data"]
    common = [
        f"paths.data_root={spec['data_root']}",
        f"paths.cache_dir={work / 'cache'}",
        f"paths.output_dir={work / 'runs'}",
        f"trainer={'gpu' if spec['cuda'] else 'cpu'}",
        "logger=csv",
    ]
    if stage == "pretrain":
        cfg = _compose(
            "pretrain",
            [
                *common,
                f"encoder={plan.model}",
                f"data={'pretrain_reference' if real else 'pretrain_sample'}",
                f"data.seq_len={plan.seq_len}",
                f"data.batch_size={plan.batch}",
                f"data.num_workers={plan.workers}",
                "data.bucket_by_length=true",
                f"optim.lr={plan.pretrain_lr}",
                f"optim.warmup_steps={plan.warmup_steps}",
                "callbacks.checkpoint=null",
                "name=gpu_check",
            ],
        )
        data = cfg.data
    else:
        model = [f"pretrained={spec['bundle']}"] if arch == "bert" else ["model=rnn"]
        sample = [] if real else ["task.data.dataset=sample", f"task.data.path={work / 'cache' / 'sample'}"]
        cfg = _compose(
            "finetune",
            [
                *common,
                "task=melody",
                *model,
                *sample,
                f"task.data.seq_len={plan.seq_len}",
                f"task.data.batch_size={plan.batch}",
                f"task.data.num_workers={plan.workers}",
                "task.data.bucket_by_length=true",
                f"optim.warmup_steps={plan.warmup_steps}",
                # the time budget bounds the run (and Lightning 2.6's EarlyStopping cannot
                # set up under a time-based val_check_interval)
                "callbacks.checkpoint.save_last=false",
                "callbacks.early_stopping=null",
                f"name=gpu_check-melody-{arch}",
            ]
            # the BiLSTM trains in fp32 (TF32 matmuls): cuDNN runs LSTMs in bf16 only from 9.13 on
            + ([f"optim.lr={plan.finetune_lr}"] if arch == "bert" else ["trainer.precision=32-true", *plan.rnn]),
        )
        data = cfg.task.data
    with open_dict(cfg):
        cfg.trainer.max_steps = -1
        cfg.trainer.max_time = _clock(spec["train_s"])
        cfg.trainer.val_check_interval = _clock(plan.val_every_s)
        cfg.trainer.log_every_n_steps = 50 if spec["cuda"] else 1
        cfg.trainer.enable_progress_bar = False
        cfg.trainer.limit_val_batches = plan.val_batches
        if stage == "pretrain":
            cfg.trainer.enable_checkpointing = False  # the bundle at the end is all that is used
        for d in data.get("datasets") or [data]:
            d.max_pieces = plan.max_pieces
    return cfg


def _stats_callback():
    import pytorch_lightning as pl
    import torch

    class RunStats(pl.Callback):
        """What a time-bounded training did: steps, seconds (and those spent validating), real and
        padded tokens, peak memory, and the metrics of the validation at the stop."""

        def on_train_start(self, trainer, module):
            self.t0, self.step0, self.val_s = time.monotonic(), trainer.global_step, 0.0
            self.params = sum(p.numel() for p in module.parameters())
            self.real, self.seen, self.unmasked, self.batches = 0, 0, 0, 0
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            mask = batch["attention_mask"]
            self.real = self.real + mask.sum()  # stays on the device: no synchronisation per step
            self.unmasked = self.unmasked + mask.all()
            self.seen += mask.numel()
            self.batches += 1

        def on_validation_start(self, trainer, module):
            self.val_t0 = time.monotonic()

        def on_validation_end(self, trainer, module):
            self.val_s += time.monotonic() - self.val_t0

        def on_train_end(self, trainer, module):
            seconds = time.monotonic() - self.t0
            training = max(seconds - self.val_s, 1e-9)
            self.summary = {
                "steps": trainer.global_step - self.step0,
                "seconds": round(seconds, 1),
                "validating_s": round(self.val_s, 1),
                "params": self.params,
                "real_tokens_per_s": float(self.real) / training,
                "padding": 1 - float(self.real) / max(self.seen, 1),
                "unmasked_batches": float(self.unmasked) / max(self.batches, 1),
                "peak_mb": torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else None,
                "metrics": {k: float(v) for k, v in trainer.callback_metrics.items()},
            }

    return RunStats()


def child_prepare(spec: dict) -> dict:
    """Tokenize what stages 2-3 read (cached for them) while stage 1 has the GPU, leaving it a few cores."""
    import hydra
    from omegaconf import open_dict

    t0 = time.monotonic()
    pre, mel = _configs(spec, "pretrain"), _configs({**spec, "bundle": None}, "melody", "rnn")
    for data, extra in ((pre.data, {}), (mel.task.data, {"tokenizer": mel.task.tokenizer})):
        with open_dict(data):
            data.prepare_workers = max(1, (os.cpu_count() or 1) - 4)
        hydra.utils.instantiate(data, seed=pre.seed, **extra).setup("fit")
    return {"seconds": round(time.monotonic() - t0, 1)}


def child_pretrain(spec: dict) -> dict:
    import train_throughput as tt

    from midibert.pretrain import pretrain
    from midibert.tokenize import Tokenizer
    from midibert.training.masked_lm import model_config

    cfg = _configs(spec, "pretrain")
    stats = _stats_callback()
    bundle = pretrain(cfg, callbacks=[stats])
    s = dict(stats.summary)
    m = s.pop("metrics")
    tok = Tokenizer.from_spec(cfg.data.tokenizer)
    peak = spec["device"]["peak_tflops"]
    flops = tt.flops_per_token(model_config(cfg.encoder, tok.vocab_sizes), s["params"], cfg.data.seq_len)
    fams = [f for f in tok.families if f"val/acc_{f}" in m]
    return {
        **s,
        "status": "ok",
        "bundle": str(bundle),
        "model": cfg.encoder.preset,
        "batch": cfg.data.batch_size,
        "seq_len": cfg.data.seq_len,
        "lr": cfg.optim.lr,
        "train_s": spec["train_s"],
        "corpus": [d.name for d in cfg.data.datasets],
        "mfu": s["real_tokens_per_s"] * flops / (peak * 1e12) if peak else None,  # real tokens: padding is no work
        "val_acc": {f: m[f"val/acc_{f}"] for f in fams},
        "val_baseline": {f: max(m[f"val/base_{b}_{f}"] for b in ("prev", "next", "unigram")) for f in fams},
    }


def child_melody(spec: dict) -> dict:
    from midibert.finetune import finetune
    from midibert.tasks import get_task

    cfg = _configs(spec, "melody", spec["arch"])
    stats = _stats_callback()
    run_dir = finetune(cfg, callbacks=[stats])
    res = json.loads((Path(run_dir) / "results.json").read_text())
    note = res["levels"]["note"]
    return {
        "status": "ok",
        "accuracy": note["accuracy"],
        "macro_f1": note["macro_f1"],
        "notes": note["n"],
        "dataset": res["dataset"],
        "paper": get_task("melody").paper[spec["arch"]],
        "train_s": spec["train_s"],
        "lr": cfg.optim.lr,
        "batch": cfg.task.data.batch_size,
        **{k: v for k, v in stats.summary.items() if k != "metrics"},
    }


def child_classify(spec: dict) -> dict:
    import classify as bench

    from midibert.classify import Classifier

    plan, root = Plan(**spec["plan"]), Path(spec["data_root"]) / "pop909"
    split = root / "splits_midibert" / "test.txt"
    if split.is_file():
        files = [root / "POP909" / i / f"{i}.mid" for i in split.read_text().split()]
        source = "POP909 test split"
    else:
        from midibert.synthetic import generate_corpus

        # as many pieces as POP909's test split, about as long as its songs
        corpus = generate_corpus(Path(spec["work"]) / "generated", n_pieces=plan.songs or 86, seed=0, bars=(32, 64))
        files = sorted((corpus / "midi").rglob("*.mid"))
        source = "generated pieces"
    files = files[: plan.songs or None]
    device = spec["device"]["device"]
    path = bench.bundle(plan.model, Path(spec["work"]) / "bundles")
    one, _, windows = bench.throughput(Classifier.from_pretrained(path, batch_size=1, device=device), files)
    batch = 32
    batched, notes, _ = bench.throughput(Classifier.from_pretrained(path, batch_size=batch, device=device), files)
    return {
        "status": "ok",
        "model": plan.model,
        "device": device,
        "songs": len(files),
        "notes": notes,
        "windows": windows,
        "source": source,
        "batch": batch,
        "songs_per_s_one": len(files) / one,
        "songs_per_s_batched": len(files) / batched,
        "speedup": one / batched,
    }


CHILDREN = {"prepare": child_prepare, "pretrain": child_pretrain, "melody": child_melody, "classify": child_classify}


# ---- the parent ------------------------------------------------------------------------------------

_LOG: Path | None = None


def log(msg: str) -> None:
    line = f"{time.strftime('%H:%M:%S')} {msg}"
    print(line, flush=True)
    if _LOG is not None:
        with _LOG.open("a") as f:
            f.write(line + "\n")


def start_child(name: str, spec: dict, work: Path) -> tuple[subprocess.Popen, Path]:
    """A stage in a fresh process; its output goes to its own log beside the results until it ends."""
    tag = f"{name}-{spec['arch']}" if spec.get("arch") else name
    result, output = work / f"{tag}.json", _LOG.with_name(f"gpu_check-{tag}.log")
    result.unlink(missing_ok=True)
    with output.open("w") as f:
        proc = subprocess.Popen(
            [
                sys.executable,
                os.path.abspath(__file__),
                "--child",
                name,
                "--spec",
                json.dumps({**spec, "result": str(result)}),
            ],
            stdout=f,
            stderr=subprocess.STDOUT,
        )
    return proc, result


def finish_child(proc: subprocess.Popen, result: Path, limit: float, started: float) -> dict:
    """Wait for a child until `limit` seconds after `started`; its result, or why there is none.
    Its log then joins gpu_check.log (the results folder's files are few: the device tool brings back 8)."""
    try:
        proc.wait(timeout=max(0.0, started + limit - time.monotonic()))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    output = _LOG.with_name(f"gpu_check-{result.stem}.log")
    lines = [line for line in output.read_text(errors="replace").splitlines() if line.strip()]
    with _LOG.open("a") as f:
        f.write(f"---- {result.stem} ----\n" + "\n".join(lines) + "\n")
    output.unlink()
    if proc.returncode == -9:
        return {"status": f"failed: stopped at its {limit:.0f} s limit"}
    if proc.returncode or not result.is_file():
        return {"status": f"failed: exit status {proc.returncode}: {lines[-1] if lines else 'no output'}"}
    return json.loads(result.read_text())


def run_child(name: str, spec: dict, work: Path, limit: float) -> dict:
    started = time.monotonic()
    proc, result = start_child(name, spec, work)
    return {**finish_child(proc, result, limit, started), "wall_s": round(time.monotonic() - started, 1)}


def device_info() -> dict:
    import torch
    import train_throughput as tt

    try:
        transformers = metadata.version("transformers")
    except metadata.PackageNotFoundError:
        transformers = None
    cuda = torch.cuda.is_available()
    name = torch.cuda.get_device_name() if cuda else f"CPU ({os.cpu_count()} cores)"
    return {
        "name": name,
        "device": "cuda" if cuda else "cpu",
        "cuda": cuda,
        "dtype": "bf16" if cuda else "fp32",
        "torch_dtype": torch.bfloat16 if cuda else torch.float32,
        "torch": torch.__version__,
        "transformers": transformers,
        "peak_tflops": tt.peak_tflops(name) if cuda else 0.0,
        "cpus": os.cpu_count(),
    }


def data_check(root: Path, tiny: bool) -> tuple[bool, str | None]:
    """(real data present, why stages 2-3 cannot run or None). --tiny falls back to the generated corpus."""
    needed = ("pop909", "asap", "pianist8", "pop1k7")
    missing = [n for n in needed if not (root / n).is_dir()]
    if not missing:
        return True, None
    if tiny:
        return False, None
    return False, f"skipped: no {', '.join(missing)} under {root} (--data-root; --pack carries them)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", type=Path, help="folder for gpu_check.json, gpu_check.md and gpu_check.log")
    p.add_argument("--data-root", type=Path, default=DATA, help="folder holding pop909/, asap/, pianist8/, pop1k7/")
    p.add_argument("--work", type=Path, help="runs, caches, checkpoints (default: a temporary folder, removed)")
    p.add_argument("--tiny", action="store_true", help="bert-tiny, seconds a stage (fp32 on a CPU): every code path")
    p.add_argument("--minutes", type=float, default=9.0, help="wall-time budget of the whole run (without --tiny)")
    p.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    p.add_argument("--pack", type=Path, metavar="DIR", help="write DIR/data.tar.gz and DIR/*.whl for the GPU machine")
    p.add_argument("--child", choices=list(CHILDREN), help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
        spec = json.loads(args.spec)
        Path(spec["result"]).write_text(json.dumps(CHILDREN[args.child](spec)))
        return
    if args.pack:
        pack(args.pack, args.data_root)
        return
    if not args.out:
        p.error("--out is required")
    run(args)


def run(args) -> None:
    global _LOG
    t0 = time.monotonic()
    plan = TINY if args.tiny else full_plan(args.minutes)
    args.out.mkdir(parents=True, exist_ok=True)
    _LOG = args.out / "gpu_check.log"
    _LOG.write_text("")
    work = args.work or Path(tempfile.mkdtemp(prefix="gpu_check-"))
    work.mkdir(parents=True, exist_ok=True)
    device = device_info()
    real, why_not = data_check(args.data_root, args.tiny)
    info = {
        "_t0": t0,
        "started": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "tiny": args.tiny,
        "device": {k: v for k, v in device.items() if k != "torch_dtype"},
        "plan": asdict(plan),
        "data_root": str(args.data_root),
        "real_data": real,
        "goals": GOALS,
    }
    results = Results(args.out, info)
    log(
        f"gpu_check: {device['name']}, {device['dtype']}, torch {device['torch']}, bf16 peak assumed "
        f"{device['peak_tflops']:.0f} TFLOP/s; data: {args.data_root if real else why_not or 'generated (--tiny)'}"
    )
    deadline = math.inf if args.tiny else t0 + 60 * args.minutes

    def limit(stage: str) -> float:
        """The stage's share, less any overrun so far; pre-training also takes what stage 1 left."""
        later = sum(plan.limits[s] for s in STAGES[STAGES.index(stage) + 1 :] if s in args.stages)
        left = deadline - time.monotonic() - later
        return max(0.0, min(left, left if stage == "pretrain" and not args.tiny else plan.limits[stage]))

    spec = {
        "plan": asdict(plan),
        "work": str(work),
        "data_root": str(args.data_root),
        "real_data": real,
        "cuda": device["cuda"],
        "device": info["device"],
        "train_s": 1,
    }
    prep = None
    if {"pretrain", "melody"} & set(args.stages) and not why_not:
        prep = (*start_child("prepare", spec, work), time.monotonic())
    try:
        if "throughput" in args.stages:
            started = time.monotonic()
            try:
                r = stage_throughput(plan, device, limit("throughput"))
            except Exception as e:  # noqa: BLE001  (the other stages still run)
                log(traceback.format_exc())
                r = {"status": f"failed: {type(e).__name__}: {e}"}
            results.set("throughput", {**r, "wall_s": round(time.monotonic() - started, 1)})
        if prep is not None:
            prepared = finish_child(prep[0], prep[1], min(deadline - prep[2], plan.limits["pretrain"]), prep[2])
            log(f"data prepared: {prepared}")
            if "seconds" not in prepared:
                why_not = f"skipped: data preparation {prepared['status']}"
        bundle = None
        if "pretrain" in args.stages:
            lim = limit("pretrain")
            r = (
                {"status": why_not}
                if why_not
                else run_child("pretrain", {**spec, "train_s": plan.train_seconds("pretrain", lim)}, work, lim)
            )
            results.set("pretrain", r)
            bundle = r.get("bundle")
        if "melody" in args.stages:
            results.set(
                "melody", {"status": why_not} if why_not else stage_melody(plan, spec, bundle, work, limit("melody"))
            )
        if "classify" in args.stages:
            results.set("classify", run_child("classify", spec, work, limit("classify")))
    finally:
        if prep is not None and prep[0].poll() is None:
            prep[0].kill()
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    log(f"done in {time.monotonic() - t0:.0f} s: {args.out / 'gpu_check.md'}")
    print((args.out / "gpu_check.md").read_text())


def stage_melody(plan: Plan, spec: dict, bundle: str | None, work: Path, limit: float) -> dict:
    """The pre-trained BERT and the BiLSTM fine-tuned side by side, each on the same time budget."""
    started = time.monotonic()
    s = {**spec, "train_s": plan.train_seconds("melody", limit), "bundle": bundle}
    archs = ["bert", "rnn"] if bundle else ["rnn"]
    procs = {arch: start_child("melody", {**s, "arch": arch}, work) for arch in archs}
    out = {arch: finish_child(*procs[arch], limit, started) for arch in archs}
    out.setdefault("bert", {"status": "skipped: no pre-trained encoder (stage 2 did not finish)"})
    return {"status": "ok", **out, "wall_s": round(time.monotonic() - started, 1)}


# ---- what the GPU machine lacks -----------------------------------------------------------------


def pack(dest: Path, data_root: Path) -> None:
    """DIR/data.tar.gz: the files stages 2-4 read (every piece the readers list, with the options
    the configs give, and each dataset's non-MIDI files: splits, beats, metadata); DIR/*.whl: the
    packages the GPU machine's image lacks, for its Python 3.12 (docs/contributing.md says how they are used)."""
    cfg = _compose("pretrain", [f"paths.data_root={data_root}", "data=pretrain_reference"])
    tar_data(dest, data_root, {(d.name, d.path, json.dumps(dict(d.options or {}))) for d in cfg.data.datasets})
    wheels(dest)


def tar_data(dest: Path, data_root: Path, wanted: set[tuple[str, str, str]]) -> None:
    """DEST/data.tar.gz: of each (dataset, path, reader options as JSON), every piece the reader
    lists and the dataset's non-MIDI files (splits, beats, metadata), under data/."""
    from midibert.datasets.base import dataset_dir, midi_files, read

    dest.mkdir(parents=True, exist_ok=True)
    files = set()
    for name, path, options in sorted(wanted):
        root = dataset_dir(name, path)
        midi = set(midi_files(root))
        files |= {p for p in root.rglob("*") if p.is_file() and p not in midi}
        files |= {piece.path for piece in read(name, path, **json.loads(options))}
    with tarfile.open(dest / "data.tar.gz", "w:gz") as tar:
        for f in sorted(files):
            tar.add(f, arcname=str(Path("data") / f.relative_to(data_root)))
    print(f"{dest / 'data.tar.gz'}: {len(files)} files, {(dest / 'data.tar.gz').stat().st_size / 2**20:.1f} MiB")


def wheels(dest: Path) -> None:
    """DEST/*.whl: the packages the GPU machine's image lacks (WHEELS), for its Python 3.12."""
    pins = [f"{n}=={metadata.version(n)}" for n in WHEELS]
    platforms = [
        a
        for tag in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
        for a in ("--platform", tag)
    ]
    pure = ["antlr4-python3-runtime"]  # published as source only: built into a wheel here
    pip = [sys.executable, "-m", "pip"]
    subprocess.run(
        [
            *pip,
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.12",
            "--implementation",
            "cp",
            *platforms,
            "-d",
            str(dest),
            *[p for p in pins if p.split("==")[0] not in pure],
        ],
        check=True,
    )
    subprocess.run(
        [*pip, "wheel", "--no-deps", "-w", str(dest), *[p for p in pins if p.split("==")[0] in pure]], check=True
    )
    print("\n".join(sorted(f.name for f in dest.glob("*.whl"))))


if __name__ == "__main__":
    main()
