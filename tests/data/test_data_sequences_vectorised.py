"""The vectorised window and evaluation builders give exactly what the per-user definitions
(``cut_windows``, ``left_pad``) give, on random sequences of every length around the window size."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from recdistill.data.sequences import cut_windows, evaluation_set, left_pad, training_windows


def _random_train(seed: int, users: int, max_length: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [np.zeros(0, np.int64)] + [rng.integers(1, 50, rng.integers(0, max_length)) for _ in range(users)]


@pytest.mark.parametrize("max_len", [1, 2, 5, 8])
def test_training_windows_match_per_user_definition(max_len):
    train = _random_train(max_len, 60, 4 * max_len + 3)
    windows = training_windows(train, max_len)
    inputs, targets, users = [], [], []
    for user in range(1, len(train)):
        for window in cut_windows(train[user], max_len):
            inputs.append(left_pad(window[:-1], max_len))
            targets.append(left_pad(window[1:], max_len))
            users.append(user)
    assert np.array_equal(windows.inputs, np.stack(inputs)) and np.array_equal(windows.targets, np.stack(targets))
    assert windows.users.tolist() == users
    assert windows.num_targets == sum(max(len(s) - 1, 0) for s in train)   # every target exactly once


def test_no_windows_for_short_sequences():
    windows = training_windows([np.zeros(0, np.int64), np.array([3]), np.zeros(0, np.int64)], 4)
    assert windows.inputs.shape == (0, 4) and len(windows.users) == 0


@pytest.mark.parametrize("split", ["val", "test"])
def test_evaluation_set_matches_per_user_definition(split):
    train = _random_train(7, 40, 12)
    rng = np.random.default_rng(1)
    val, test = rng.integers(1, 50, len(train)), rng.integers(1, 50, len(train))
    data = SimpleNamespace(train=train, val_target=val, test_target=test, num_items=60,
                           users=lambda: np.arange(1, len(train)))
    built = evaluation_set(data, split, max_len=5, sampled_negatives=4, seed=2)
    for row, user in enumerate(range(1, len(train))):
        history = train[user] if split == "val" else np.append(train[user], val[user])
        assert built.inputs[row].tolist() == left_pad(history, 5).tolist()
        assert built.targets[row] == (val if split == "val" else test)[user]
        seen = built.seen.indices[built.seen.indptr[row]:built.seen.indptr[row + 1]]
        assert seen.tolist() == history.tolist()
        assert not set(built.negatives[row]) & (set(history.tolist()) | {int(built.targets[row])})
