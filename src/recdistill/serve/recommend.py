"""Top-K recommendations from any scorer (:mod:`recdistill.serve.scorers`), in batches."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

import numpy as np
import torch

from recdistill.errors import RecdistillError
from recdistill.serve.scorers import pad_histories


def top_k(scores: np.ndarray, histories: Sequence[np.ndarray], k: int, exclude_seen: bool = True
          ) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per row, the ``k`` best item ids and their scores, best first; with ``exclude_seen`` the items of
    that row's history are left out (a row then has fewer than ``k`` when fewer items remain)."""
    scores = torch.from_numpy(np.array(scores, dtype=np.float32, copy=True))
    if exclude_seen and len(histories):
        # one indexed write for the whole batch (a loop over rows cost more than the model)
        lengths = [len(h) for h in histories]
        rows = torch.from_numpy(np.repeat(np.arange(len(histories)), lengths))
        cols = torch.from_numpy(np.concatenate([np.asarray(h, dtype=np.int64) for h in histories]))
        scores[rows, cols] = float("-inf")
    k = min(int(k), scores.shape[1] - 1)
    values, ids = scores.topk(k, dim=1)
    out = []
    for row_values, row_ids in zip(values.numpy(), ids.numpy()):
        keep = np.isfinite(row_values)
        out.append((row_ids[keep].astype(np.int64), row_values[keep]))
    return out


class LineProgress:
    """A progress bar that also reads well in a log file: tqdm on a terminal, otherwise one plain line
    at most every ``every_s`` seconds and one at the end (tqdm's carriage returns make a log unreadable)."""

    def __init__(self, total: int, desc: str, enabled: bool = True, every_s: float = 10.0, stream=None):
        self.stream = stream or sys.stderr
        self.total, self.desc, self.done, self.enabled = total, desc, 0, enabled
        self.every_s, self.start = every_s, time.perf_counter()
        self.last = self.start
        self.bar = None
        if enabled and getattr(self.stream, "isatty", lambda: False)():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, unit="users", file=self.stream)

    def update(self, n: int) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
            return
        now = time.perf_counter()
        if self.enabled and (now - self.last >= self.every_s or self.done >= self.total):
            self.last = now
            rate = self.done / max(now - self.start, 1e-9)
            print(f"{self.desc}: {self.done}/{self.total} users ({rate:,.0f} users/s)", file=self.stream, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def recommend_histories(scorer: Callable[[np.ndarray], np.ndarray], max_len: int,
                        histories: Sequence[np.ndarray], k: int, exclude_seen: bool = True,
                        batch_size: int = 256, progress: bool = False) -> list[tuple[np.ndarray, np.ndarray]]:
    """Top-K for every history, ``batch_size`` histories per scorer call."""
    if k < 1:
        raise RecdistillError(f"k={k} is not valid; expected an integer >= 1")
    if batch_size < 1:
        raise RecdistillError(f"batch_size={batch_size} is not valid; expected an integer >= 1")
    for i, history in enumerate(histories):
        if len(history) == 0:
            raise RecdistillError(f"history {i} is empty; a recommendation needs at least one item")
    results: list[tuple[np.ndarray, np.ndarray]] = []
    bar = LineProgress(len(histories), "recommend", enabled=progress)
    for start in range(0, len(histories), batch_size):
        chunk = histories[start:start + batch_size]
        padded, _ = pad_histories(chunk, max_len)
        scores = scorer(padded)
        bad = ~np.isfinite(scores[:, 1:]).all(axis=1)
        if bad.any():  # a damaged model is an error, never fewer or reordered items
            raise RecdistillError(f"the model produced non-finite scores (NaN or infinite) for history "
                                  f"{start + int(np.flatnonzero(bad)[0])}: it is damaged; retrain or restore it")
        results.extend(top_k(scores, chunk, k, exclude_seen))
        bar.update(len(chunk))
    bar.close()
    return results


def recommendation_rows(users: Sequence, results, catalogue) -> list[dict]:
    """One row per (user, rank): user, rank (1 = best), item, original_id, title, score."""
    rows = []
    for user, (ids, scores) in zip(users, results):
        for rank, (item, score) in enumerate(zip(ids, scores), start=1):
            rows.append({"user": user, "rank": rank, "item": int(item), "original_id": str(catalogue.original_ids[item]),
                         "title": str(catalogue.titles[item]), "score": float(score)})
    return rows
