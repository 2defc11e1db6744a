"""What a served recommender needs besides its weights: the item table (id, original id, title) and the
users' histories, read from a prepared dataset or from the files ``export-model`` writes beside a model.

A user's history here is everything the dataset knows about them (train items, then the validation and
the test targets): recommendations are for what comes after it, not a re-run of the evaluation.
"""

from __future__ import annotations

import difflib
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recdistill.errors import RecdistillError

ITEMS_FILE = "items.parquet"
ID_PREFIX, TITLE_PREFIX = "id:", "title:"  # say which one a token is when it could be both (a film titled "187")


def title_key(text: str) -> str:
    """How titles are compared: NFC (a title typed in decomposed form, e.g. "Mise\u0301rables", matches) and
    case ignored."""
    return unicodedata.normalize("NFC", str(text)).casefold()
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
            self._by_title[title_key(self.titles[i])] = i
            if self.years is not None and self.years[i]:
                self._by_title[title_key(f"{self.titles[i]} ({int(self.years[i])})")] = i

    # -- input ----------------------------------------------------------------------------------------
    def item_id(self, token) -> int:
        """An item id from an int id, a digit string, or a title (exact match after NFC, case ignored).
        ``id:``/``title:`` prefixes say which; a bare token that is both an id and a title is refused."""
        if isinstance(token, (int, np.integer)) and not isinstance(token, bool):
            if 1 <= int(token) <= self.num_items:
                return int(token)
            raise RecdistillError(f"unknown item id {int(token)}: item ids run from 1 to {self.num_items}")
        text = unicodedata.normalize("NFC", str(token)).strip()
        lowered = text.casefold()
        if lowered.startswith(ID_PREFIX):
            digits = text[len(ID_PREFIX):].strip()
            if not digits.isdigit():
                raise RecdistillError(f"{text!r}: after 'id:' give an item id (digits), e.g. id:187")
            return self.item_id(int(digits))
        if lowered.startswith(TITLE_PREFIX):
            return self._by_title_or_error(text[len(TITLE_PREFIX):].strip())
        if text.isdigit():
            as_title = self._by_title.get(title_key(text))
            if as_title is not None and as_title != int(text):
                raise RecdistillError(f"{text!r} is ambiguous: item id {int(text)} and the title of item {as_title}; "
                                      f"write id:{text} or title:{text}")
            return self.item_id(int(text))
        return self._by_title_or_error(text)

    def _by_title_or_error(self, text: str) -> int:
        found = self._by_title.get(title_key(text))
        if found is None:
            key = title_key(text)
            close = [str(t) for t in self.titles[1:] if key in title_key(t)][:3] or \
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
    """A history from a file: one item (id or title) per line, oldest first; blank lines ignored. UTF-8,
    with or without a byte-order mark; anything else is a clear error (guessing an encoding would turn
    titles into different ones silently)."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise RecdistillError(f"--history-file {path} is a folder; give a text file with one item per line")
    if not path.is_file():
        raise RecdistillError(f"no history file at {path}")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RecdistillError(f"cannot read --history-file {path}: {exc.strerror}") from None
    if b"\x00" in raw:
        raise RecdistillError(f"--history-file {path} is binary (it holds NUL bytes; UTF-16 is not read either); "
                              "give a UTF-8 text file with one item id or title per line")
    try:
        text = raw.decode("utf-8-sig")  # -sig: a leading byte-order mark is dropped, not read as part of a title
    except UnicodeDecodeError as exc:
        raise RecdistillError(f"--history-file {path} is not UTF-8 (byte {raw[exc.start]:#04x} at offset {exc.start}); "
                              f"convert it, e.g. `iconv -f latin1 -t utf-8 {path.name} > history-utf8.txt`") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def as_frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["user", "rank", "item", "original_id", "title", "score"])
