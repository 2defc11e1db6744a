"""Integrity of the files of an export: each shard's and the embeddings' SHA-256 is recorded in the manifest
and checked when the export is resumed (a damaged file is redone) or read (a damaged file is named, with
the command that repairs it). Also the per-process progress files of a multi-process export.

A shard recorded before checksums existed (no ``sha256`` in its entry) is checked by reading it whole.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from safetensors import SafetensorError, safe_open

from recdistill.engine.rundir import atomic_write_json, sha256_file
from recdistill.teacher_outputs.format import EMBEDDINGS_KEY

SHARD_PATTERN = re.compile(r"^topk-(\d+)\.parquet$")
PART_PATTERN = re.compile(r"^\.progress-rank-(\d+)\.json$")
REPAIR = "rerun `recdistill export` with the same settings to redo it"


def shard_index(name: str) -> int:
    match = SHARD_PATTERN.match(name)
    if match is None:
        raise ValueError(f"{name} is not a shard name")
    return int(match.group(1))


def _checksum_problem(file: Path, entry: dict) -> str | None:
    """Missing, or (when the manifest records one) a SHA-256 that differs; older exports have no checksum and
    are checked by reading the file instead."""
    if not file.is_file():
        return "is missing"
    return None if sha256_file(file) == entry["sha256"] else "is damaged (its SHA-256 differs from the manifest's)"


def shard_problem(out_dir: Path, entry: dict) -> str | None:
    """Why the shard ``entry`` of the manifest cannot be used (missing, damaged, wrong row count), or None."""
    file = out_dir / entry["file"]
    if not file.is_file() or "sha256" in entry:
        return _checksum_problem(file, entry)
    try:
        rows = pq.read_table(file).num_rows
    except (pa.ArrowException, OSError) as exc:
        return f"is not a readable parquet file ({exc})"
    return None if rows == entry["rows"] else f"has {rows} rows, the manifest says {entry['rows']}"


def embeddings_problem(out_dir: Path, info: dict) -> str | None:
    """Why the embeddings file the manifest lists cannot be used, or None."""
    file = out_dir / info["file"]
    if not file.is_file() or "sha256" in info:
        return _checksum_problem(file, info)
    try:
        with safe_open(str(file), framework="pt") as fh:
            fh.get_tensor(EMBEDDINGS_KEY)
    except (SafetensorError, OSError) as exc:
        return f"is not a readable safetensors file ({exc})"
    return None


def with_checksum(out_dir: Path, entry: dict) -> dict:
    """``entry`` with the SHA-256 of its file (entries of older exports gain one when verified)."""
    return entry if "sha256" in entry else {**entry, "sha256": sha256_file(out_dir / entry["file"])}


# --- progress of a multi-process export: each rank rewrites its own file after every shard -------------

def part_path(out_dir: Path, rank: int) -> Path:
    return out_dir / f".progress-rank-{rank:05d}.json"


def write_part(out_dir: Path, rank: int, entries: list[dict]) -> None:
    atomic_write_json(part_path(out_dir, rank), {"shards": entries})


def read_parts(out_dir: Path) -> list[dict]:
    """The shard entries every rank's progress file lists (unreadable files are ignored: their shards are
    redone)."""
    entries = []
    for file in sorted(out_dir.iterdir()):
        if PART_PATTERN.match(file.name):
            try:
                entries.extend(json.loads(file.read_text())["shards"])
            except (OSError, ValueError, KeyError):
                continue
    return entries


def remove_parts(out_dir: Path) -> None:
    for file in out_dir.iterdir():
        if PART_PATTERN.match(file.name):
            file.unlink()
