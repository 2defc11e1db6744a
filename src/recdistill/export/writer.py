"""Write a teacher's outputs: sharded top-K parquet files, ``item_embeddings.safetensors`` and a manifest.

Resumable: the manifest is rewritten (atomically) after every finished shard, and a shard becomes
visible only when complete (written to a temporary name, then renamed). On restart the shards the
manifest lists are checked and kept, and work starts again at the first shard that is not listed, so a
shard that was being written when the process died is redone from its first row: no row is lost or
written twice. Restarting with a different teacher, dataset or plan is refused before anything is
touched.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from safetensors.torch import save_file

from recdistill.engine.progress import progress as progress_report
from recdistill.engine.rundir import atomic_write_json
from recdistill.errors import ConfigError, RecdistillError
from recdistill.export.format import (
    EMBEDDINGS,
    EMBEDDINGS_KEY,
    FORMAT_VERSION,
    MANIFEST,
    SCHEMA,
    PositionPlan,
    shard_name,
    softmax_confidences,
)
from recdistill.export.rankers import CandidateSource, Ranker

# The parts of the manifest that must match for a resume to continue an earlier export.
IDENTITY_KEYS = ("format_version", "teacher", "dataset", "top_k", "candidates", "positions", "shard_rows")


def _identity(manifest: dict) -> dict:
    return {k: manifest.get(k) for k in IDENTITY_KEYS}


def _differences(old: dict, new: dict) -> list[str]:
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in IDENTITY_KEYS if old.get(k) != new.get(k)]


def _kept_shards(out_dir: Path, manifest: dict) -> list[dict]:
    """The manifest's shards that are really on disk with their row count, in order; stops at the first
    one that is not (everything after it is redone)."""
    kept = []
    for entry in manifest.get("shards", []):
        file = out_dir / entry["file"]
        if not file.is_file() or pq.ParquetFile(file).metadata.num_rows != entry["rows"]:
            break
        kept.append(entry)
    return kept


def _remove_stale(out_dir: Path, keep: set[str]) -> None:
    """Delete temporary files and shards not listed in the manifest (left by an interrupted run)."""
    for file in out_dir.iterdir():
        stale_tmp = file.name.startswith(".") and file.name.endswith(".tmp")
        stale_shard = file.name.startswith("topk-") and file.suffix == ".parquet" and file.name not in keep
        if stale_tmp or stale_shard:
            file.unlink()


def _write_shard(path: Path, users, positions, items: list[np.ndarray], scores: list[np.ndarray]) -> None:
    confidences = [softmax_confidences(s) for s in scores]
    table = pa.table(
        {
            "user": pa.array(np.asarray(users, dtype=np.int32)),
            "position": pa.array(np.asarray(positions, dtype=np.int32)),
            "items": pa.array([np.asarray(i, dtype=np.int32) for i in items], type=pa.list_(pa.int32())),
            "scores": pa.array([np.asarray(s, dtype=np.float32) for s in scores], type=pa.list_(pa.float32())),
            "confidences": pa.array(confidences, type=pa.list_(pa.float32())),
        },
        schema=SCHEMA,
    )
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _write_embeddings(out_dir: Path, ranker: Ranker, num_items: int) -> dict | None:
    emb = ranker.item_embeddings()
    if emb is None:
        return None
    emb = torch.as_tensor(emb).detach().float().cpu().contiguous()
    if emb.dim() != 2 or emb.shape[0] != num_items + 1:
        raise RecdistillError(
            f"the teacher's item embeddings have shape {tuple(emb.shape)}, expected [{num_items + 1}, dim] "
            "(one row per item id 0..N, row 0 for padding)"
        )
    tmp = out_dir / f".{EMBEDDINGS}.tmp"
    save_file({EMBEDDINGS_KEY: emb}, str(tmp))
    os.replace(tmp, out_dir / EMBEDDINGS)
    return {"file": EMBEDDINGS, "dim": int(emb.shape[1])}


def export_teacher_outputs(
    ranker: Ranker,
    train: list[np.ndarray],
    dataset: dict,
    out_dir: str | os.PathLike,
    plan: PositionPlan,
    candidates: CandidateSource,
    top_k: int = 20,
    shard_rows: int = 10_000,
    batch_size: int = 256,
    progress: bool = True,
    extra: dict | None = None,
) -> dict:
    """Rank every planned (user, position) with ``ranker`` and write the teacher-output folder.

    Args:
        ranker: the teacher (:class:`recdistill.export.rankers.Ranker`).
        train: ``PreparedData.train`` (the history of row ``(u, p)`` is ``train[u][:p]``).
        dataset: ``{"name", "fingerprint", "num_items", "num_users"}`` of the prepared dataset.
        out_dir: the export folder; created, or resumed when it holds an export with the same identity.
        plan: the rows to write (:func:`recdistill.export.format.plan_positions`).
        candidates: what the teacher ranks at each row.
        top_k: how many items to keep per row.
        shard_rows: rows per parquet shard (also the unit of work redone after an interruption).
        batch_size: rows per call to ``ranker.rank`` (the inference batch size).
        extra: more manifest fields (for instance the export config), not compared on resume.

    Returns:
        The final manifest (``complete: true``).
    """
    if int(top_k) < 1 or int(shard_rows) < 1 or int(batch_size) < 1:
        raise ConfigError(
            f"export.top_k, export.shard_rows and export.batch_size must be >= 1 (got {top_k}, {shard_rows}, {batch_size})"
        )
    if not isinstance(ranker, Ranker):
        raise TypeError(f"{type(ranker).__name__} does not implement the Ranker protocol (identity, rank, item_embeddings)")
    out_dir = Path(out_dir)
    num_items = int(dataset["num_items"])
    shard_rows, batch_size, top_k = int(shard_rows), int(batch_size), int(top_k)
    manifest = {
        "format_version": FORMAT_VERSION,
        "teacher": ranker.identity(),
        "dataset": {k: dataset[k] for k in ("name", "fingerprint", "num_items", "num_users")},
        "top_k": top_k,
        "candidates": candidates.describe(),
        "positions": plan.describe(),
        "shard_rows": shard_rows,
        "shards": [],
        "complete": False,
        "embeddings": None,
        **(extra or {}),
    }

    manifest_path = out_dir / MANIFEST
    if manifest_path.is_file():
        old = json.loads(manifest_path.read_text())
        diff = _differences(_identity(old), _identity(manifest))
        if diff:
            raise RecdistillError(
                f"{out_dir} already holds teacher outputs of a different export ({'; '.join(diff)}); "
                "nothing was changed. Choose another export.out_dir, or delete that folder to start over."
            )
        if old.get("complete"):
            print(f"export: {out_dir} is already complete ({old['positions']['rows']} rows); nothing to do")
            return old
        manifest["shards"] = _kept_shards(out_dir, old)
        manifest["embeddings"] = old.get("embeddings") if (out_dir / EMBEDDINGS).is_file() else None
        manifest["created"] = old.get("created")
    elif out_dir.exists() and any(out_dir.iterdir()):
        raise RecdistillError(
            f"{out_dir} is not empty and holds no {MANIFEST}; refusing to write teacher outputs into it. "
            "Choose another export.out_dir."
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest.setdefault("created", None)
    manifest["created"] = manifest["created"] or time.strftime("%Y-%m-%dT%H:%M:%S")
    _remove_stale(out_dir, {e["file"] for e in manifest["shards"]})
    atomic_write_json(manifest_path, manifest)

    if manifest["embeddings"] is None:
        manifest["embeddings"] = _write_embeddings(out_dir, ranker, num_items)
        atomic_write_json(manifest_path, manifest)

    total = len(plan)
    num_shards = (total + shard_rows - 1) // shard_rows
    start_shard = len(manifest["shards"])
    done_rows = sum(e["rows"] for e in manifest["shards"])
    if start_shard:
        print(f"export: resuming {out_dir}: {start_shard} of {num_shards} shards kept ({done_rows} rows)")
    # a bar on a terminal, a line every 30 s with rate and ETA in a log (engine/progress.py)
    bar = progress_report(total, "export", "rows", enabled=progress, initial=done_rows)
    try:
        for shard in range(start_shard, num_shards):
            lo, hi = shard * shard_rows, min(total, (shard + 1) * shard_rows)
            users, positions = plan.users[lo:hi], plan.positions[lo:hi]
            items_out, scores_out = [], []
            for b in range(0, hi - lo, batch_size):
                bu, bp = users[b:b + batch_size], positions[b:b + batch_size]
                histories = [train[int(u)][: int(p)] for u, p in zip(bu, bp)]
                items, scores = ranker.rank(histories, candidates(histories, bu, bp), top_k)
                items, scores = np.asarray(items), np.asarray(scores)
                if items.shape != scores.shape or items.shape[0] != len(bu) or items.shape[1] > top_k:
                    raise RecdistillError(
                        f"the teacher returned items {items.shape} and scores {scores.shape} for {len(bu)} rows "
                        f"and top_k={top_k}; expected two arrays of shape [{len(bu)}, <= {top_k}]"
                    )
                if items.size and (items.min() < 1 or items.max() > num_items):
                    raise RecdistillError(f"the teacher returned item ids outside 1..{num_items}")
                items_out.extend(items)
                scores_out.extend(scores)
                bar.update(len(bu))
            name = shard_name(shard)
            _write_shard(out_dir / name, users, positions, items_out, scores_out)
            manifest["shards"].append({"file": name, "rows": int(hi - lo), "users": [int(users[0]), int(users[-1])]})
            atomic_write_json(manifest_path, manifest)
    finally:
        bar.close()
    manifest["complete"] = True
    manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    atomic_write_json(manifest_path, manifest)
    return manifest
