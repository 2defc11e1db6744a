"""The teacher-output format (see docs/architecture.md, "Teacher outputs"): names, the parquet schema,
and which training positions an export covers.

``position = p`` means the teacher saw the user's first ``p`` training items and ranked candidates for
item ``p`` (0-based), so ``1 <= p <= len(train[u]) - 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from recdistill.errors import ConfigError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
EMBEDDINGS = "item_embeddings.safetensors"
EMBEDDINGS_KEY = "embeddings"

SCHEMA = pa.schema([
    ("user", pa.int32()),
    ("position", pa.int32()),
    ("items", pa.list_(pa.int32())),
    ("scores", pa.list_(pa.float32())),
    ("confidences", pa.list_(pa.float32())),
])

POSITION_MODES = ("all", "last")


def shard_name(index: int) -> str:
    return f"topk-{index:05d}.parquet"


@dataclass(frozen=True)
class PositionPlan:
    """The ordered (user, position) rows an export writes. Shard ``i`` holds rows ``[i*S, (i+1)*S)``, so
    the plan must be the same on resume; :meth:`describe` goes into the manifest and is compared."""

    users: np.ndarray      # int64 [R]
    positions: np.ndarray  # int64 [R]
    mode: str
    last_n: int
    limit: int | None

    def __len__(self) -> int:
        return len(self.users)

    def describe(self) -> dict:
        return {"mode": self.mode, "last_n": self.last_n, "limit": self.limit, "rows": len(self)}


def plan_positions(train: list[np.ndarray], mode: str = "all", last_n: int = 1, limit: int | None = None) -> PositionPlan:
    """Choose the training positions to export, ordered by user then position.

    Args:
        train: ``train[u]`` the user's training items (index 0 unused), as in ``PreparedData.train``.
        mode: ``all`` (every position ``1..len-1``) or ``last`` (the last ``last_n`` positions per user,
            the ones closest to the validation target).
        limit: keep at most this many rows (the first in plan order); ``None`` keeps all.
    """
    if mode not in POSITION_MODES:
        raise ConfigError(f"export.positions={mode!r} is not valid; choose one of: {', '.join(POSITION_MODES)}")
    if mode == "last" and int(last_n) < 1:
        raise ConfigError(f"export.last_n={last_n!r} is not valid; expected an integer >= 1")
    if limit is not None and int(limit) < 1:
        raise ConfigError(f"export.limit={limit!r} is not valid; expected an integer >= 1 or null")
    users, positions = [], []
    for user in range(1, len(train)):
        n = len(train[user])
        if n < 2:
            continue
        first = 1 if mode == "all" else max(1, n - int(last_n))
        pos = np.arange(first, n, dtype=np.int64)
        users.append(np.full(len(pos), user, dtype=np.int64))
        positions.append(pos)
    users_arr = np.concatenate(users) if users else np.zeros(0, dtype=np.int64)
    pos_arr = np.concatenate(positions) if positions else np.zeros(0, dtype=np.int64)
    if limit is not None:
        users_arr, pos_arr = users_arr[: int(limit)], pos_arr[: int(limit)]
    return PositionPlan(users_arr, pos_arr, mode, int(last_n), None if limit is None else int(limit))


def softmax_confidences(scores: np.ndarray) -> np.ndarray:
    """Row-wise softmax of the top-K scores (float64 inside for stability); rows sum to 1."""
    s = np.asarray(scores, dtype=np.float64)
    s = s - s.max(axis=-1, keepdims=True)
    e = np.exp(s)
    return (e / e.sum(axis=-1, keepdims=True)).astype(np.float32)
