"""Leave-one-out split: ties keep file order, short users dropped and counted, limit, thresholds, ids."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_files import split_options
from recdistill.data.split import leave_one_out
from recdistill.errors import DataError


def frame(rows, with_rating: bool = True) -> pd.DataFrame:
    """rows: (user, item, timestamp[, rating]) in file order."""
    out = pd.DataFrame({
        "user": [str(r[0]) for r in rows], "item": [str(r[1]) for r in rows],
        "timestamp": np.asarray([r[2] for r in rows], dtype=np.int64),
        "rating": [float(r[3]) if with_rating and len(r) > 3 else np.nan for r in rows],
        "line": np.arange(1, len(rows) + 1),
    })
    out.attrs["file"] = "test.csv"
    return out


def sequences(result) -> dict[str, list[str]]:
    """Original user id -> full sequence of original item ids (train + val + test)."""
    item_of = dict(zip(result.items["item"], result.items["original_id"]))
    user_of = dict(zip(result.users["user"], result.users["original_id"]))
    out = {}
    for (_, tr), (_, va), (_, te) in zip(result.train.iterrows(), result.val.iterrows(), result.test.iterrows()):
        assert tr["user"] == va["user"] == te["user"]
        out[user_of[tr["user"]]] = [item_of[i] for i in tr["items"]] + [item_of[va["target"]], item_of[te["target"]]]
    return out


def test_ties_keep_file_order_and_time_order():
    rows = [("a", 1, 30), ("a", 2, 10), ("a", 3, 20), ("a", 4, 20), ("a", 5, 20), ("a", 6, 40)]
    result = leave_one_out(frame(rows), None, split_options())
    assert sequences(result) == {"a": ["2", "3", "4", "5", "1", "6"]}
    assert result.train["timestamps"][0].tolist() == [10, 20, 20, 20]
    assert result.val["timestamp"].tolist() == [30] and result.test["timestamp"].tolist() == [40]
    # the same rows in another file order give the tied items in that order
    swapped = [rows[0], rows[1], rows[4], rows[3], rows[2], rows[5]]
    assert sequences(leave_one_out(frame(swapped), None, split_options()))["a"] == ["2", "5", "4", "3", "1", "6"]


def test_short_users_dropped_and_counted():
    rows = [("a", 1, 1), ("a", 2, 2), ("a", 3, 3), ("b", 1, 1), ("b", 2, 2), ("c", 3, 1)]
    result = leave_one_out(frame(rows), None, split_options())
    assert list(sequences(result)) == ["a"]
    assert result.counts["dropped_users"] == 2
    assert result.counts["users"] == 1 and result.counts["interactions"] == 3
    assert result.counts["train_interactions"] == 1
    result = leave_one_out(frame(rows * 2), None, split_options(min_user_interactions=5, duplicates="keep"))
    assert list(sequences(result)) == ["a"] and result.counts["dropped_users"] == 2


def test_min_user_interactions_below_three_rejected():
    with pytest.raises(DataError, match="at least 3"):
        leave_one_out(frame([("a", 1, 1)] * 3), None, split_options(min_user_interactions=2))


def test_limit_keeps_first_users_by_numeric_original_id():
    rows = [(u, i, t) for u in (10, 9, 100, 2) for i, t in ((1, 1), (2, 2), (3, 3))]
    result = leave_one_out(frame(rows), None, split_options(limit=2))
    assert result.users["original_id"].tolist() == ["2", "9"]       # numeric order, not "10" < "2"
    assert result.counts["users_beyond_limit"] == 2
    # deterministic: same again
    again = leave_one_out(frame(rows), None, split_options(limit=2))
    assert sequences(again) == sequences(result)


def test_rating_threshold_and_min_item_counts():
    rows = [("a", 1, 1, 5), ("a", 2, 2, 1), ("a", 3, 3, 4), ("a", 4, 4, 4), ("a", 5, 5, 5),
            ("b", 1, 1, 4), ("b", 3, 2, 5), ("b", 4, 3, 4), ("b", 2, 4, 2)]
    result = leave_one_out(frame(rows), None, split_options(rating_threshold=4))
    assert sequences(result) == {"a": ["1", "3", "4", "5"], "b": ["1", "3", "4"]}
    assert result.counts["removed_by_rating_threshold"] == 2
    result = leave_one_out(frame(rows), None, split_options(min_item_interactions=2))
    assert sequences(result) == {"a": ["1", "2", "3", "4"], "b": ["1", "3", "4", "2"]}   # item 5 seen once


def test_min_item_filter_repeats_until_stable():
    # dropping item 9 (1 interaction) leaves user c with 2 -> c dropped -> item 8 falls to 1 -> dropped too
    rows = [("a", 1, 1), ("a", 2, 2), ("a", 8, 3), ("b", 1, 1), ("b", 2, 2), ("b", 3, 3), ("a", 3, 4),
            ("c", 8, 1), ("c", 9, 2), ("c", 1, 3)]
    result = leave_one_out(frame(rows), None, split_options(min_item_interactions=2))
    assert sequences(result) == {"a": ["1", "2", "3"], "b": ["1", "2", "3"]}
    assert result.counts["dropped_users"] == 1


def test_rating_threshold_without_ratings_is_an_error():
    with pytest.raises(DataError, match="no rating column"):
        leave_one_out(frame([("a", 1, 1)] * 3, with_rating=False), None, split_options(rating_threshold=3))


def test_item_ids_remapped_in_sorted_original_order_with_metadata():
    rows = [("u2", "b", 1), ("u2", "a", 2), ("u2", "c", 3), ("u1", "c", 1), ("u1", "b", 2), ("u1", "a", 3)]
    items = pd.DataFrame({"original_id": ["a", "b", "z"], "title": ["A", "B", "Z"],
                          "year": pd.array([2000, None, 1999], dtype="Int32"), "genres": [["x"], [], ["y"]]})
    result = leave_one_out(frame(rows), items, split_options())
    assert result.items["item"].tolist() == [1, 2, 3]                   # 1..N, 0 left for padding
    assert result.items["original_id"].tolist() == ["a", "b", "c"]     # only items that occur
    assert result.items["title"].tolist() == ["A", "B", "c"]           # no metadata -> id as title
    assert result.counts["items_without_metadata"] == 1
    assert result.users["original_id"].tolist() == ["u1", "u2"] and result.users["user"].tolist() == [1, 2]
    assert result.train["items"][0].tolist() == [3] and result.val["target"][0] == 2 and result.test["target"][0] == 1
    assert result.train["items"][0].dtype == np.int32


def test_empty_after_filtering_is_an_error():
    with pytest.raises(DataError, match="test.csv: no interactions left.*fewer than 3"):
        leave_one_out(frame([("a", 1, 1), ("b", 1, 1)]), None, split_options())
    with pytest.raises(DataError, match="no interactions left after rating_threshold"):
        leave_one_out(frame([("a", 1, 1, 1)] * 3), None, split_options(rating_threshold=5))
