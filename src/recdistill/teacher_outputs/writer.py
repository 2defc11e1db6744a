"""Write a teacher's outputs: sharded top-K parquet files, ``item_embeddings.safetensors`` and a manifest.

Resumable: a shard becomes visible only when complete (written to a temporary name, then renamed) and is
recorded with its SHA-256. On restart every recorded shard (and the embeddings) is checked against its
checksum and kept, and the shards that are missing or damaged are redone, so no row is lost or written
twice. Rerunning over a complete export checks it the same way and repairs what is damaged. Restarting with
a different teacher, dataset or plan is refused before anything is touched.

Across processes (:class:`recdistill.engine.processes.Processes`, from Lightning Fabric): shard ``i`` covers plan rows
``[i*S, (i+1)*S)`` whatever the number of processes; the shards still to do are dealt round-robin to the
ranks, each rank writes its own shards and records them in its own progress file, and rank 0 alone writes
the manifest: once at the start (after checking what an earlier run left) and once at the end, after a
barrier, merging the ranks' progress. A killed multi-process export resumes with any number of processes.
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

from recdistill.engine.processes import Processes
from recdistill.engine.progress import progress as progress_report
from recdistill.engine.rundir import atomic_write_json, sha256_file
from recdistill.errors import ConfigError, RecdistillError
from recdistill.teacher_outputs.format import (
    EMBEDDINGS,
    EMBEDDINGS_KEY,
    FORMAT_VERSION,
    MANIFEST,
    SCHEMA,
    PositionPlan,
    shard_name,
    softmax_confidences,
)
from recdistill.teacher_outputs.rankers import CandidateSource, Ranker
from recdistill.teacher_outputs.resume import check_target, finish, kept_shards, remove_stale
from recdistill.teacher_outputs.shards import embeddings_problem, read_parts, remove_parts, shard_index, write_part

def _write_shard(path: Path, users, positions, items: list[np.ndarray], scores: list[np.ndarray]) -> dict:
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
    return {"file": path.name, "rows": len(users), "users": [int(users[0]), int(users[-1])],
            "sha256": sha256_file(path)}


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
    return {"file": EMBEDDINGS, "dim": int(emb.shape[1]), "sha256": sha256_file(out_dir / EMBEDDINGS)}


def _start(out_dir: Path, manifest: dict, old: dict | None, ranker: Ranker, num_items: int, num_shards: int) -> dict:
    """Rank 0, before any shard: keep what an earlier run left intact (the manifest's shards and every
    rank's progress), delete the rest, write the embeddings if needed and the manifest."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if old is not None:
        manifest["created"] = old.get("created")
        manifest["shards"] = kept_shards(out_dir, old.get("shards", []) + read_parts(out_dir), num_shards)
        emb = old.get("embeddings")
        if emb and embeddings_problem(out_dir, emb) is None:
            manifest["embeddings"] = emb if "sha256" in emb else {**emb, "sha256": sha256_file(out_dir / emb["file"])}
        elif emb:
            print(f"export: {emb['file']} {embeddings_problem(out_dir, emb)}; it will be redone")
        manifest["complete"] = bool(old.get("complete")) and len(manifest["shards"]) == num_shards and (
            manifest["embeddings"] is not None or not emb)
        if manifest["complete"]:
            manifest["finished"] = old.get("finished")
    manifest["created"] = manifest.get("created") or time.strftime("%Y-%m-%dT%H:%M:%S")
    remove_stale(out_dir, {e["file"] for e in manifest["shards"]})
    remove_parts(out_dir)
    atomic_write_json(out_dir / MANIFEST, manifest)
    if manifest["embeddings"] is None and not manifest["complete"]:
        manifest["embeddings"] = _write_embeddings(out_dir, ranker, num_items)
        atomic_write_json(out_dir / MANIFEST, manifest)
    return manifest


def _rank_rows(ranker, train, plan, candidates, lo, hi, top_k, batch_size, num_items, bar):
    items_out, scores_out = [], []
    for b in range(lo, hi, batch_size):
        bu, bp = plan.users[b:min(hi, b + batch_size)], plan.positions[b:min(hi, b + batch_size)]
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
    return items_out, scores_out


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
    processes: Processes = Processes(),
) -> dict:
    """Rank every planned (user, position) with ``ranker`` and write the teacher-output folder.

    Args:
        ranker: the teacher (:class:`recdistill.teacher_outputs.rankers.Ranker`).
        train: ``PreparedData.train`` (the history of row ``(u, p)`` is ``train[u][:p]``).
        dataset: ``{"name", "fingerprint", "num_items", "num_users"}`` of the prepared dataset.
        out_dir: the export folder; created, or resumed when it holds an export with the same identity.
        plan: the rows to write (:func:`recdistill.teacher_outputs.format.plan_positions`).
        candidates: what the teacher ranks at each row.
        top_k: how many items to keep per row.
        shard_rows: rows per parquet shard (also the unit of work redone after an interruption).
        batch_size: rows per call to ``ranker.rank`` (the inference batch size).
        extra: more manifest fields (for instance the export config), not compared on resume.
        processes: this process's share of a multi-process export (every rank calls this function with the
            same arguments); the default is a single process.

    Returns:
        The final manifest (``complete: true``), on every rank.
    """
    if int(top_k) < 1 or int(shard_rows) < 1 or int(batch_size) < 1:
        raise ConfigError(
            f"export.top_k, export.shard_rows and export.batch_size must be >= 1 (got {top_k}, {shard_rows}, {batch_size})"
        )
    if not isinstance(ranker, Ranker):
        raise TypeError(f"{type(ranker).__name__} does not implement the Ranker protocol (identity, rank, item_embeddings)")
    out_dir, manifest_path = Path(out_dir), Path(out_dir) / MANIFEST
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
    total = len(plan)
    num_shards = (total + shard_rows - 1) // shard_rows
    rank, world, main = processes.rank, processes.world_size, processes.rank == 0
    old = check_target(out_dir, manifest)  # every rank checks, so every rank stops on a refusal
    processes.barrier()
    if main:
        _start(out_dir, manifest, old, ranker, num_items, num_shards)
    processes.barrier()
    manifest = json.loads(manifest_path.read_text())
    if manifest["complete"]:
        if main:
            print(f"export: {out_dir} is already complete ({total} rows, every file intact); nothing to do")
        return manifest

    done = {shard_index(e["file"]) for e in manifest["shards"]}
    todo = [i for i in range(num_shards) if i not in done]
    mine = todo[rank::world]
    if done and main:
        print(f"export: resuming {out_dir}: {len(done)} of {num_shards} shards kept, {len(todo)} to do"
              + (f" by {world} processes" if world > 1 else ""))
    # one process: the whole plan; several: rank 0's own shards (the others print nothing)
    own_rows = [min(total, (i + 1) * shard_rows) - i * shard_rows for i in mine]
    # a bar on a terminal, a line every 30 s with rate and ETA in a log (engine/progress.py)
    bar = progress_report(total if world == 1 else sum(own_rows),
                          "export" if world == 1 else f"export (rank 0 of {world})", "rows",
                          enabled=progress and main,
                          initial=sum(e["rows"] for e in manifest["shards"]) if world == 1 else 0)
    written: list[dict] = []
    try:
        for shard in mine:
            lo, hi = shard * shard_rows, min(total, (shard + 1) * shard_rows)
            items, scores = _rank_rows(ranker, train, plan, candidates, lo, hi, top_k, batch_size, num_items, bar)
            entry = _write_shard(out_dir / shard_name(shard), plan.users[lo:hi], plan.positions[lo:hi], items, scores)
            if world == 1:  # one process: the manifest itself records progress
                manifest["shards"] = sorted(manifest["shards"] + [entry], key=lambda e: shard_index(e["file"]))
                atomic_write_json(manifest_path, manifest)
            else:
                written.append(entry)
                write_part(out_dir, rank, written)
    finally:
        bar.close()
    processes.barrier()
    if main:
        finish(out_dir, manifest, num_shards)
    processes.barrier()
    manifest = json.loads(manifest_path.read_text())
    if not manifest["complete"]:
        raise RecdistillError(f"{out_dir}: the export is incomplete; rerun `recdistill export` with the same settings")
    return manifest
