"""MLM training throughput and peak memory: midibert's MidiBertForMLM vs a Hugging Face BERT
encoder set up as MidiBERT-Piano did, same size, in one run.

    python benchmarks/train_throughput.py                       # CPU, fp32: bert-small and bert-base
    python benchmarks/train_throughput.py --device cuda --dtype bf16 --batch 32 --steps 20

Each model trains (forward, backward, AdamW step) on the same fixed masked CP batch in a fresh
subprocess, so peak memory (ru_maxrss on CPU, max_memory_allocated on CUDA) is that model's
alone. MidiBERT-Piano fed its own CP embeddings into `transformers.BertModel(inputs_embeds=...)`
and put one linear head per family on top; the HF rows do the same, with our embedding and
heads, so only the encoder differs. MidiBERT used `position_embedding_type="relative_key_query"`;
transformers 5 removed it from BERT, and the script says which the installed version runs.
Needs `pip install transformers` (the `bench` extra).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import subprocess
import sys
import time

import torch
from torch import nn

from midibert.model import BertConfig, Embeddings, MidiBertForMLM, MLMHead
from midibert.training.masking import mask_tokens

PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L4": 121.0}  # dense bf16, for MFU


def peak_tflops(device_name: str) -> float:
    """The dense bf16 peak of a GPU named `device_name` (datasheet figure; 0 when unknown)."""
    return next((v for k, v in PEAK_TFLOPS.items() if k in device_name), 0.0)


def hf_relative_supported() -> bool:
    """Whether the installed transformers' BERT still implements relative_key_query."""
    from transformers.models.bert import modeling_bert

    return "relative_key_query" in inspect.getsource(modeling_bert)


class HFEncoder(nn.Module):
    """Our CP embedding feeding `transformers.BertModel`, as MidiBERT-Piano's MidiBert class did."""

    def __init__(self, cfg: BertConfig, attn: str):
        super().__init__()
        from transformers import BertConfig as HFConfig
        from transformers import BertModel

        self.embed = Embeddings(cfg.vocab_sizes, cfg.emb_size, cfg.hidden)
        pos = "relative_key_query" if hf_relative_supported() else "absolute"
        hf = HFConfig(
            vocab_size=4,  # input ids never reach BERT's word embeddings: keep them tiny
            hidden_size=cfg.hidden,
            num_hidden_layers=cfg.layers,
            num_attention_heads=cfg.heads,
            intermediate_size=cfg.ffn,
            hidden_dropout_prob=cfg.dropout,
            attention_probs_dropout_prob=cfg.attn_dropout,
            max_position_embeddings=cfg.max_len,
            position_embedding_type=pos,
            attn_implementation=attn,
        )
        self.bert = BertModel(hf, add_pooling_layer=False)

    def forward(self, input_ids, attention_mask=None):
        return self.bert(inputs_embeds=self.embed(input_ids), attention_mask=attention_mask).last_hidden_state


class HFForMLM(nn.Module):
    """HFEncoder with our MLM head and loss, so that only the encoder differs from MidiBertForMLM."""

    loss = MidiBertForMLM.loss
    forward = MidiBertForMLM.forward

    def __init__(self, cfg: BertConfig, attn: str):
        super().__init__()
        self.cfg = cfg
        self.bert = HFEncoder(cfg, attn)
        self.head = MLMHead(cfg.hidden, cfg.vocab_sizes)


def build(impl: str, cfg: BertConfig) -> nn.Module:
    """impl: "midibert" or "hf-<attn_implementation>" (sdpa, eager)."""
    return HFForMLM(cfg, impl[3:]) if impl.startswith("hf-") else MidiBertForMLM(cfg)


def flops_per_token(cfg: BertConfig, n_params: int, seq_len: int) -> float:
    """Training FLOPs per token: 6 * params (matmuls, fwd + bwd) + 12 * layers * L * hidden (attention)."""
    return 6 * n_params + 12 * cfg.layers * seq_len * cfg.hidden


def worker(spec: dict) -> dict:
    """Train one model for a few steps; runs in its own process.

    Options beyond the command line's (for a GPU run to compare): "fused" AdamW (default: as
    training does, fused on CUDA), "compile" (torch.compile the model), "short_window" (one
    window of the batch half empty, so an attention mask is needed).
    """
    from midibert.tokenize import Tokenizer
    from midibert.training.optim import adamw, decay_groups

    torch.manual_seed(0)
    dev = torch.device(spec["device"])
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # as midibert's GPU trainers run
    vocab = Tokenizer.create("cp", kind="score").vocab_sizes
    cfg = BertConfig.preset(
        spec["size"], vocab_sizes=vocab, position=spec["position"], attn_dropout=spec["attn_dropout"]
    )
    B, L = spec["batch"], spec["seq_len"]
    ids = torch.stack([torch.randint(3, v, (B, L)) for v in vocab], dim=-1)
    mask = torch.ones(B, L, dtype=torch.bool)
    if spec.get("short_window"):
        mask[0, L // 2 :] = False
        ids[0, L // 2 :] = 0
    masked, targets, _ = mask_tokens(ids, mask, vocab, generator=torch.Generator().manual_seed(0))
    masked, targets, mask = masked.to(dev), targets.to(dev), mask.to(dev)

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model = build(spec["impl"], cfg).to(dev).train()
    n_params = sum(p.numel() for p in model.parameters())
    opt = adamw(decay_groups(model.named_parameters(), 0.01), lr=1e-4, fused=spec.get("fused"))
    forward = torch.compile(model) if spec.get("compile") else model
    amp = torch.autocast(dev.type, dtype=torch.bfloat16, enabled=spec["dtype"] == "bf16")

    def step():
        with amp:
            loss = model.loss(forward(masked, mask), targets)["loss"]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    for _ in range(spec["warmup"]):
        step()
    sync()
    t1 = time.perf_counter()
    for _ in range(spec["steps"]):
        step()
    sync()
    seconds = (time.perf_counter() - t1) / spec["steps"]
    if dev.type == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024  # KiB on Linux
    return {
        "tokens_per_s": B * L / seconds,
        "seconds_per_step": seconds,
        "warmup_s": t1 - t0,
        "peak_mb": peak_mb,
        "params": n_params,
        "flops_per_token": flops_per_token(cfg, n_params, L),
        "fused": opt.defaults.get("fused"),
    }


def measure(spec: dict, timeout: float | None = None) -> dict:
    """`worker(spec)` in a fresh process, so peak memory is that model's alone: its result, or
    {"error": why} when it failed or ran past `timeout` seconds."""
    try:
        proc = subprocess.run(
            [sys.executable, os.path.abspath(__file__), "--worker", json.dumps(spec)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return {"error": f"stopped at its {timeout:.0f} s limit"}
    if proc.returncode:
        lines = proc.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit status {proc.returncode}", "stderr": "\n".join(lines[-30:])}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", nargs="+", default=["bert-small", "bert-base"])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--steps", type=int, default=3, help="timed steps per model")
    p.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--dtype",
        choices=["fp32", "bf16"],
        default="fp32",
        help="bf16 autocast; on CPU it is many times slower, use it on GPUs",
    )
    p.add_argument("--attn-dropout", type=float, default=0.1, help="for both models (BERT: 0.1)")
    p.add_argument(
        "--hf-attn", nargs="+", default=["sdpa", "eager"], help="transformers attn_implementation(s) to compare"
    )
    p.add_argument("--peak-tflops", type=float, default=0.0, help="device peak, for MFU (default: by GPU name)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return

    import transformers

    peak = args.peak_tflops
    if not peak and args.device.startswith("cuda"):
        peak = peak_tflops(torch.cuda.get_device_name())
    hf_pos = "relative_key_query" if hf_relative_supported() else "absolute (relative_key_query is gone)"
    print(f"torch {torch.__version__}, transformers {transformers.__version__}: HF BERT positions {hf_pos}")
    print(
        f"device {args.device}, {args.dtype}, batch {args.batch} x {args.seq_len} tokens, "
        f"attention dropout {args.attn_dropout}, "
        f"{args.warmup} warm-up + {args.steps} timed steps, {torch.get_num_threads()} threads\n"
    )
    runs = [("midibert", "learned"), ("midibert", "relative")] + [(f"hf-{a}", "learned") for a in args.hf_attn]
    print(
        f"| size | model | params | tokens/s | peak MB | x hf-{args.hf_attn[0]} speed | x hf-{args.hf_attn[0]} memory |"
        + (" MFU |" if peak else " GFLOP/s |")
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for size in args.sizes:
        results = {}
        for impl, position in runs:
            spec = dict(vars(args), size=size, impl=impl, position=position)
            spec.pop("worker")
            result = measure(spec)
            if "error" in result:
                print(f"| {size} | {impl} | failed: {result['error']} |")
                continue
            results[impl, position] = result
        ref = results.get((f"hf-{args.hf_attn[0]}", "learned"))
        for (impl, position), r in results.items():
            label = f"midibert ({position})" if impl == "midibert" else impl
            achieved = r["tokens_per_s"] * r["flops_per_token"]
            util = f"{achieved / (peak * 1e12):.1%}" if peak else f"{achieved / 1e9:.0f}"
            speed = f"{r['tokens_per_s'] / ref['tokens_per_s']:.2f}" if ref else "-"
            memory = f"{r['peak_mb'] / ref['peak_mb']:.2f}" if ref else "-"
            print(
                f"| {size} | {label} | {r['params'] / 1e6:.1f}M | {r['tokens_per_s']:.0f} | "
                f"{r['peak_mb']:.0f} | {speed} | {memory} | {util} |"
            )


if __name__ == "__main__":
    main()
