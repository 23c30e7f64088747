"""BiLSTM baseline training step: midibert's BiLSTM vs the packed `nn.LSTM(bidirectional=True)`
it replaces, same weights, same batch, in one run.

    python benchmarks/bilstm.py [--batch 16] [--seq-len 256] [--steps 3] [--device cpu]

The batch has unequal lengths (one window in four is shorter), as fine-tuning batches do where
a piece ends. The packed reference is what PyTorch offers for "the backward direction starts
at the last real token"; midibert gets the same outputs (tests/test_baselines.py) by reversing
each sequence within its length, so every LSTM call takes the fused kernel.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from midibert.baselines import BiLSTM
from midibert.model import BertConfig
from midibert.tokenize import Tokenizer


class PackedBiLSTM(nn.Module):
    """The reference: our embedding, then one packed 3-layer bidirectional nn.LSTM."""

    def __init__(self, ours: BiLSTM):
        super().__init__()
        self.embed = ours.embed
        self.lstm = nn.LSTM(
            ours.hidden_size,
            ours.hidden_size,
            ours.num_layers,
            batch_first=True,
            bidirectional=True,
            dropout=ours.dropout.p,
        )

    def forward(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        packed = pack_padded_sequence(
            self.embed(input_ids), attention_mask.sum(1).cpu(), batch_first=True, enforce_sorted=False
        )
        return pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=input_ids.shape[1])[0]


def seconds_per_step(model: nn.Module, ids: Tensor, mask: Tensor, steps: int) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)

    def step():
        model(ids, mask)[mask].square().mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()  # warm-up
    if ids.is_cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if ids.is_cuda:
        torch.cuda.synchronize()
    return (time.perf_counter() - t0) / steps


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq-len", type=int, default=256)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.manual_seed(0)
    vocab = Tokenizer.create("cp", kind="score").vocab_sizes
    ours = BiLSTM(BertConfig.preset("bert-small", vocab_sizes=vocab)).to(args.device)
    reference = PackedBiLSTM(ours).to(args.device)
    ids = torch.stack([torch.randint(3, v, (args.batch, args.seq_len)) for v in vocab], -1).to(args.device)
    lengths = torch.full((args.batch,), args.seq_len)
    lengths[::4] = args.seq_len // 2
    mask = (torch.arange(args.seq_len)[None] < lengths[:, None]).to(args.device)
    print(
        f"batch {args.batch} x {args.seq_len}, {args.device}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads\n"
    )
    print("| BiLSTM (3 x 256 per direction) | s / training step | speedup |")
    print("| --- | ---: | ---: |")
    base = seconds_per_step(reference, ids, mask, args.steps)
    print(f"| packed nn.LSTM (reference) | {base:.2f} | 1.00x |", flush=True)
    t = seconds_per_step(ours, ids, mask, args.steps)
    print(f"| midibert BiLSTM | {t:.2f} | {base / t:.2f}x |")


if __name__ == "__main__":
    main()
