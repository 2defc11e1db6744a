"""The Lightning DataModule for sequential recommenders (the student and distillation).

Batches are gathered from arrays built once (``recdistill.data.sequences``): a DataLoader over row
indices whose ``collate_fn`` slices the arrays, so a batch costs a few numpy gathers, not one Python
object per sequence. Under DDP, Lightning puts a DistributedSampler over those indices.

Training batch (dict of tensors): ``inputs[B, L]``, ``targets[B, L]`` (0 = no target), ``users[B]``,
and with ``num_negatives > 0`` ``negatives[B, L, n]``: uniform random items, never the target of their
position, and, unless ``negatives_from_history`` is true, never an item of the user's training history.

Evaluation batch: ``users[B]``, ``inputs[B, L]``, ``targets[B]``, ``seen_rows``/``seen_cols`` (pairs
batch row, item id of the items to exclude from ranking) and ``negatives[B, N]`` for the sampled protocol.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from recdistill.data.prepared import PreparedData
from recdistill.data.sequences import EvaluationSet, ItemSets, TrainingWindows, evaluation_set, training_windows


class RowIndices(Dataset):
    """Row indices 0..n-1; the collate function turns a list of them into a batch."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        return i


def sample_negatives(targets: torch.Tensor, users: torch.Tensor, n: int, num_items: int,
                     history_keys: torch.Tensor | None, generator: torch.Generator | None = None,
                     avoid: torch.Tensor | None = None) -> torch.Tensor:
    """``[B, L, n]`` uniform random items in 1..num_items, each differing from the target at its position
    and, when ``history_keys`` (sorted ``user * (num_items + 1) + item``) is given, not in the user's
    history; when ``avoid`` (``[B, L, A]`` item ids, 0 = none) is given, not among its position's items.
    Collisions are redrawn until none is left (a user who has seen nearly the whole catalogue
    would loop long; such a user cannot have BCE negatives outside their history anyway)."""
    shape = (*targets.shape, n)
    negatives = torch.randint(1, num_items + 1, shape, generator=generator)
    for _ in range(1000):
        bad = negatives == targets.unsqueeze(-1)
        if history_keys is not None and history_keys.numel():
            keys = users.view(-1, *([1] * (len(shape) - 1))) * (num_items + 1) + negatives
            pos = torch.searchsorted(history_keys, keys).clamp_(max=history_keys.numel() - 1)
            bad |= history_keys[pos] == keys
        if avoid is not None:
            bad |= (negatives.unsqueeze(-1) == avoid.unsqueeze(-2)).any(-1)
        count = int(bad.sum())
        if count == 0:
            return negatives
        negatives[bad] = torch.randint(1, num_items + 1, (count,), generator=generator)
    raise RuntimeError("could not draw negatives outside the users' histories; set negatives_from_history=true")


class TrainCollate:
    """Slices a batch of training windows and draws its negatives.

    ``avoided_items``: ``rows -> [B, L, A]`` items each position's negatives must also avoid (used in place
    of ``history_keys`` by distillation's ``distill.kd.negatives_avoid=window``); None = none."""

    def __init__(self, windows: TrainingWindows, num_items: int, num_negatives: int, history_keys: np.ndarray | None,
                 avoided_items=None):
        self.inputs = torch.from_numpy(windows.inputs)
        self.targets = torch.from_numpy(windows.targets)
        self.users = torch.from_numpy(windows.users)
        self.num_items = num_items
        self.num_negatives = num_negatives
        self.history_keys = torch.from_numpy(history_keys) if history_keys is not None else None
        self.avoided_items = avoided_items

    def __call__(self, rows: list[int]) -> dict:
        idx = torch.as_tensor(rows, dtype=torch.long)
        batch = {"inputs": self.inputs[idx], "targets": self.targets[idx], "users": self.users[idx]}
        if self.num_negatives > 0:
            avoid = None if self.avoided_items is None else self.avoided_items(idx)
            batch["negatives"] = sample_negatives(batch["targets"], batch["users"], self.num_negatives,
                                                  self.num_items, self.history_keys, avoid=avoid)
        return batch


class EvalCollate:
    def __init__(self, data: EvaluationSet):
        self.data = data

    def __call__(self, rows: list[int]) -> dict:
        idx = np.asarray(rows, dtype=np.int64)
        seen_rows, seen_cols = self.data.seen.rows_cols(idx)
        return {
            "users": torch.from_numpy(self.data.users[idx]),
            "inputs": torch.from_numpy(self.data.inputs[idx]),
            "targets": torch.from_numpy(self.data.targets[idx]),
            "seen_rows": torch.from_numpy(seen_rows),
            "seen_cols": torch.from_numpy(seen_cols),
            "negatives": torch.from_numpy(self.data.negatives[idx]),
        }


class SequenceDataModule(L.LightningDataModule):
    """Training windows and val/test evaluation sets of one prepared dataset.

    Args:
        data: the prepared dataset.
        max_len: the model's maximum sequence length.
        batch_size / eval_batch_size: windows per training step / users per evaluation step.
        loader_kwargs: DataLoader knobs from ``engine.dataloader_kwargs`` (``shuffle`` is set here).
        num_negatives, negatives_from_history: sampled negatives for BCE-style losses (0 = none).
        sampled_negatives, sampled_seed: the sampled evaluation protocol (0 = off).
    """

    def __init__(self, data: PreparedData, max_len: int, batch_size: int, eval_batch_size: int,
                 loader_kwargs: dict | None = None, num_negatives: int = 0, negatives_from_history: bool = False,
                 sampled_negatives: int = 0, sampled_seed: int = 0):
        super().__init__()
        self.data = data
        self.max_len = int(max_len)
        self.batch_size = int(batch_size)  # an attribute, so Lightning's batch-size finder can change it
        self.eval_batch_size = int(eval_batch_size)
        self.loader_kwargs = {k: v for k, v in (loader_kwargs or {}).items() if k != "shuffle"}
        self.num_negatives = int(num_negatives)
        self.negatives_from_history = bool(negatives_from_history)
        self.sampled_negatives = int(sampled_negatives)
        self.sampled_seed = int(sampled_seed)
        self.windows: TrainingWindows | None = None
        self.eval_sets: dict[str, EvaluationSet] = {}

    @property
    def num_items(self) -> int:
        return self.data.num_items

    def setup(self, stage: str | None = None) -> None:
        if self.windows is None:
            self.windows = training_windows(self.data.train, self.max_len)
        for split in ("val", "test"):
            if split not in self.eval_sets:
                self.eval_sets[split] = evaluation_set(self.data, split, self.max_len,
                                                       self.sampled_negatives, self.sampled_seed)

    def train_dataloader(self) -> DataLoader:
        self.setup()
        history_keys = None
        if self.num_negatives > 0 and not self.negatives_from_history:
            history_keys = ItemSets(self.data.train).sorted_keys(self.num_items)
        collate = TrainCollate(self.windows, self.num_items, self.num_negatives, history_keys)
        return DataLoader(RowIndices(len(self.windows)), batch_size=self.batch_size, shuffle=True,
                          collate_fn=collate, **self.loader_kwargs)

    def _eval_loader(self, split: str) -> DataLoader:
        self.setup()
        data = self.eval_sets[split]
        return DataLoader(RowIndices(len(data)), batch_size=self.eval_batch_size, shuffle=False,
                          collate_fn=EvalCollate(data), **self.loader_kwargs)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")
