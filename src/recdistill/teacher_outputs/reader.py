"""Read a teacher-output folder and check it belongs to the prepared dataset it will be used with.

Every problem is a :class:`recdistill.errors.RecdistillError` saying what is wrong and what to do:
no manifest, an unfinished export, another dataset (fingerprint) or catalogue size, missing, truncated
or damaged files (each file's SHA-256 is checked against the manifest), rows outside the user's
training sequence, duplicate rows, embeddings of the wrong shape.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from safetensors import SafetensorError, safe_open

from recdistill.errors import RecdistillError
from recdistill.teacher_outputs.format import EMBEDDINGS_KEY, FORMAT_VERSION, MANIFEST
from recdistill.teacher_outputs.shards import embeddings_problem, shard_problem


@dataclass
class TeacherOutputs:
    """Teacher outputs in memory, rows sorted by (user, position).

    ``items[r]`` holds the K item ids of row ``r`` best first (0 = padding when a list is shorter),
    ``confidences[r]`` their confidences (0 for padding). ``lookup(user, positions)`` finds rows.
    """

    path: Path
    manifest: dict
    users: np.ndarray        # int64 [R]
    positions: np.ndarray    # int64 [R]
    items: np.ndarray        # int64 [R, K]
    confidences: np.ndarray  # float32 [R, K]
    user_start: np.ndarray   # int64 [U+2]: rows of user u are user_start[u]:user_start[u+1]
    embeddings: torch.Tensor | None  # [N+1, D] or None
    scores: np.ndarray | None = None  # float32 [R, K] the teacher's scores (0 for padding), when asked for

    @property
    def top_k(self) -> int:
        return int(self.items.shape[1])

    def __len__(self) -> int:
        return len(self.users)

    def lookup(self, user: int, positions: np.ndarray) -> np.ndarray:
        """Row index for each of ``user``'s ``positions``, -1 where the teacher has no output."""
        positions = np.asarray(positions, dtype=np.int64)
        lo, hi = int(self.user_start[user]), int(self.user_start[user + 1])
        if hi == lo:
            return np.full(len(positions), -1, dtype=np.int64)
        have = self.positions[lo:hi]
        idx = np.searchsorted(have, positions).clip(0, hi - lo - 1)
        return np.where(have[idx] == positions, lo + idx, -1)


def read_manifest(path: str | Path) -> dict:
    path = Path(path)
    file = path / MANIFEST
    if not file.is_file():
        hint = "the folder does not exist" if not path.exists() else f"it has no {MANIFEST}"
        raise RecdistillError(
            f"{path} is not a teacher-output folder ({hint}); run `recdistill export` first and pass its "
            "folder as distill.teacher_outputs"
        )
    try:
        return json.loads(file.read_text())
    except json.JSONDecodeError as exc:
        raise RecdistillError(f"{file} is not valid JSON ({exc}); rerun `recdistill export`") from exc


def check_manifest(manifest: dict, path: Path, fingerprint: str, num_items: int) -> None:
    """The checks that need only the manifest and the dataset's identity."""
    if manifest.get("format_version") != FORMAT_VERSION:
        raise RecdistillError(
            f"{path}: teacher-output format version {manifest.get('format_version')!r}, this recdistill reads "
            f"version {FORMAT_VERSION}; rerun `recdistill export`"
        )
    if not manifest.get("complete"):
        done = len(manifest.get("shards", []))
        rows = manifest.get("positions", {}).get("rows", "?")
        raise RecdistillError(
            f"{path}: the export is incomplete ({done} shards written, {rows} rows planned); rerun `recdistill "
            "export` with the same config to resume it"
        )
    ds = manifest.get("dataset", {})
    if str(ds.get("fingerprint")) != str(fingerprint):
        raise RecdistillError(
            f"{path} was exported from dataset '{ds.get('name')}' (fingerprint {ds.get('fingerprint')}), but this "
            f"run's prepared dataset has fingerprint {fingerprint}; export the teacher again on this dataset, or "
            "choose the dataset the export came from"
        )
    if int(ds.get("num_items", -1)) != int(num_items):
        raise RecdistillError(
            f"{path} was exported for {ds.get('num_items')} items, but the prepared dataset has {num_items}; "
            "the item ids would not match: export the teacher again on this dataset"
        )


def _damaged(path: Path, name: str, problem: str) -> RecdistillError:
    return RecdistillError(f"{path}: {name} {problem}; the export is damaged: rerun `recdistill export` with the "
                           "same settings (it checks every file and redoes the damaged ones)")


def _read_shards(path: Path, manifest: dict) -> list:
    tables = []
    for entry in manifest["shards"]:
        problem = shard_problem(path, entry)
        if problem is not None:
            raise _damaged(path, entry["file"], problem)
        try:
            table = pq.read_table(path / entry["file"])
        except (pa.ArrowException, OSError) as exc:
            raise _damaged(path, entry["file"], f"is not a readable parquet file ({exc})") from exc
        if table.num_rows != entry["rows"]:
            raise _damaged(path, entry["file"], f"has {table.num_rows} rows, the manifest says {entry['rows']}")
        tables.append(table)
    rows = sum(t.num_rows for t in tables)
    planned = manifest.get("positions", {}).get("rows", rows)
    if rows != planned:
        raise RecdistillError(f"{path}: the shards hold {rows} rows but {planned} were planned; run `recdistill export` again")
    return tables


def _pad(lists, k: int, dtype) -> np.ndarray:
    out = np.zeros((len(lists), k), dtype=dtype)
    for r, values in enumerate(lists):
        out[r, : len(values)] = values
    return out


def load_embeddings(path: Path, manifest: dict, num_items: int) -> torch.Tensor | None:
    info = manifest.get("embeddings")
    if not info:
        return None
    file = path / info["file"]
    problem = embeddings_problem(path, info)
    if problem is not None:
        raise _damaged(path, info["file"], problem)
    try:
        with safe_open(str(file), framework="pt") as fh:
            emb = fh.get_tensor(EMBEDDINGS_KEY)
    except (SafetensorError, OSError) as exc:
        raise _damaged(path, info["file"], f"is not a readable safetensors file ({exc})") from exc
    if tuple(emb.shape) != (num_items + 1, int(info["dim"])):
        raise RecdistillError(
            f"{file}: embeddings of shape {tuple(emb.shape)}, expected ({num_items + 1}, {info['dim']}); "
            "run `recdistill export` again"
        )
    return emb.float()


def load_teacher_outputs(path: str | Path, train: list[np.ndarray], fingerprint: str, num_items: int,
                         max_k: int | None = None, with_scores: bool = False) -> TeacherOutputs:
    """Load and validate a teacher-output folder against a prepared dataset.

    Args:
        train: ``PreparedData.train`` (positions are checked against each user's sequence).
        fingerprint, num_items: the prepared dataset's ``fingerprint`` and item count.
        max_k: keep only the first ``max_k`` items of each list (``None``: all exported).
        with_scores: also read the ``scores`` column (``distill.kd.confidence=exp_neg_distance`` needs it).
    """
    path = Path(path)
    manifest = read_manifest(path)
    check_manifest(manifest, path, fingerprint, num_items)
    tables = _read_shards(path, manifest)
    k = int(manifest["top_k"]) if max_k is None else min(int(max_k), int(manifest["top_k"]))
    users = np.concatenate([t.column("user").to_numpy() for t in tables]).astype(np.int64) if tables else np.zeros(0, np.int64)
    positions = np.concatenate([t.column("position").to_numpy() for t in tables]).astype(np.int64) if tables else np.zeros(0, np.int64)
    item_lists = [np.asarray(x[:k]) for t in tables for x in t.column("items").to_pylist()]
    conf_lists = [np.asarray(x[:k]) for t in tables for x in t.column("confidences").to_pylist()]
    items = _pad(item_lists, k, np.int64)
    confidences = _pad(conf_lists, k, np.float32)
    scores = None
    if with_scores:
        scores = _pad([np.asarray(x[:k]) for t in tables for x in t.column("scores").to_pylist()], k, np.float32)

    num_users = len(train) - 1
    lengths = np.array([len(s) for s in train], dtype=np.int64)
    bad_user = (users < 1) | (users > num_users)
    if bad_user.any():
        raise RecdistillError(f"{path}: user {users[bad_user][0]} is not a user of the prepared dataset (1..{num_users})")
    bad_pos = (positions < 1) | (positions >= lengths[users])
    if bad_pos.any():
        r = int(np.flatnonzero(bad_pos)[0])
        raise RecdistillError(
            f"{path}: row (user {users[r]}, position {positions[r]}) is outside that user's training sequence "
            f"(positions 1..{lengths[users[r]] - 1}); the export does not match this dataset"
        )
    if items.size and (items.max() > num_items or items.min() < 0):
        raise RecdistillError(f"{path}: item ids outside 1..{num_items}")

    order = np.lexsort((positions, users))
    users, positions, items, confidences = users[order], positions[order], items[order], confidences[order]
    scores = None if scores is None else scores[order]
    dup = (np.diff(users) == 0) & (np.diff(positions) == 0)
    if dup.any():
        r = int(np.flatnonzero(dup)[0])
        raise RecdistillError(f"{path}: row (user {users[r]}, position {positions[r]}) appears twice; run `recdistill export` again")
    user_start = np.searchsorted(users, np.arange(num_users + 2)).astype(np.int64)
    embeddings = load_embeddings(path, manifest, num_items)
    return TeacherOutputs(path, manifest, users, positions, items, confidences, user_start, embeddings, scores)
