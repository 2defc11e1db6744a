"""Exact duplicate interactions: the same user, item, timestamp and rating written twice."""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

from recdistill.errors import DataError

DUPLICATE_POLICIES = ("drop", "keep", "error")


def duplicate_rows(users: np.ndarray, items: np.ndarray, times: np.ndarray, rating: np.ndarray,
                   lines: Callable[[np.ndarray], np.ndarray], policy: str, counts: dict,
                   source: str = "dataset") -> np.ndarray:
    """Mask of the rows to drop under ``policy`` (drop / keep / error); counts ``raw_duplicate_rows`` and
    ``removed_duplicates`` into ``counts``.

    The rows must be sorted by user and time with ties in file order (as the split sorts them): a
    duplicate then sits in a run of rows of the same user and time, after its first occurrence, so only
    those runs are compared (a small share of the rows in most data). ``lines`` maps row positions to
    line numbers, for the error message only."""
    if policy not in DUPLICATE_POLICIES:
        raise DataError(f"dataset.duplicates={policy!r} is not valid; choose one of: {', '.join(DUPLICATE_POLICIES)}")
    same = (users[1:] == users[:-1]) & (times[1:] == times[:-1])
    in_run = np.flatnonzero(np.r_[False, same] | np.r_[same, False])
    fields = pd.DataFrame({"user": users[in_run], "time": times[in_run], "item": items[in_run],
                           "rating": rating[in_run]})
    repeated = np.zeros(len(users), dtype=bool)
    repeated[in_run] = fields.duplicated(keep="first").to_numpy()
    counts["raw_duplicate_rows"] = int(repeated.sum())
    if policy == "error" and repeated.any():
        candidates = np.flatnonzero(repeated)
        row = int(candidates[np.argmin(lines(candidates))])
        equal = ((users == users[row]) & (times == times[row]) & (items == items[row])
                 & ((rating == rating[row]) | (np.isnan(rating) & np.isnan(rating[row]))))
        first = int(lines(np.flatnonzero(equal)).min())
        raise DataError(f"{source}, line {int(lines(np.array([row]))[0])}: repeats line {first} (same user, item, "
                        f"timestamp and rating); {counts['raw_duplicate_rows']} such rows in all. Set "
                        "dataset.duplicates=drop to drop them or keep to keep them")
    if policy != "drop":
        repeated[:] = False
    counts["removed_duplicates"] = int(repeated.sum())
    return repeated
