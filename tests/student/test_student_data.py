"""Training windows, evaluation sets and sampled negatives."""

import numpy as np
import torch

from recdistill.data.datamodule import SequenceDataModule, sample_negatives
from recdistill.data.prepared import load_prepared
from recdistill.data.sequences import ItemSets, cut_windows, evaluation_set, left_pad, training_windows


def test_left_pad_keeps_the_newest_items():
    assert left_pad(np.array([1, 2, 3]), 5).tolist() == [0, 0, 1, 2, 3]
    assert left_pad(np.array([1, 2, 3, 4, 5, 6]), 4).tolist() == [3, 4, 5, 6]


def test_windows_use_every_training_interaction_once():
    seq = np.arange(1, 13)  # 12 items, max_len 4 -> 11 targets in windows of up to 5 items
    windows = cut_windows(seq, 4)
    assert [w.tolist() for w in windows] == [[8, 9, 10, 11, 12], [4, 5, 6, 7, 8], [1, 2, 3, 4]]
    targets = np.concatenate([w[1:] for w in windows])
    assert sorted(targets.tolist()) == list(range(2, 13))
    assert cut_windows(np.array([5]), 4) == []


def test_training_windows_align_inputs_and_targets():
    train = [np.zeros(0, np.int64), np.array([1, 2, 3]), np.arange(1, 8)]
    w = training_windows(train, 4)
    assert len(w) == 3 and w.users.tolist() == [1, 2, 2]
    assert w.inputs[0].tolist() == [0, 0, 1, 2] and w.targets[0].tolist() == [0, 0, 2, 3]
    assert w.inputs[1].tolist() == [3, 4, 5, 6] and w.targets[1].tolist() == [4, 5, 6, 7]
    assert w.inputs[2].tolist() == [0, 0, 1, 2] and w.targets[2].tolist() == [0, 0, 2, 3]
    assert w.num_targets == 2 + 6


def test_item_sets_rows_cols():
    sets = ItemSets([np.array([4, 5]), np.array([], dtype=np.int64), np.array([1, 2, 3])])
    rows, cols = sets.rows_cols(np.array([2, 0]))
    assert rows.tolist() == [0, 0, 0, 1, 1] and cols.tolist() == [1, 2, 3, 4, 5]


def test_negatives_are_never_the_target_nor_history():
    num_items = 12
    histories = [np.zeros(0, np.int64), np.arange(1, 9)]  # user 1 has seen items 1..8
    keys = torch.from_numpy(ItemSets(histories).sorted_keys(num_items))
    targets = torch.full((4, 6), 10)
    users = torch.ones(4, dtype=torch.long)
    gen = torch.Generator().manual_seed(0)
    neg = sample_negatives(targets, users, 20, num_items, keys, generator=gen)
    assert neg.shape == (4, 6, 20)
    assert set(neg.unique().tolist()) == {9, 11, 12}
    free = sample_negatives(targets, users, 50, num_items, None, generator=gen)  # history allowed
    assert 10 not in free.unique().tolist() and {1, 2, 3} <= set(free.unique().tolist())


def test_evaluation_sets(tiny_prepared):
    data = load_prepared(tiny_prepared)
    val = evaluation_set(data, "val", max_len=8, sampled_negatives=10, seed=3)
    test = evaluation_set(data, "test", max_len=8, sampled_negatives=10, seed=3)
    u = 5
    i = u - 1
    assert val.targets[i] == data.val_target[u] and test.targets[i] == data.test_target[u]
    assert test.inputs[i, -1] == data.val_target[u]  # the test history ends with the val target
    assert val.inputs[i].tolist() == left_pad(data.train[u], 8).tolist()
    history = set(data.history("test", u).tolist())
    negatives = set(test.negatives[i].tolist())
    assert len(negatives) == 10 and not negatives & (history | {int(data.test_target[u])})
    again = evaluation_set(data, "test", max_len=8, sampled_negatives=10, seed=3)
    assert np.array_equal(again.negatives, test.negatives)  # seeded per user


def test_datamodule_batches(tiny_prepared):
    data = load_prepared(tiny_prepared)
    dm = SequenceDataModule(data, max_len=8, batch_size=4, eval_batch_size=7, num_negatives=3, sampled_negatives=5)
    batch = next(iter(dm.train_dataloader()))
    assert batch["inputs"].shape == (4, 8) and batch["negatives"].shape == (4, 8, 3)
    for row in range(4):
        seen = set(data.train[int(batch["users"][row])].tolist())
        assert not set(batch["negatives"][row].flatten().tolist()) & seen
    ev = next(iter(dm.val_dataloader()))
    assert ev["inputs"].shape == (7, 8) and ev["negatives"].shape == (7, 5)
    rows, cols = ev["seen_rows"], ev["seen_cols"]
    first_user = int(ev["users"][0])
    assert sorted(cols[rows == 0].tolist()) == sorted(data.train[first_user].tolist())
