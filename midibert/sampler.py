"""A training sampler whose position in the data is a function of the optimizer step.

Resuming a killed run then continues with the very batches the uninterrupted run would have
seen: the order of each pass is a seeded permutation, and the batches already consumed in
the current pass are skipped, both derived from the restored global step.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch.utils.data import Sampler


class StepSampler(Sampler[list[int]]):
    """Batches of indices; pass p is permutation(seed + p); starts where `step()` says.

    With torch.distributed running, each rank takes its own slice of every batch, so the
    trainer must not wrap this sampler again (`use_distributed_sampler=False`).
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, shuffle: bool = True,
                 step: Callable[[], int] | None = None):
        if n < batch_size:
            raise ValueError(f"{n} training windows are fewer than one batch of {batch_size}")
        self.n, self.batch_size, self.seed, self.shuffle = n, batch_size, seed, shuffle
        self.step = step or (lambda: 0)

    def __len__(self) -> int:
        return self.n // self.batch_size  # full batches only, so steps per pass are fixed

    def _rank(self) -> tuple[int, int]:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def __iter__(self) -> Iterator[list[int]]:
        done = self.step()
        pass_, offset = divmod(done, len(self))
        g = torch.Generator().manual_seed(self.seed + pass_)
        order = torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)
        rank, world = self._rank()
        for b in range(offset, len(self)):
            batch = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield batch[rank::world].tolist()
