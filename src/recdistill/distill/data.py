"""Training batches for distillation: the student's batches plus, at every position, the teacher's top-K.

The student's windows (``data.sequences.training_windows``) are reused unchanged; running the same
window cutting over each user's *indices* ``0..n-1`` instead of items tells which training position each
window slot predicts (``position = p`` predicts ``train[u][p]``, the export's convention), and the
teacher outputs are looked up by ``(user, position)`` once, when the data is set up.

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


class DistillCollate(TrainCollate):
    def __init__(self, windows, num_items, num_negatives, history_keys, teacher_rows: np.ndarray,
                 teacher: TeacherOutputs):
        super().__init__(windows, num_items, num_negatives, history_keys)
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
                 reliable_buckets: set[str] | None = None, **kwargs):
        super().__init__(data, **kwargs)
        self.teacher = teacher
        self.reliability, self.reliable_buckets = reliability, reliable_buckets
        self.teacher_rows: np.ndarray | None = None
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
        history_keys = None
        if self.num_negatives > 0 and not self.negatives_from_history:
            history_keys = ItemSets(self.data.train).sorted_keys(self.num_items)
        collate = DistillCollate(self.windows, self.num_items, self.num_negatives, history_keys,
                                 self.teacher_rows, self.teacher)
        return DataLoader(RowIndices(len(self.windows)), batch_size=self.batch_size, shuffle=True,
                          collate_fn=collate, **self.loader_kwargs)
