"""BiLSTM fine-tuning on real windows, with denormal floats flushed to zero and without, in one run.

    python benchmarks/denormals.py [--task style] [--steps 80] [--data-root ../shared/data]

The BiLSTM's training steps slow down as it learns: its gradients drift into denormal floats,
which x86 CPUs compute many times slower. Measuring with fresh weights and random tokens, as
benchmarks/bilstm.py does, never shows it. This trains one BiLSTM (the paper's size) on the
task's real training windows, switching flushing off and on every 10 steps, and prints the
seconds per step of each block. Every trainer flushes while it fits (`midibert.training.FlushDenormals`).
"""

from __future__ import annotations

import argparse
import time

import hydra
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from midibert.network import build_network
from midibert.tokenize import IGNORE
from midibert.training import CONF_DIR
from midibert.training.masked_lm import model_config


def batches(loader_factory):
    while True:
        yield from loader_factory()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", default="style")
    p.add_argument("--steps", type=int, default=80)
    p.add_argument("--block", type=int, default=10)
    p.add_argument("--data-root", default="../shared/data")
    args = p.parse_args()
    torch.manual_seed(0)
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose(
            "finetune",
            overrides=[
                f"task={args.task}",
                "model=rnn",
                f"paths.data_root={args.data_root}",
                "task.data.seq_len=256",
                "task.data.batch_size=16",
            ],
        )
    dm = hydra.utils.instantiate(cfg.task.data, tokenizer=cfg.task.tokenizer, seed=1)
    dm.prepare_data()
    dm.setup("fit")
    task = {
        "level": cfg.task.level,
        "num_classes": len(cfg.task.class_names),
        "arch": "rnn",
        "head": OmegaConf.to_container(cfg.model.head, resolve=True),
    }
    net = build_network(task, model_config(cfg.encoder, dm.tokenizer.vocab_sizes))
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.optim.lr)
    print(
        f"{args.task}: BiLSTM 3 x 256, batches 16 x 256, torch {torch.__version__}, {torch.get_num_threads()} threads\n"
    )
    print("| steps | denormals | s / step |")
    print("| --- | --- | ---: |")
    data = batches(dm.train_dataloader)
    for start in range(0, args.steps, args.block):
        flush = (start // args.block) % 2 == 1
        torch.set_flush_denormal(flush)
        t0 = time.perf_counter()
        for _ in range(args.block):
            b = next(data)
            out = net(b["input_ids"], b["attention_mask"])
            logits = out if out.dim() == 2 else out.flatten(0, 1)
            torch.nn.functional.cross_entropy(logits, b["labels"].flatten(), ignore_index=IGNORE).backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        seconds = (time.perf_counter() - t0) / args.block
        print(f"| {start}-{start + args.block - 1} | {'flushed' if flush else 'kept'} | {seconds:.2f} |", flush=True)


if __name__ == "__main__":
    main()
