"""Sequence tensors for sequential recommenders: training windows, evaluation histories, seen items and
sampled negatives. Everything here is numpy, built once per run; batches are gathered by index.

Training follows the original SASRec: one window of up to ``max_len`` inputs predicts the next item at
every position in one pass. A history longer than ``max_len + 1`` items is cut into several windows
(from the newest end backwards, consecutive windows sharing one item), so that every training
interaction after the first is a target exactly once and none is wasted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


def left_pad(seq: np.ndarray, length: int) -> np.ndarray:
    """The last ``length`` items of ``seq``, left-padded with 0 to ``length``."""
    out = np.zeros(length, dtype=np.int64)
    tail = np.asarray(seq, dtype=np.int64)[-length:] if length > 0 else np.zeros(0, dtype=np.int64)
    if len(tail):
        out[length - len(tail):] = tail
    return out


def cut_windows(seq: np.ndarray, max_len: int) -> list[np.ndarray]:
    """Cut one chronological sequence into windows of at most ``max_len + 1`` items, newest first.

    Window ``w`` gives inputs ``w[:-1]`` and targets ``w[1:]``. Consecutive windows overlap by one item
    (the last input of an older window's successor is its first target's predecessor), so the targets
    of all windows are ``seq[1:]``, each exactly once. A sequence of fewer than two items gives none.
    """
    seq = np.asarray(seq, dtype=np.int64)
    windows = []
    end = len(seq)
    while end >= 2:
        start = max(0, end - (max_len + 1))
        windows.append(seq[start:end])
        end = start + 1
    return windows


@dataclass
class TrainingWindows:
    """``inputs[W, L]`` and ``targets[W, L]`` (left-padded, 0 = no target at that position) and the user
    each window comes from."""

    inputs: np.ndarray
    targets: np.ndarray
    users: np.ndarray

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def num_targets(self) -> int:
        return int((self.targets > 0).sum())


def _flat(seqs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(all items concatenated, per-sequence start offsets with the total at the end)."""
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=len(seqs))
    offsets = np.zeros(len(seqs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate([np.asarray(s, dtype=np.int64) for s in seqs]) if offsets[-1] else np.zeros(0, np.int64)
    return flat, offsets


def _gather(flat: np.ndarray, base: np.ndarray, first: np.ndarray, last: np.ndarray, length: int) -> np.ndarray:
    """Rows ``flat[base + first : base + last]`` (local indices, ``last - first <= length``), left-padded."""
    index = last[:, None] - length + np.arange(length)[None, :]
    valid = index >= first[:, None]
    return np.where(valid, flat[np.where(valid, base[:, None] + index, 0)] if len(flat) else 0, 0).astype(np.int64)


def training_windows(train: list[np.ndarray], max_len: int) -> TrainingWindows:
    """Windows for every user's training sequence (``train[u]``; index 0 unused), as ``cut_windows``
    and ``left_pad`` would give them user by user, computed for all users at once with index arithmetic.

    A sequence of ``n >= 2`` items gives ``(n - 2) // max_len + 1`` windows; window ``k`` (0 = newest)
    ends at ``n - k * max_len`` and starts ``max_len + 1`` items earlier (or at 0)."""
    flat, offsets = _flat(list(train[1:]))
    lengths = np.diff(offsets)
    counts = np.where(lengths >= 2, (lengths - 2) // max_len + 1, 0)
    total = int(counts.sum())
    if total == 0:
        empty = np.zeros((0, max_len), dtype=np.int64)
        return TrainingWindows(empty, empty.copy(), np.zeros(0, dtype=np.int64))
    owner = np.repeat(np.arange(len(lengths)), counts)
    k = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    end = lengths[owner] - k * max_len
    start = np.maximum(0, end - (max_len + 1))
    base = offsets[owner]
    inputs = _gather(flat, base, start, end - 1, max_len)
    targets = _gather(flat, base, start + 1, end, max_len)
    return TrainingWindows(inputs, targets, owner + 1)


class ItemSets:
    """Per-user item sets in compressed rows (``indptr``, ``indices``), for seen-item exclusion and
    membership tests done on whole batches at once."""

    def __init__(self, sets: list[np.ndarray] | None = None, *, indptr: np.ndarray | None = None,
                 indices: np.ndarray | None = None):
        if sets is not None:
            indices, indptr = _flat(sets)
        self.indptr, self.indices = np.asarray(indptr, dtype=np.int64), np.asarray(indices, dtype=np.int64)

    def rows_cols(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For the users ``rows`` (indices into the sets), pairs ``(position in rows, item)``."""
        starts, ends = self.indptr[rows], self.indptr[rows + 1]
        counts = ends - starts
        batch_rows = np.repeat(np.arange(len(rows)), counts)
        # index of each element = start of its row + offset within the row
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return batch_rows, self.indices[np.repeat(starts, counts) + offsets]

    def sorted_keys(self, num_items: int) -> np.ndarray:
        """Sorted ``row * (num_items + 1) + item`` for every member: membership by binary search."""
        rows = np.repeat(np.arange(len(self.indptr) - 1), np.diff(self.indptr))
        return np.unique(rows * (num_items + 1) + self.indices)


def sample_unseen(num_items: int, seen: np.ndarray, target: int, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct random items in 1..num_items that are neither seen nor the target (fewer if the
    catalogue runs out; the rest are 0)."""
    excluded = np.union1d(seen, [target])
    pool = np.setdiff1d(np.arange(1, num_items + 1), excluded, assume_unique=True)
    out = np.zeros(n, dtype=np.int64)
    take = min(n, len(pool))
    out[:take] = rng.choice(pool, size=take, replace=False)
    return out


@dataclass
class EvaluationSet:
    """One split's evaluation rows: per user the input history, the target, the seen items and (if the
    sampled protocol is on) the sampled negatives."""

    users: np.ndarray        # [U]
    inputs: np.ndarray       # [U, L] left-padded newest items of the history
    targets: np.ndarray      # [U]
    seen: ItemSets           # row i: every item in user i's history (not only the last L)
    negatives: np.ndarray    # [U, N] sampled candidates, or [U, 0]

    def __len__(self) -> int:
        return len(self.users)


def evaluation_set(data, split: str, max_len: int, sampled_negatives: int = 0, seed: int = 0) -> EvaluationSet:
    """Build ``split`` (``val`` or ``test``) of a :class:`recdistill.data.prepared.PreparedData`.

    The negatives of user ``u`` come from a generator seeded with ``(seed, u, split)``: the same on every
    run, machine and process, whatever the batch order.
    """
    users = data.users()
    flat, offsets = _flat([data.train[int(u)] for u in users])
    lengths = np.diff(offsets)
    targets = (data.val_target if split == "val" else data.test_target)[users].astype(np.int64)
    if split == "test":  # the history is the train items plus the validation target
        val = data.val_target[users].astype(np.int64)
        flat = np.insert(flat, offsets[1:], val)
        offsets = offsets + np.arange(len(offsets))
        lengths = lengths + 1
    inputs = _gather(flat, offsets[:-1], np.maximum(0, lengths - max_len), lengths, max_len) if len(users) \
        else np.zeros((0, max_len), np.int64)
    split_id = {"val": 1, "test": 2}[split]
    negatives = np.zeros((len(users), sampled_negatives), dtype=np.int64)
    if sampled_negatives > 0:  # one generator per user (see above), so this stays a loop over users
        for i, (u, t) in enumerate(zip(users, targets)):
            rng = np.random.default_rng([int(seed), int(u), split_id])
            negatives[i] = sample_unseen(data.num_items, flat[offsets[i]:offsets[i + 1]], int(t), sampled_negatives, rng)
    return EvaluationSet(users.astype(np.int64), inputs, targets, ItemSets(indptr=offsets, indices=flat), negatives)


def left_pad_batch(histories: list[np.ndarray], max_len: int) -> torch.Tensor:
    """The last ``max_len`` items of each history, left-padded with 0 (SASRec's input convention)."""
    out = np.zeros((len(histories), max_len), dtype=np.int64)
    for row, hist in enumerate(histories):
        tail = np.asarray(hist[-max_len:], dtype=np.int64)
        if len(tail):
            out[row, max_len - len(tail):] = tail
    return torch.from_numpy(out)
