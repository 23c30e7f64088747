"""Pre-training step time of the two objectives, masked LM and ELECTRA, same encoder, same batch,
in one run: the ratio sets the step budgets of an equal wall-clock comparison (docs/recipe.md).

    python benchmarks/objectives.py [--preset bert-small] [--batch 12] [--seq-len 256] [--steps 8]

The two modules' training steps (masking, forward, loss, backward, AdamW) alternate, so a machine
whose speed drifts (other jobs, clocks) slows both alike; the median step of each is reported.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from midibert.tokenize import Tokenizer
from midibert.training.electra import Electra
from midibert.training.masked_lm import MaskedLM


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="bert-small")
    p.add_argument("--batch", type=int, default=12)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--steps", type=int, default=8)
    args = p.parse_args()

    tok = Tokenizer.from_spec("cp-score")
    kw = dict(
        encoder={"preset": args.preset},
        vocab_sizes=tok.vocab_sizes,
        families=tok.families,
        optim={},
        mask={"loss_weighting": "equal"},
    )
    modules = {"masked LM": MaskedLM(**kw), "ELECTRA": Electra(**kw)}
    optims = {name: torch.optim.AdamW(m.parameters(), lr=1e-3) for name, m in modules.items()}
    g = torch.Generator().manual_seed(0)
    ids = torch.stack([torch.randint(4, v, (args.batch, args.seq_len), generator=g) for v in tok.vocab_sizes], -1)
    batch = {"input_ids": ids, "attention_mask": torch.ones(args.batch, args.seq_len, dtype=torch.bool)}
    times: dict[str, list[float]] = {name: [] for name in modules}
    for step in range(args.steps + 1):
        for name, module in modules.items():
            t0 = time.perf_counter()
            out, _ = module._losses(batch, module._masked(batch, None), None)
            out["loss"].backward()
            optims[name].step()
            optims[name].zero_grad(set_to_none=True)
            if step:  # the first step of each is warm-up
                times[name].append(time.perf_counter() - t0)
    print(f"{args.preset}, batch {args.batch} x {args.seq_len}, {torch.get_num_threads()} threads")
    base = statistics.median(times["masked LM"])
    for name, t in times.items():
        params = sum(p.numel() for p in modules[name].parameters()) / 1e6
        print(
            f"{name:10s} {statistics.median(t):.3f} s/step  x{statistics.median(t) / base:.2f}  {params:.2f}M parameters"
        )


if __name__ == "__main__":
    main()
