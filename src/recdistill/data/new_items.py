"""The new-items protocol: items a model never sees in training, as a new release or a cold item would be.

``dataset.new_items=<share>`` picks that share of the catalogue (``dataset.new_items_by``: ``random``, seeded
by ``dataset.new_items_seed``, or ``last``: the items whose first interaction is the latest) and removes
every one of their interactions from the training sequences. Validation and test targets are kept, so the
users whose target is such an item are the ones a model must rank an unseen item for; they are evaluated
over the whole catalogue like everyone else and reported in their own table (``<split>/new_*``).

On ML-100K a random 20 % (seed 0) holds out 336 items and 19,222 of the 98,114 training interactions
(19.6 %), and 178 validation and 182 test users have a new target; the latest 20 % reach only 86 / 105 (the
data spans seven months, so few films are released within it), hence ``random`` is the default.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recdistill.errors import ConfigError

STRATEGIES = ("random", "last")


def check_new_items(share, by: str) -> float:
    """The share as a float in [0, 1), or a ConfigError naming the key."""
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0.0 <= float(share) < 1.0:
        raise ConfigError(f"dataset.new_items={share!r} is not valid; expected a share of the catalogue in [0, 1), "
                          "e.g. dataset.new_items=0.2 (0 turns the protocol off)")
    if by not in STRATEGIES:
        raise ConfigError(f"dataset.new_items_by={by!r} is not valid; choose one of: {', '.join(STRATEGIES)}")
    return float(share)


def choose_new_items(num_items: int, share: float, by: str, seed: int, first_seen=None) -> np.ndarray:
    """Sorted item ids (1..N) held out. ``first_seen[i]`` (``last`` only): the first timestamp of item ``i``
    (index 0 unused), a function of no arguments that computes it, or the array itself."""
    count = int(round(share * num_items))
    if count == 0:
        return np.zeros(0, dtype=np.int32)
    if by == "random":
        chosen = np.random.default_rng(int(seed)).permutation(np.arange(1, num_items + 1))[:count]
    else:  # the latest first appearances; ties broken by the higher id, so the choice is stable
        first_seen = first_seen() if callable(first_seen) else first_seen
        ids = np.arange(1, num_items + 1)
        chosen = ids[np.lexsort((-ids, -first_seen[1:]))][:count]
    return np.sort(chosen).astype(np.int32)


def first_seen_times(train: pd.DataFrame, val: pd.DataFrame, test: pd.DataFrame, num_items: int) -> np.ndarray:
    first = np.full(num_items + 1, np.inf)
    if len(train):
        items = np.concatenate([np.asarray(x, dtype=np.int64) for x in train["items"]] or [np.zeros(0, np.int64)])
        times = np.concatenate([np.asarray(x, dtype=np.float64) for x in train["timestamps"]] or [np.zeros(0)])
        np.minimum.at(first, items, times)
    for frame in (val, test):
        np.minimum.at(first, frame["target"].to_numpy(np.int64), frame["timestamp"].to_numpy(np.float64))
    return first


def remove_from_training(train: pd.DataFrame, new_items: np.ndarray) -> tuple[pd.DataFrame, int]:
    """The training sequences without the new items, and how many interactions that removed."""
    if len(new_items) == 0:
        return train, 0
    keeps = [~np.isin(np.asarray(items), new_items) for items in train["items"]]
    out = train.copy()
    out["items"] = [np.asarray(items)[keep] for items, keep in zip(train["items"], keeps)]
    out["timestamps"] = [np.asarray(times)[keep] for times, keep in zip(train["timestamps"], keeps)]
    return out, int(sum(len(keep) - keep.sum() for keep in keeps))


def new_target_users(frame: pd.DataFrame, new_items: np.ndarray) -> int:
    return int(frame["target"].isin(new_items).sum())
