"""Training batches for distillation: the student's batches plus, at every position, the teacher's top-K.

The student's windows (``data.sequences.training_windows``) are reused unchanged; running the same
window cutting over each user's *indices* ``0..n-1`` instead of items tells which training position each
window slot predicts (``position = p`` predicts ``train[u][p]``, the export's convention), and the
teacher outputs are looked up by ``(user, position)`` once, when the data is set up.

Negatives (``distill.kd.negatives_avoid``): ``history`` draws them as the student does (never the target or
an item of the user's training history); ``window``, DLLM2Rec's pool, avoids the target and the ``max_len``
items before it in the user's sequence (their 10-item state), so an older history item may be drawn.

Extra batch keys: ``teacher_items[B, L, K]`` (0 = no teacher item: the position has no teacher output
or the list is shorter) and ``teacher_confidences[B, L, K]``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader

from recdistill.data.datamodule import SequenceDataModule, TrainCollate, RowIndices
from recdistill.data.sequences import ItemSets, training_windows
from recdistill.distill.reliability import reliable
from recdistill.teacher_outputs.reader import TeacherOutputs

NEGATIVE_POOLS = ("history", "window")


def window_positions(train: list[np.ndarray], max_len: int) -> np.ndarray:
    """``[W, L]``: for each slot of each training window, the training position its target is (0 = no
    target; real positions are >= 1). Aligned row by row with ``training_windows(train, max_len)``."""
    index_sequences = [np.arange(len(seq), dtype=np.int64) for seq in train]
    return training_windows(index_sequences, max_len).targets


def teacher_rows_for_windows(teacher: TeacherOutputs, users: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """``[W, L]`` row of the teacher outputs for each slot, -1 where there is none."""
    rows = np.full(positions.shape, -1, dtype=np.int64)
    for w, user in enumerate(users):
        slots = positions[w] > 0
        rows[w, slots] = teacher.lookup(int(user), positions[w, slots])
    return rows


class PrecedingItems:
    """For a batch of training windows, ``[B, L, A]``: at each slot, the ``A`` items the user had just before
    the slot's target (0 where the sequence is shorter, and at slots without a target).

    Args:
        train: ``PreparedData.train``.
        users: ``[W]`` each window's user; positions: ``[W, L]`` from :func:`window_positions`.
        size: ``A``, the window's length.
    """

    def __init__(self, train: list[np.ndarray], users: np.ndarray, positions: np.ndarray, size: int):
        lengths = np.array([len(seq) for seq in train], dtype=np.int64)
        self.flat = torch.from_numpy(np.concatenate([np.asarray(seq, dtype=np.int64) for seq in train] or [np.zeros(0, np.int64)]))
        self.offsets = torch.from_numpy(np.concatenate([[0], np.cumsum(lengths)[:-1]]))
        self.users, self.positions = torch.from_numpy(users), torch.from_numpy(positions)
        self.back = torch.arange(-int(size), 0)   # the A indices before a position, oldest first

    def __call__(self, rows: torch.Tensor) -> torch.Tensor:
        positions = self.positions[rows]                                   # [B, L]
        index = positions.unsqueeze(-1) + self.back                       # [B, L, A] indices in the user's sequence
        valid = (index >= 0) & (positions > 0).unsqueeze(-1)
        flat_index = self.offsets[self.users[rows]].view(-1, 1, 1) + index.clamp_min(0)
        return torch.where(valid, self.flat[flat_index], torch.zeros((), dtype=torch.long))


class DistillCollate(TrainCollate):
    def __init__(self, windows, num_items, num_negatives, history_keys, teacher_rows: np.ndarray,
                 teacher: TeacherOutputs, avoided_items: PrecedingItems | None = None):
        super().__init__(windows, num_items, num_negatives, history_keys, avoided_items)
        self.teacher_rows = torch.from_numpy(teacher_rows)
        # one padding row at the end, selected by row -1
        self.items = torch.from_numpy(np.vstack([teacher.items, np.zeros((1, teacher.top_k), np.int64)]))
        self.confidences = torch.from_numpy(np.vstack([teacher.confidences, np.zeros((1, teacher.top_k), np.float32)]))

    def __call__(self, rows: list[int]) -> dict:
        batch = super().__call__(rows)
        t = self.teacher_rows[torch.as_tensor(rows, dtype=torch.long)]
        batch["teacher_items"] = self.items[t]           # row -1 is the zero padding row
        batch["teacher_confidences"] = self.confidences[t]
        return batch


class DistillDataModule(SequenceDataModule):
    """:class:`SequenceDataModule` whose training batches carry the teacher's top-K per position.

    Args:
        teacher: validated teacher outputs for the same prepared dataset.
        (the rest as :class:`SequenceDataModule`; ``num_negatives`` must cover both the usual loss and the
        ranking distillation, the module takes the first ``n`` of them for each.)
    """

    def __init__(self, data, teacher: TeacherOutputs, reliability: str = "none",
                 reliable_buckets: set[str] | None = None, negatives_avoid: str = "history", **kwargs):
        super().__init__(data, **kwargs)
        self.teacher = teacher
        self.reliability, self.reliable_buckets = reliability, reliable_buckets
        self.negatives_avoid = negatives_avoid
        self.teacher_rows: np.ndarray | None = None
        self.slot_positions: np.ndarray | None = None  # [W, L] training position of each slot's target
        self.exported_positions = 0   # training targets with a teacher row, before the reliability rule

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        if self.teacher_rows is None:
            positions = window_positions(self.data.train, self.max_len)
            assert positions.shape == self.windows.targets.shape and np.array_equal(positions > 0, self.windows.targets > 0)
            rows = teacher_rows_for_windows(self.teacher, self.windows.users, positions)
            has_row = rows >= 0
            self.exported_positions = int(has_row.sum())
            keep = reliable(self.reliability, self.teacher.items[rows[has_row]], self.windows.targets[has_row],
                            self.data.item_train_counts, self.reliable_buckets)
            kept = rows[has_row]
            kept[~keep] = -1          # no teacher row: no ranking term can reach this position
            rows[has_row] = kept
            self.teacher_rows = rows
            self.slot_positions = positions

    @property
    def coverage_count(self) -> int:
        """Training targets that keep a teacher row (after the reliability rule)."""
        self.setup()
        return int((self.teacher_rows[self.windows.targets > 0] >= 0).sum())

    @property
    def coverage(self) -> float:
        """Share of training targets that have a teacher output."""
        self.setup()
        targets = self.windows.targets > 0
        return float((self.teacher_rows[targets] >= 0).mean()) if targets.any() else 0.0

    def train_dataloader(self) -> DataLoader:
        self.setup()
        history_keys = avoided = None
        if self.num_negatives > 0 and self.negatives_avoid == "window":
            avoided = PrecedingItems(self.data.train, self.windows.users, self.slot_positions, self.max_len)
        elif self.num_negatives > 0 and not self.negatives_from_history:
            history_keys = ItemSets(self.data.train).sorted_keys(self.num_items)
        collate = DistillCollate(self.windows, self.num_items, self.num_negatives, history_keys,
                                 self.teacher_rows, self.teacher, avoided)
        return DataLoader(RowIndices(len(self.windows)), batch_size=self.batch_size, shuffle=True,
                          collate_fn=collate, **self.loader_kwargs)
