"""Resuming an export: whether a folder holds the same export, which recorded shards are intact (checksums),
what an interrupted run left to delete, and the final merge of every process's progress into the manifest.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from recdistill.engine.rundir import atomic_write_json
from recdistill.errors import RecdistillError
from recdistill.teacher_outputs.format import MANIFEST
from recdistill.teacher_outputs.shards import read_parts, remove_parts, shard_index, shard_problem, with_checksum

# The parts of the manifest that must match for a resume to continue an earlier export.
IDENTITY_KEYS = ("format_version", "teacher", "dataset", "top_k", "candidates", "positions", "shard_rows")


def _identity(manifest: dict) -> dict:
    return {k: manifest.get(k) for k in IDENTITY_KEYS}


def _differences(old: dict, new: dict) -> list[str]:
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in IDENTITY_KEYS if old.get(k) != new.get(k)]


def kept_shards(out_dir: Path, entries: list[dict], num_shards: int) -> list[dict]:
    """The recorded shards that are on disk and intact, one per index, in order; a damaged one is reported
    and left out (it is redone)."""
    kept: dict[int, dict] = {}
    for entry in entries:
        index = shard_index(entry["file"])
        if index in kept or index >= num_shards:
            continue
        problem = shard_problem(out_dir, entry)
        if problem is None:
            kept[index] = with_checksum(out_dir, entry)
        elif problem != "is missing":
            print(f"export: {entry['file']} {problem}; it will be redone")
    return [kept[i] for i in sorted(kept)]


def remove_stale(out_dir: Path, keep: set[str]) -> None:
    """Delete temporary files and shards not listed in the manifest (left by an interrupted run)."""
    for file in out_dir.iterdir():
        stale_tmp = file.name.startswith(".") and file.name.endswith(".tmp")
        stale_shard = file.name.startswith("topk-") and file.suffix == ".parquet" and file.name not in keep
        if stale_tmp or stale_shard:
            file.unlink()


def check_target(out_dir: Path, manifest: dict) -> dict | None:
    """The earlier manifest in ``out_dir`` if it describes the same export (None: a fresh start); refuses
    another export's folder or a foreign non-empty folder, touching nothing."""
    manifest_path = out_dir / MANIFEST
    if manifest_path.is_file():
        old = json.loads(manifest_path.read_text())
        diff = _differences(_identity(old), _identity(manifest))
        if diff:
            raise RecdistillError(
                f"{out_dir} already holds teacher outputs of a different export ({'; '.join(diff)}); "
                "nothing was changed. Choose another export.out_dir, or delete that folder to start over."
            )
        return old
    if out_dir.exists() and any(out_dir.iterdir()):
        raise RecdistillError(
            f"{out_dir} is not empty and holds no {MANIFEST}; refusing to write teacher outputs into it. "
            "Choose another export.out_dir."
        )
    return None


def finish(out_dir: Path, manifest: dict, num_shards: int) -> dict:
    """Rank 0, after every rank is done: merge the ranks' progress into the manifest and mark it complete
    (or, if a rank did not finish its shards, record what is done and say how to resume)."""
    manifest["shards"] = kept_shards(out_dir, manifest["shards"] + read_parts(out_dir), num_shards)
    missing = num_shards - len(manifest["shards"])
    if missing == 0:
        manifest["complete"] = True
        manifest["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    atomic_write_json(out_dir / MANIFEST, manifest)
    remove_parts(out_dir)
    if missing:
        raise RecdistillError(f"{out_dir}: {missing} of {num_shards} shards were not written (a process stopped "
                              "early); rerun `recdistill export` with the same settings to finish them")
    return manifest
