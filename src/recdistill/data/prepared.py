"""The prepared-dataset format every stage reads, and its loader.

``<paths.data_dir>/<dataset.name>/`` holds:

* ``train.parquet``: ``user`` (int32, 1..U), ``items`` (list<int32>, chronological; every interaction
  but the user's last two), ``timestamps`` (list<int64>, same length).
* ``val.parquet``:   ``user``, ``target`` (int32), ``timestamp`` (int64). Its history is the user's train items.
* ``test.parquet``:  ``user``, ``target``, ``timestamp``. Its history is the train items plus the val target.
* ``items.parquet``: ``item`` (int32, 1..N; 0 is padding), ``original_id`` (string), ``title`` (string),
  ``year`` (int32, null when unknown), ``genres`` (list<string>).
* ``users.parquet``: ``user`` (int32), ``original_id`` (string).
* ``stats.json``: counts, sparsity, sequence-length statistics, the source used, the dataset config and
  its ``fingerprint`` (a hash of that config and of the source).

Users appear in all three splits (each kept user has at least three interactions).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from recdistill.errors import DataError

FILES = ("train.parquet", "val.parquet", "test.parquet", "items.parquet", "users.parquet", "stats.json")


@dataclass
class PreparedData:
    """A prepared dataset in memory. Sequences are indexed by user id (index 0 unused)."""

    path: Path
    train: list[np.ndarray]          # train[u]: int64 array of item ids, chronological
    val_target: np.ndarray           # val_target[u]
    test_target: np.ndarray          # test_target[u]
    items: pd.DataFrame              # one row per item id 1..N, sorted by id
    stats: dict = field(default_factory=dict)

    @property
    def num_users(self) -> int:
        return len(self.train) - 1

    @property
    def num_items(self) -> int:
        return len(self.items)

    @property
    def fingerprint(self) -> str:
        return str(self.stats.get("fingerprint", ""))

    @property
    def name(self) -> str:
        return self.path.name

    def history(self, split: str, user: int) -> np.ndarray:
        """The items a model may see before predicting ``split``'s target for ``user``."""
        if split == "val":
            return self.train[user]
        if split == "test":
            return np.append(self.train[user], self.val_target[user])
        raise ValueError(f"split must be 'val' or 'test', not {split!r}")

    def target(self, split: str, user: int) -> int:
        return int((self.val_target if split == "val" else self.test_target)[user])

    @cached_property
    def titles(self) -> list[str]:
        """titles[i] is item i's title; titles[0] is the empty padding title."""
        return [""] + self.items["title"].astype(str).tolist()

    def users(self) -> np.ndarray:
        return np.arange(1, self.num_users + 1)

    @cached_property
    def item_train_counts(self) -> np.ndarray:
        """``[N + 1]`` training interactions per item (index 0 unused): the popularity buckets' measure."""
        counts = np.zeros(self.num_items + 1, dtype=np.int64)
        if self.num_users:
            np.add.at(counts, np.concatenate(self.train[1:]).astype(np.int64), 1)
        return counts

    @property
    def new_items(self) -> np.ndarray:
        """Item ids held out of training by ``dataset.new_items`` (empty when the protocol is off)."""
        return np.asarray((self.stats.get("new_items") or {}).get("items", []), dtype=np.int64)

    def meta(self) -> dict:
        """What run records and checkpoints keep about the dataset."""
        return {"name": self.name, "fingerprint": self.fingerprint, "num_users": self.num_users,
                "num_items": self.num_items, "path": str(self.path.resolve())}  # absolute: found from any folder

    def check_matches(self, what: str, fingerprint: str | None, num_items: int | None = None) -> None:
        """The one check that something trained elsewhere (``what``: a checkpoint, an adapter) belongs to
        this dataset: same fingerprint (when both are known) and same catalogue size."""
        if fingerprint and self.fingerprint and fingerprint != self.fingerprint:
            raise DataError(f"{what} was trained on dataset fingerprint {fingerprint}, but the prepared data at "
                            f"{self.path} has {self.fingerprint}; use the dataset it was trained on")
        if num_items is not None and int(num_items) != self.num_items:
            raise DataError(f"{what} has {int(num_items)} items, the prepared data at {self.path} "
                            f"{self.num_items}; they do not belong to the same dataset")


def _read(path: Path, name: str) -> pd.DataFrame:
    file = path / name
    if not file.is_file():
        raise DataError(
            f"prepared dataset at {path} has no {name}; run `recdistill data prepare` "
            "(with the same dataset=... overrides) first"
        )
    return pq.read_table(file).to_pandas()


def load_prepared(path: str | Path) -> PreparedData:
    """Load a prepared dataset folder written by ``recdistill data prepare``."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"no prepared dataset at {path}; run `recdistill data prepare` first")
    train = _read(path, "train.parquet")
    val = _read(path, "val.parquet")
    test = _read(path, "test.parquet")
    items = _read(path, "items.parquet").sort_values("item").reset_index(drop=True)
    stats_file = path / "stats.json"
    stats = json.loads(stats_file.read_text()) if stats_file.is_file() else {}
    num_users = int(max(train["user"].max(), val["user"].max(), test["user"].max()))
    sequences: list[np.ndarray] = [np.zeros(0, dtype=np.int64) for _ in range(num_users + 1)]
    for user, seq in zip(train["user"].to_numpy(), train["items"]):
        sequences[int(user)] = np.asarray(seq, dtype=np.int64)
    val_target = np.zeros(num_users + 1, dtype=np.int64)
    val_target[val["user"].to_numpy()] = val["target"].to_numpy()
    test_target = np.zeros(num_users + 1, dtype=np.int64)
    test_target[test["user"].to_numpy()] = test["target"].to_numpy()
    if len(items) and not np.array_equal(items["item"].to_numpy(), np.arange(1, len(items) + 1)):
        raise DataError(f"{path / 'items.parquet'}: item ids must be exactly 1..N")
    return PreparedData(path, sequences, val_target, test_target, items, stats)


def write_prepared(path: str | Path, train: pd.DataFrame, val: pd.DataFrame, test: pd.DataFrame,
                   items: pd.DataFrame, users: pd.DataFrame, stats: dict) -> Path:
    """Write the six files into a temporary sibling folder, then swap it in, so a reader never sees a
    half-written dataset and a failure leaves the previous one intact."""
    from recdistill.engine.rundir import atomic_folder

    path = Path(path)
    with atomic_folder(path) as tmp:
        for frame, name in ((train, "train"), (val, "val"), (test, "test"), (items, "items"), (users, "users")):
            frame.to_parquet(tmp / f"{name}.parquet", index=False)
        (tmp / "stats.json").write_text(json.dumps(stats, indent=2, default=str) + "\n")
    return path
