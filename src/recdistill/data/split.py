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

from recdistill.errors import DataError

MIN_USER_INTERACTIONS = 3


DUPLICATE_POLICIES = ("drop", "keep", "error")


@dataclass
class SplitOptions:
    min_user_interactions: int = MIN_USER_INTERACTIONS
    min_item_interactions: int = 0
    rating_threshold: float | None = None
    limit: int | None = None
    duplicates: str = "drop"   # one of DUPLICATE_POLICIES

    @classmethod
    def from_config(cls, dataset_cfg) -> "SplitOptions":
        get = dataset_cfg.get
        return cls(int(get("min_user_interactions", MIN_USER_INTERACTIONS)), int(get("min_item_interactions", 0)),
                   get("rating_threshold"), get("limit"), str(get("duplicates", "drop")))


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


def sorted_ids(ids) -> np.ndarray:
    """Unique ids in original-id order (see ``_original_order``)."""
    unique = pd.unique(pd.Series(ids))
    return np.asarray(unique, dtype=object)[_original_order(np.asarray(unique))]


def _empty_error(source: str, what: str) -> DataError:
    return DataError(f"{source}: no interactions left {what}; loosen dataset.rating_threshold, "
                     "dataset.min_user_interactions or dataset.min_item_interactions, or raise dataset.limit")


def _new_ids(codes: np.ndarray, uniques: np.ndarray, keep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ids 1..K for the kept codes in original-id order: (id per code, -1 where dropped; kept originals)."""
    kept = np.unique(codes[keep])
    kept = kept[_original_order(np.asarray(uniques)[kept])]
    new = np.full(len(uniques), -1, dtype=np.int64)
    new[kept] = np.arange(1, len(kept) + 1)
    return new, np.asarray(uniques)[kept]


def filter_interactions(frame: pd.DataFrame, options: SplitOptions, user_codes: np.ndarray, user_uniques,
                        item_codes: np.ndarray) -> tuple[np.ndarray, dict]:
    """A mask of the interactions that pass the filters (steps 1-3 of the module docstring), and counts.

    Works on integer codes (pandas.factorize) with numpy counting: ids as Python strings would make
    a million-row dataset take many seconds."""
    source = frame.attrs.get("file", "dataset")
    num_users, num_items = int(user_codes.max()) + 1, int(item_codes.max()) + 1
    counts = {"raw_interactions": len(frame), "raw_users": num_users, "raw_items": num_items}
    if options.min_user_interactions < MIN_USER_INTERACTIONS:
        raise DataError(f"dataset.min_user_interactions={options.min_user_interactions} is too small; "
                        f"leave-one-out needs at least {MIN_USER_INTERACTIONS} (train, validation, test)")
    keep = ~_duplicates(frame, options.duplicates, user_codes, item_codes, counts)
    if options.rating_threshold is not None:
        rating = frame["rating"].to_numpy(np.float64)
        if np.isnan(rating).all():
            raise DataError(f"{source} has no rating column, so dataset.rating_threshold="
                            f"{options.rating_threshold} cannot apply; set it to null (or name dataset.rating_col)")
        keep &= rating >= float(options.rating_threshold)
        counts["removed_by_rating_threshold"] = int((~keep).sum())
        if not keep.any():
            raise _empty_error(source, f"after rating_threshold={options.rating_threshold}")
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


def _duplicates(frame: pd.DataFrame, policy: str, user_codes: np.ndarray, item_codes: np.ndarray,
                counts: dict) -> np.ndarray:
    """Mask of the rows to drop as duplicates of an earlier row (see step 0); counts them."""
    if policy not in DUPLICATE_POLICIES:
        raise DataError(f"dataset.duplicates={policy!r} is not valid; choose one of: {', '.join(DUPLICATE_POLICIES)}")
    fields = pd.DataFrame({"user": user_codes, "item": item_codes, "timestamp": frame["timestamp"].to_numpy(),
                           "rating": frame["rating"].to_numpy(np.float64)})
    repeated = fields.duplicated(keep="first").to_numpy().copy()
    counts["raw_duplicate_rows"] = int(repeated.sum())
    if policy == "error" and repeated.any():
        row = int(np.flatnonzero(repeated)[0])
        same = fields.eq(fields.iloc[row]) | (fields.isna() & fields.iloc[row].isna())
        first = int(np.flatnonzero(same.all(axis=1).to_numpy())[0])
        lines = frame["line"].to_numpy() if "line" in frame else np.arange(1, len(frame) + 1)
        raise DataError(f"{frame.attrs.get('file', 'dataset')}, line {int(lines[row])}: repeats line "
                        f"{int(lines[first])} (same user, item, timestamp and rating); {counts['raw_duplicate_rows']} "
                        "such rows in all. Set dataset.duplicates=drop to drop them or keep to keep them")
    if policy != "drop":
        repeated[:] = False
    counts["removed_duplicates"] = int(repeated.sum())
    return repeated


def leave_one_out(interactions: pd.DataFrame, items: pd.DataFrame | None,
                  options: SplitOptions | None = None) -> SplitResult:
    """Filter, remap ids and split; see the module docstring for the rules."""
    options = options or SplitOptions()
    if interactions.empty:
        raise DataError(f"{interactions.attrs.get('file', 'dataset')} holds no interactions")
    user_codes, user_uniques = pd.factorize(interactions["user"])
    item_codes, item_uniques = pd.factorize(interactions["item"])
    keep, counts = filter_interactions(interactions, options, user_codes, user_uniques, item_codes)

    user_new, user_ids = _new_ids(user_codes, user_uniques, keep)
    item_new, item_ids = _new_ids(item_codes, item_uniques, keep)
    users = user_new[user_codes[keep]]
    item_col = item_new[item_codes[keep]]
    times = interactions["timestamp"].to_numpy(np.int64)[keep]

    # lexsort sorts by the last key first; the row position as the first key makes ties keep file order.
    order = np.lexsort((np.arange(len(users)), times, users))
    users, item_col, times = users[order], item_col[order], times[order]
    starts = np.flatnonzero(np.r_[True, users[1:] != users[:-1]])
    ends = np.r_[starts[1:], len(users)]
    lengths = ends - starts

    item_col32 = item_col.astype(np.int32)
    train_items = [item_col32[s:e - 2] for s, e in zip(starts, ends)]
    train_times = [times[s:e - 2] for s, e in zip(starts, ends)]
    user_col = users[starts].astype(np.int32)
    train = pd.DataFrame({"user": user_col, "items": train_items, "timestamps": train_times})
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
        "user_item_pairs": int(len(pd.unique(users.astype(np.int64) * (len(item_ids) + 1) + item_col))),
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
