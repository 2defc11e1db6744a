"""Length-bucketed training batches: prompts of similar length share a batch, so little of each batch is
padding. Padding costs the CPU a full forward and backward per pad token; the loss does not see it (the
model masks padded columns and the loss averages over answer tokens only), so bucketing changes which
prompts meet in a batch, never what one batch's loss is.

Torch has no length-grouped sampler (transformers' ``LengthGroupedSampler`` lives inside its Trainer and
takes fixed lengths, while ours change every epoch with the re-drawn candidates), so this is a few lines
written here.
"""

from __future__ import annotations

import math

import numpy as np
from torch.utils.data import Sampler


def bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                     bucket_batches: int = 50) -> list[list[int]]:
    """Shuffle, cut into buckets of ``bucket_batches`` batches, sort each bucket by length, cut it into
    batches, then shuffle the batches. Every index appears exactly once."""
    lengths = np.asarray(lengths)
    order = rng.permutation(len(lengths))
    span = batch_size * max(1, int(bucket_batches))
    batches = []
    for start in range(0, len(order), span):
        part = order[start: start + span]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches += [part[i: i + batch_size].tolist() for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


class LengthBucketSampler(Sampler):
    """A batch sampler over a :class:`~recdistill.teacher.data.PromptDataset` in training mode: lengths
    are those of the current epoch's prompts (``dataset.token_lengths()``), the shuffle is seeded by
    ``seed`` and the dataset's epoch."""

    def __init__(self, dataset, batch_size: int, seed: int, bucket_batches: int = 50):
        self.dataset, self.batch_size, self.seed = dataset, int(batch_size), int(seed)
        self.bucket_batches = int(bucket_batches)

    def __len__(self) -> int:
        return math.ceil(len(self.dataset) / self.batch_size)

    def batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, int(self.dataset.epoch), 17])
        return bucketed_batches(self.dataset.token_lengths(), self.batch_size, rng, self.bucket_batches)

    def __iter__(self):
        return iter(self.batches())
