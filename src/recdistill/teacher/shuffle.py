"""The teacher's training order: one permutation per epoch, a function of the seed and the epoch alone.

``DataLoader(shuffle=True, generator=...)`` draws its permutation from the generator's *current* state, and
Lightning may start an iterator more than once before training (its checks on a freshly loaded loader), so
the order depended on how many iterators had been made, which differs between a straight run and one
resumed from a checkpoint (the resumed teacher trained its next epoch on other batches). Torch has no
sampler whose order is fixed by ``(seed, epoch)`` for a single process (``DistributedSampler`` is that, but
for ranks), so this is a few lines written here.
"""

from __future__ import annotations

import torch
from torch.utils.data import Sampler


class EpochShuffle(Sampler):
    """Indices ``0 .. size-1`` in an order drawn from a generator seeded with ``seed + epoch``, the same
    order every time it is iterated in that epoch. Lightning calls :meth:`set_epoch` at each epoch's start."""

    def __init__(self, size: int, seed: int, epoch: int = 0):
        self.size, self.seed, self.epoch = int(size), int(seed), int(epoch)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.size

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())
