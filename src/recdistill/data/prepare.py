"""Prepare a dataset: locate the files, read them, split leave-one-out, write the prepared folder.

``ensure_prepared(settings, data_dir, cache)`` is what training recipes call: it returns
``settings.prepared_path(data_dir)``, preparing it first when it is missing or when its ``stats.json``
fingerprint differs from the one the current settings (and their input files) would give. ``settings`` is a
:class:`~recdistill.data.settings.DatasetSettings`, read and validated by
``recipes/dataset_settings.py``; the format (``data/formats/``) finds and reads the files.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from recdistill.data.formats.registry import Source, get_format
from recdistill.data.lock import prepare_lock
from recdistill.data.new_items import choose_new_items, first_seen_times, new_target_users, remove_from_training
from recdistill.data.prepared import write_prepared
from recdistill.data.settings import DatasetSettings
from recdistill.data.split import SplitOptions, SplitResult, leave_one_out
from recdistill.data.stats_checks import check_stats
from recdistill.errors import DataError

# Bump when the prepared output for the same input changes, so old folders are re-prepared.
FORMAT_VERSION = 1
# Keys that do not change the prepared content: where it is written, whether a download is tried, and the
# location of the input (its content is hashed instead).
_NOT_FINGERPRINTED = ("name", "download", "path", "items_path")


def fingerprint(settings: DatasetSettings) -> str:
    """Hash of the settings (less the keys above), the input files' content and FORMAT_VERSION."""
    hashed = {k: v for k, v in settings.record().items() if k not in _NOT_FINGERPRINTED}
    if settings.duplicates == "drop":  # the default: folders prepared before the knob existed stay valid
        hashed.pop("duplicates")
    if not settings.new_items:  # off: folders (and checkpoints) from before the protocol keep their hash
        for key in ("new_items", "new_items_by", "new_items_seed"):
            hashed.pop(key)
    blob = json.dumps({"version": FORMAT_VERSION, "dataset": hashed,
                       "input": get_format(settings.format).signature(settings)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def split_options(settings: DatasetSettings) -> SplitOptions:
    return SplitOptions(settings.min_user_interactions, settings.min_item_interactions, settings.rating_threshold,
                        settings.limit, settings.duplicates)


def _length_stats(lengths: np.ndarray) -> dict:
    return {"min": int(lengths.min()), "mean": round(float(lengths.mean()), 3), "median": float(np.median(lengths)),
            "p90": float(np.percentile(lengths, 90)), "max": int(lengths.max())}


def build_stats(split: SplitResult, source: Source, settings: DatasetSettings, fp: str) -> dict:
    counts = split.counts
    cells = counts["users"] * counts["items"]
    return {
        **{k: counts[k] for k in ("users", "items", "interactions", "user_item_pairs", "train_interactions",
                                  "val_interactions", "test_interactions", "dropped_users")},
        # distinct (user, item) pairs, not interactions: repeats must not push it below 0
        "sparsity": round(1.0 - counts["user_item_pairs"] / cells, 6) if cells else None,
        "sequence_length": _length_stats(split.lengths),          # all of a user's interactions
        "train_sequence_length": _length_stats(split.lengths - 2),  # what training sees
        "filtering": {k: v for k, v in counts.items() if k.startswith(("raw_", "removed_", "users_beyond",
                                                                       "items_without"))},
        "id_order": "users 1..U and items 1..N in sorted original-id order (numeric when ids are numbers); 0 = padding",
        "source": source.description,
        "dataset": settings.record(),
        "format_version": FORMAT_VERSION,
        "fingerprint": fp,
        "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _prepare(settings: DatasetSettings, path: Path, cache: Path | None) -> Path:
    fp = fingerprint(settings)
    source = get_format(settings.format).locate(settings, cache)
    interactions, items = source.read()
    split = leave_one_out(interactions, items, split_options(settings))
    new_items = hold_out_new_items(split, settings.new_items, settings.new_items_by, settings.new_items_seed)
    stats = build_stats(split, source, settings, fp)
    if new_items is not None:
        stats["new_items"] = new_items
    stats = check_stats(stats)
    return write_prepared(path, split.train, split.val, split.test, split.items, split.users, stats)


def hold_out_new_items(split: SplitResult, share: float, by: str, seed: int) -> dict | None:
    """Hold out ``share`` of the items (``dataset.new_items``) from ``split`` in place (see
    :mod:`recdistill.data.new_items`); returns what ``stats.json`` records of it, or None when ``share`` is 0."""
    if not share:
        return None
    share, num_items = float(share), int(split.counts["items"])
    chosen = choose_new_items(num_items, share, by, seed,  # first appearances are read only for "last"
                              lambda: first_seen_times(split.train, split.val, split.test, num_items))
    split.train, removed = remove_from_training(split.train, chosen)
    empty = int((split.train["items"].map(len) == 0).sum())
    if empty:
        raise DataError(f"dataset.new_items={share:g} leaves {empty} users with no training interaction; lower the "
                        "share or raise dataset.min_user_interactions")
    split.counts["train_interactions"] -= removed
    return {"share": share, "by": by, "seed": seed, "items": chosen.tolist(), "removed_train_interactions": removed,
            "val_users": new_target_users(split.val, chosen), "test_users": new_target_users(split.test, chosen)}


def prepare_dataset(settings: DatasetSettings, data_dir, cache: Path | None = None) -> Path:
    """Read, split and write the dataset; returns the prepared folder (replaced atomically)."""
    path = settings.prepared_path(data_dir)
    with prepare_lock(path):
        return _prepare(settings, path, cache)


def _stale_reason(settings: DatasetSettings, path: Path) -> str | None:
    stats_file = path / "stats.json"
    if not stats_file.is_file():
        return f"{path} is not prepared yet"
    try:
        stored = json.loads(stats_file.read_text()).get("fingerprint")
    except (OSError, ValueError):
        stored = None
    current = fingerprint(settings)
    if stored != current:
        return f"{path} was prepared with other settings or input files (fingerprint {stored} != {current})"
    return None


def ensure_prepared(settings: DatasetSettings, data_dir, cache: Path | None = None) -> Path:
    """The prepared folder for ``settings`` under ``data_dir``, (re)preparing it when missing or out of date."""
    path = settings.prepared_path(data_dir)
    if _stale_reason(settings, path) is None:
        return path
    with prepare_lock(path):
        reason = _stale_reason(settings, path)  # another process may have prepared it while we waited
        if reason is None:
            return path
        print(f"{reason}; preparing dataset={settings.name} ...", file=sys.stderr, flush=True)
        path = _prepare(settings, path, cache)
        stats = json.loads((path / "stats.json").read_text())
        print(f"prepared {path}: {stats['users']:,} users, {stats['items']:,} items, {stats['interactions']:,} "
              f"interactions from {stats['source']}", file=sys.stderr, flush=True)
        return path
