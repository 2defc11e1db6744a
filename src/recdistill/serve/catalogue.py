"""What a served recommender needs besides its weights: the item table (id, original id, title) and the
users' histories, read from a prepared dataset or from the files ``export-model`` writes beside a model.

A user's history here is everything the dataset knows about them (train items, then the validation and
the test targets): recommendations are for what comes after it, not a re-run of the evaluation.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recdistill.errors import RecdistillError

ITEMS_FILE = "items.parquet"
USERS_FILE = "users.parquet"


@dataclass
class Catalogue:
    """Items 1..N (index i of each array is item i; index 0 is padding) and the users' histories."""

    original_ids: np.ndarray   # [N + 1] str
    titles: np.ndarray         # [N + 1] str
    histories: dict[int, np.ndarray]  # user id -> item ids, oldest first
    fingerprint: str | None = None
    years: np.ndarray | None = None  # [N + 1], 0 when unknown: "Title (1995)" then matches too

    @property
    def num_items(self) -> int:
        return len(self.titles) - 1

    def __post_init__(self):
        # the first item wins where two share a title; "Title (year)" tells them apart when the year is known
        self._by_title: dict[str, int] = {}
        for i in range(self.num_items, 0, -1):
            self._by_title[str(self.titles[i]).casefold()] = i
            if self.years is not None and self.years[i]:
                self._by_title[f"{self.titles[i]} ({int(self.years[i])})".casefold()] = i

    # -- input ----------------------------------------------------------------------------------------
    def item_id(self, token) -> int:
        """An item id from an int id, a digit string, or a title (exact match, case ignored)."""
        if isinstance(token, (int, np.integer)) and not isinstance(token, bool):
            if 1 <= int(token) <= self.num_items:
                return int(token)
            raise RecdistillError(f"unknown item id {int(token)}: item ids run from 1 to {self.num_items}")
        text = str(token).strip()
        if text.isdigit():
            return self.item_id(int(text))
        found = self._by_title.get(text.casefold())
        if found is None:
            close = [str(t) for t in self.titles[1:] if text.casefold() in str(t).casefold()][:3] or \
                difflib.get_close_matches(text, [str(t) for t in self.titles[1:]], n=3)
            hint = f"; did you mean: {'; '.join(close)}" if close else ""
            raise RecdistillError(f"unknown item {text!r}: no item has that id or title{hint}")
        return found

    def item_ids(self, tokens) -> np.ndarray:
        return np.asarray([self.item_id(t) for t in tokens], dtype=np.int64)

    def history(self, user) -> np.ndarray:
        if isinstance(user, bool) or not isinstance(user, (int, np.integer)) or int(user) not in self.histories:
            raise RecdistillError(f"unknown user {user!r}: user ids run from 1 to {len(self.histories)}")
        return self.histories[int(user)]

    def users(self) -> list[int]:
        return sorted(self.histories)

    # -- building and storing -------------------------------------------------------------------------
    @classmethod
    def from_prepared(cls, data) -> "Catalogue":
        """From a :class:`recdistill.data.prepared.PreparedData`."""
        histories = {int(u): np.append(data.history("test", int(u)), data.test_target[int(u)]).astype(np.int64)
                     for u in data.users()}
        years = data.items["year"].fillna(0).astype(int).tolist() if "year" in data.items else None
        return cls(np.asarray([""] + data.items["original_id"].astype(str).tolist(), dtype=object),
                   np.asarray(data.titles, dtype=object), histories, data.fingerprint or None,
                   None if years is None else np.asarray([0] + years, dtype=np.int64))

    def write(self, folder: Path) -> None:
        """``items.parquet`` (item, original_id, title) and ``users.parquet`` (user, history)."""
        items = pa.table({"item": np.arange(1, self.num_items + 1, dtype=np.int32),
                          "original_id": [str(x) for x in self.original_ids[1:]],
                          "title": [str(x) for x in self.titles[1:]],
                          "year": (np.zeros(self.num_items, np.int32) if self.years is None
                                   else self.years[1:].astype(np.int32))})
        users = self.users()
        histories = pa.table({"user": np.asarray(users, dtype=np.int32),
                              "history": [self.histories[u].astype(np.int32) for u in users]})
        pq.write_table(items, folder / ITEMS_FILE)
        pq.write_table(histories, folder / USERS_FILE)

    @classmethod
    def read(cls, folder: Path, fingerprint: str | None = None) -> "Catalogue":
        for name in (ITEMS_FILE, USERS_FILE):
            if not (folder / name).is_file():
                raise RecdistillError(f"{folder} has no {name}; export the model with `recdistill export-model`")
        items = pq.read_table(folder / ITEMS_FILE).to_pandas().sort_values("item")
        users = pq.read_table(folder / USERS_FILE).to_pandas()
        histories = {int(u): np.asarray(h, dtype=np.int64) for u, h in zip(users["user"], users["history"])}
        return cls(np.asarray([""] + items["original_id"].tolist(), dtype=object),
                   np.asarray([""] + items["title"].tolist(), dtype=object), histories, fingerprint,
                   np.asarray([0] + items["year"].tolist(), dtype=np.int64) if "year" in items else None)


def read_history_file(path: str | Path) -> list[str]:
    """A history from a file: one item (id or title) per line, oldest first; blank lines ignored."""
    path = Path(path)
    if not path.is_file():
        raise RecdistillError(f"no history file at {path}")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def as_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user", "rank", "item", "original_id", "title", "score"])
