"""Filtering, id remapping and the leave-one-out split by time.

Order of work:

0. ``duplicates``: rows equal in user, item, timestamp and rating to an earlier row are dropped
   (``drop``, the default, counted as ``removed_duplicates``), kept (``keep``) or refused (``error``).
   The same item again at another time is not a duplicate: it is a repeat and stays in the sequence.
1. ``rating_threshold``: keep interactions with rating >= threshold (needs a rating column).
2. ``min_item_interactions`` and ``min_user_interactions``: drop items, then users, with fewer
   interactions, repeated until nothing changes (a k-core); users dropped here are counted.
   ``min_user_interactions`` is at least 3, the least leave-one-out needs.
3. ``limit``: keep the first N of the remaining users in original-id order (numeric order when every id
   is a number, else string order) - deterministic, so quick runs see the same users every time. The
   item filter counted all users, so a few kept items may have fewer interactions among these N.
4. Ids: users become 1..U and items 1..N (0 is padding), both in sorted original-id order (numeric when
   every id is a number), so ML-100K item ids equal its movie ids. Only items that occur are kept.
5. Each user's interactions are sorted by timestamp with a stable sort, so ties keep file order. The last
   one is the test target, the second last the validation target, the rest is training. Repeated
   (user, item) pairs are kept: they are part of the sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from recdistill.data.duplicates import DUPLICATE_POLICIES, duplicate_rows
from recdistill.errors import DataError

MIN_USER_INTERACTIONS = 3


@dataclass
class SplitOptions:
    """Steps 0-3 above; from the dataset settings (``data/prepare.py`` ``split_options``), no defaults here."""

    min_user_interactions: int
    min_item_interactions: int
    rating_threshold: float | None
    limit: int | None
    duplicates: str   # one of DUPLICATE_POLICIES


@dataclass
class SplitResult:
    train: pd.DataFrame   # user, items, timestamps
    val: pd.DataFrame     # user, target, timestamp
    test: pd.DataFrame
    items: pd.DataFrame   # item, original_id, title, year, genres
    users: pd.DataFrame   # user, original_id
    counts: dict = field(default_factory=dict)
    lengths: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # per user, all interactions


def _original_order(uniques: np.ndarray) -> np.ndarray:
    """Permutation putting unique ids in original-id order: numeric when all are integers, else text."""
    if len(uniques) and np.issubdtype(np.asarray(uniques).dtype, np.integer):
        return np.argsort(uniques, kind="stable")
    as_numbers = pd.to_numeric(pd.Series(uniques, dtype=object), errors="coerce")
    if len(uniques) and as_numbers.notna().all() and (as_numbers == np.floor(as_numbers)).all():
        return np.argsort(as_numbers.to_numpy(np.float64), kind="stable")
    return np.argsort(np.asarray(uniques, dtype=str), kind="stable")


def _empty_error(source: str, what: str) -> DataError:
    return DataError(f"{source}: no interactions left {what}; loosen dataset.rating_threshold, "
                     "dataset.min_user_interactions or dataset.min_item_interactions, or raise dataset.limit")


def _rank(uniques: np.ndarray) -> np.ndarray:
    """Position of each unique id in original-id order."""
    rank = np.empty(len(uniques), dtype=np.int64)
    rank[_original_order(np.asarray(uniques))] = np.arange(len(uniques))
    return rank


def _new_ids(codes: np.ndarray, uniques: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ids 1..K for the kept codes in original-id order: (id per code, -1 where dropped; kept originals)."""
    kept = np.flatnonzero(np.bincount(codes[keep], minlength=len(uniques)) > 0)
    kept = kept[_original_order(np.asarray(uniques)[kept])]
    new = np.full(len(uniques), -1, dtype=np.int32)
    new[kept] = np.arange(1, len(kept) + 1)
    return new, np.asarray(uniques)[kept]


def _codes(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(int32 code per row, the distinct ids); the readers' categoricals are coded already. int32 halves
    the memory of the per-row arrays (25 M rows: 100 MB per copy, not 200 MB)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        return column.cat.codes.to_numpy().astype(np.int32, copy=False), np.asarray(column.cat.categories)
    codes, uniques = pd.factorize(column)
    return codes.astype(np.int32), np.asarray(uniques)


@dataclass
class _Rows:
    """The interactions as arrays, sorted by user (original-id order), then time, ties in file order."""

    users: np.ndarray      # codes
    items: np.ndarray      # codes
    times: np.ndarray
    rating: np.ndarray
    order: np.ndarray      # row i here is row order[i] of the file
    file_lines: np.ndarray  # line of each row of the file

    def lines(self, rows: np.ndarray) -> np.ndarray:
        """Lines of the given (sorted) rows; looked up only for error messages."""
        return self.file_lines[self.order[rows]]
    source: str


def _sorted_rows(frame: pd.DataFrame) -> tuple[_Rows, np.ndarray, np.ndarray]:
    user_codes, user_uniques = _codes(frame["user"])
    item_codes, item_uniques = _codes(frame["item"])
    times = frame["timestamp"].to_numpy(np.int64)
    order = _user_time_order(_rank(user_uniques)[user_codes], times)
    lines = frame["line"].to_numpy(np.int64) if "line" in frame else np.arange(1, len(frame) + 1)
    rows = _Rows(user_codes[order], item_codes[order], times[order], frame["rating"].to_numpy(np.float64)[order],
                 order, lines, frame.attrs.get("file", "dataset"))
    return rows, user_uniques, item_uniques


def _user_time_order(ranks: np.ndarray, times: np.ndarray) -> np.ndarray:
    """Stable order by (rank, time), so ties keep file order. One int64 key when it fits (about 3x faster
    than numpy's lexsort), lexsort otherwise."""
    if not len(times):
        return np.zeros(0, dtype=np.int64)
    low, span = int(times.min()), int(times.max()) - int(times.min()) + 1
    if (int(ranks.max()) + 1) * span < 2 ** 62:
        return np.argsort(ranks * span + (times - low), kind="stable")
    return np.lexsort((times, ranks))


def filter_interactions(rows: _Rows, options: SplitOptions, user_uniques: np.ndarray,
                        item_uniques: np.ndarray) -> tuple[np.ndarray, dict]:
    """A mask of the interactions that pass the filters (steps 0-3 of the module docstring), and counts.

    Works on integer codes with numpy counting: ids as Python strings would make a million-row dataset
    take many seconds."""
    source = rows.source
    num_users, num_items = len(user_uniques), len(item_uniques)
    counts = {"raw_interactions": len(rows.users),
              "raw_users": int((np.bincount(rows.users, minlength=num_users) > 0).sum()),
              "raw_items": int((np.bincount(rows.items, minlength=num_items) > 0).sum())}
    if options.min_user_interactions < MIN_USER_INTERACTIONS:
        raise DataError(f"dataset.min_user_interactions={options.min_user_interactions} is too small; "
                        f"leave-one-out needs at least {MIN_USER_INTERACTIONS} (train, validation, test)")
    keep = ~duplicate_rows(rows.users, rows.items, rows.times, rows.rating, rows.lines, options.duplicates, counts,
                           source)
    if options.rating_threshold is not None:
        if np.isnan(rows.rating).all():
            raise DataError(f"{source} has no rating column, so dataset.rating_threshold="
                            f"{options.rating_threshold} cannot apply; set it to null (or name dataset.rating_col)")
        keep &= rows.rating >= float(options.rating_threshold)
        counts["removed_by_rating_threshold"] = int((~keep).sum()) - counts["removed_duplicates"]
        if not keep.any():
            raise _empty_error(source, f"after rating_threshold={options.rating_threshold}")
    user_codes, item_codes = rows.users, rows.items
    users_before = int((np.bincount(user_codes[keep], minlength=num_users) > 0).sum())
    while True:
        size = int(keep.sum())
        if options.min_item_interactions > 0:
            per_item = np.bincount(item_codes[keep], minlength=num_items)
            keep &= per_item[item_codes] >= options.min_item_interactions
        per_user = np.bincount(user_codes[keep], minlength=num_users)
        keep &= per_user[user_codes] >= options.min_user_interactions
        if int(keep.sum()) in (size, 0):
            break
    users_after = int((np.bincount(user_codes[keep], minlength=num_users) > 0).sum())
    counts["dropped_users"] = users_before - users_after
    if not keep.any():
        raise _empty_error(source, f"after dropping users with fewer than {options.min_user_interactions} "
                                   f"interactions and items with fewer than {options.min_item_interactions}")
    if options.limit is not None:
        rank, _ = _new_ids(user_codes, user_uniques, keep)
        keep &= rank[user_codes] <= int(options.limit)
        counts["users_beyond_limit"] = max(0, users_after - int(options.limit))
    return keep, counts


def _distinct_pairs(users: np.ndarray, items: np.ndarray, num_items: int) -> int:
    """Distinct (user, item) pairs. A sort, not a hash table: pandas.unique took 9 s of 10 M keys here."""
    if not len(users):
        return 0
    keys = np.sort(users.astype(np.int64) * (num_items + 1) + items)
    return int(np.count_nonzero(keys[1:] != keys[:-1])) + 1


def _lists(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Consecutive runs of ``values`` of the given lengths, as an object array of arrays (built by pyarrow)."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return pa.LargeListArray.from_arrays(offsets, values).to_numpy(zero_copy_only=False)


def leave_one_out(interactions: pd.DataFrame, items: pd.DataFrame | None,
                  options: SplitOptions) -> SplitResult:
    """Filter, remap ids and split; see the module docstring for the rules. Vectorised: one sort, then
    masks and offsets, with no Python loop over users or rows."""
    if interactions.empty:
        raise DataError(f"{interactions.attrs.get('file', 'dataset')} holds no interactions")
    rows, user_uniques, item_uniques = _sorted_rows(interactions)
    keep, counts = filter_interactions(rows, options, user_uniques, item_uniques)

    user_new, user_ids = _new_ids(rows.users, user_uniques, keep)
    item_new, item_ids = _new_ids(rows.items, item_uniques, keep)
    users = user_new[rows.users[keep]]
    item_col = item_new[rows.items[keep]]
    times = rows.times[keep]
    rows = keep = None  # free the sorted copies before the outputs are built (peak memory at 25 M rows)
    if len(users) > 1 and np.any(users[1:] < users[:-1]):
        # the kept ids order differently from all ids (e.g. only the kept ones are all numbers): sort again
        order = np.argsort(users, kind="stable")
        users, item_col, times = users[order], item_col[order], times[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], len(users)]
    lengths = ends - starts

    item_col32 = item_col
    in_train = np.ones(len(users), dtype=bool)
    in_train[ends - 1] = in_train[ends - 2] = False
    user_col = users[starts].astype(np.int32)
    train = pd.DataFrame({"user": user_col, "items": _lists(item_col32[in_train], lengths - 2),
                          "timestamps": _lists(times[in_train], lengths - 2)})
    val = pd.DataFrame({"user": user_col, "target": item_col32[ends - 2], "timestamp": times[ends - 2]})
    test = pd.DataFrame({"user": user_col, "target": item_col32[ends - 1], "timestamp": times[ends - 1]})

    items_out = _item_table(item_ids, items)
    counts["items_without_metadata"] = int(items_out.attrs.pop("missing", 0))
    users_out = pd.DataFrame({"user": np.arange(1, len(user_ids) + 1, dtype=np.int32),
                              "original_id": pd.Series([str(u) for u in user_ids], dtype=object)})
    counts.update({
        "users": len(user_ids),
        "items": len(item_ids),
        "interactions": int(lengths.sum()),
        "user_item_pairs": _distinct_pairs(users, item_col, len(item_ids)),
        "train_interactions": int((lengths - 2).sum()),
        "val_interactions": len(val),
        "test_interactions": len(test),
    })
    return SplitResult(train, val, test, items_out, users_out, counts, lengths)


def _item_table(item_ids: np.ndarray, items: pd.DataFrame | None) -> pd.DataFrame:
    """items.parquet rows for ids 1..N. Items with no metadata get their original id as title."""
    base = pd.DataFrame({"item": np.arange(1, len(item_ids) + 1, dtype=np.int32),
                         "original_id": pd.Series([str(i) for i in item_ids], dtype=object)})
    if items is None or items.empty:
        meta = pd.DataFrame(columns=["original_id", "title", "year", "genres"])
    else:
        meta = items.drop_duplicates("original_id").astype({"original_id": str})
    out = base.merge(meta, on="original_id", how="left")
    missing = out["title"].isna()
    out["title"] = pd.Series([str(t) for t in out["title"].where(~missing, out["original_id"])], dtype=object)
    out["year"] = pd.array(out["year"], dtype="Int32")
    out["genres"] = [g if isinstance(g, list) else [] for g in out["genres"]]
    out.attrs["missing"] = int(missing.sum())
    return out[["item", "original_id", "title", "year", "genres"]]
