"""A training sampler whose position in the data is a function of the optimizer step.

Resuming a killed run then continues with the very batches the uninterrupted run would have
seen: the order of each pass is a seeded permutation, and the batches already consumed in
the current pass are skipped, both derived from the restored global step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch
from torch.utils.data import Sampler


class StepSampler(Sampler[list[int]]):
    """Batches of indices; pass p is permutation(seed + p); starts where `step()` says.

    lengths: each item's length, to batch items of like length together (the full windows of a
    pass in batches of their own, which then need no attention mask, and the pieces' shorter
    last windows sorted by length, so a batch cut to its longest window holds little padding).

    jitter: with it, each index comes as (index, shift), a shift in [-jitter, jitter] drawn anew
    for every item and pass, for a dataset that moves its windows by it (`WindowDataset`).

    With torch.distributed running, each rank takes its own slice of every batch, so the
    trainer must not wrap this sampler again (`use_distributed_sampler=False`).
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        seed: int = 0,
        shuffle: bool = True,
        step: Callable[[], int] | None = None,
        lengths: Sequence[int] | None = None,
        jitter: int = 0,
    ):
        if n < batch_size:
            raise ValueError(f"{n} training windows are fewer than one batch of {batch_size}")
        if lengths is not None and len(lengths) != n:
            raise ValueError(f"{len(lengths)} lengths for {n} items")
        if jitter < 0:
            raise ValueError(f"jitter must be >= 0, got {jitter}")
        self.n, self.batch_size, self.seed, self.shuffle, self.jitter = n, batch_size, seed, shuffle, jitter
        self.step = step or (lambda: 0)
        self.lengths = None if lengths is None else torch.as_tensor(lengths)

    def __len__(self) -> int:
        return self.n // self.batch_size  # full batches only, so steps per pass are fixed

    def _rank(self) -> tuple[int, int]:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def batches(self, pass_: int) -> torch.Tensor:
        """(len(self), batch_size) indices of pass `pass_`, in the order they are taken."""
        return self._draw(pass_)[0]

    def _draw(self, pass_: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The pass's batches, and each item's shift (None without jitter)."""
        g = torch.Generator().manual_seed(self.seed + pass_)
        batches = self._order(g)
        # drawn after the order, which is then the same with and without jitter
        return batches, torch.randint(-self.jitter, self.jitter + 1, (self.n,), generator=g) if self.jitter else None

    def _order(self, g: torch.Generator) -> torch.Tensor:
        order = torch.randperm(self.n, generator=g) if self.shuffle else torch.arange(self.n)
        kept = order[: len(self) * self.batch_size]  # the n % batch_size left out are random ones
        if self.lengths is None:
            return kept.view(-1, self.batch_size)
        # longest first, ties in their random order; then the batches themselves are shuffled
        kept = kept[torch.sort(self.lengths[kept], descending=True, stable=True).indices]
        batches = kept.view(-1, self.batch_size)
        return batches[torch.randperm(len(batches), generator=g)] if self.shuffle else batches

    def __iter__(self) -> Iterator[list[int]]:
        pass_, offset = divmod(self.step(), len(self))
        batches, shifts = self._draw(pass_)
        rank, world = self._rank()
        for b in range(offset, len(self)):
            mine = batches[b][rank::world]
            yield mine.tolist() if shifts is None else list(zip(mine.tolist(), shifts[mine].tolist()))
