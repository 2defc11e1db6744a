"""Prepare a dataset: locate the files, read them, split leave-one-out, write the prepared folder.

``ensure_prepared(dataset, data_dir, cache)`` is what training recipes call: it returns
``<data_dir>/<dataset["name"]>``, preparing it first when it is missing or when its ``stats.json``
fingerprint differs from the one the current ``dataset`` settings (and its input files) would give.
``dataset`` is the ``dataset`` config group as a plain dict; the recipe (``recipes/prepare.py``)
validates it first.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from recdistill.data import readers
from recdistill.data.prepared import write_prepared
from recdistill.data.files import Container
from recdistill.data.lock import prepare_lock
from recdistill.data.sources import Source, csv_file, locate, source_signature
from recdistill.data.new_items import (check_new_items, choose_new_items, first_seen_times, new_target_users,
                                       remove_from_training)
from recdistill.data.split import SplitOptions, SplitResult, leave_one_out
from recdistill.data.stats_checks import check_stats
from recdistill.errors import DataError

# Bump when the prepared output for the same input changes, so old folders are re-prepared.
FORMAT_VERSION = 1
# Keys that do not change the prepared content: where it is written, whether a download is tried, and the
# location of the input (its content is hashed instead).
_NOT_FINGERPRINTED = ("name", "download", "path", "items_path")


def fingerprint(dataset: dict) -> str:
    """Hash of the dataset settings (less the keys above), the input files' content and FORMAT_VERSION."""
    settings = {k: v for k, v in dataset.items() if k not in _NOT_FINGERPRINTED}
    if settings.get("duplicates") == "drop":  # the default: folders prepared before the knob existed stay valid
        settings.pop("duplicates")
    if not settings.get("new_items"):  # off: folders (and checkpoints) from before the protocol keep their hash
        for key in ("new_items", "new_items_by", "new_items_seed"):
            settings.pop(key, None)
    blob = json.dumps({"version": FORMAT_VERSION, "dataset": settings, "input": source_signature(dataset)},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def prepared_path(data_dir, dataset: dict) -> Path:
    """``<data_dir>/<name>``; with new items held out ``<name>-new<share>-<by><seed>``, so the two never share
    a folder."""
    name = str(dataset["name"])
    if dataset.get("new_items"):
        name += f"-new{float(dataset['new_items']):g}-{dataset.get('new_items_by', 'random')}{dataset.get('new_items_seed', 0)}"
    return Path(str(data_dir)).expanduser() / name


def read_source(source: Source, dataset):
    """(interactions, items or None) from the located files."""
    get = dataset.get
    if source.layout == "grouplens-100k":
        return readers.read_ml100k(source.container, get("encoding") or "latin-1")
    if source.layout == "ml-1m":
        return readers.read_ml1m(source.container, get("encoding") or "latin-1")
    if source.layout == "recbole":
        # RecBole files are UTF-8; dataset.encoding of ml-100k describes the GroupLens files.
        encoding = get("encoding") if get("format") == "recbole" else None
        return readers.read_recbole(source.container, source.stem, encoding or "utf-8", get("title_field"))
    if source.layout == "csv":
        return _read_csv(dataset)
    raise DataError(f"no reader for layout {source.layout!r}")


def _read_csv(dataset):
    get = dataset.get
    file = Path(str(get("path"))).expanduser()
    common = {"separator": str(get("separator") or ","), "encoding": get("encoding") or "utf-8"}
    genres = {"genres_col": get("genres_col"), "genres_separator": get("genres_separator") or "|"}
    interactions, items = readers.read_csv(
        Container(file.parent).read(file.name), user_col=get("user_col"), item_col=get("item_col"),
        timestamp_col=get("timestamp_col"), rating_col=get("rating_col"),
        title_col=None if get("items_path") else get("title_col"), **common, **genres)
    if get("items_path"):
        items_file = csv_file(get("items_path"), "items_path")
        items = readers.read_items_csv(Container(items_file.parent).read(items_file.name), item_col=get("item_col"),
                                       title_col=get("title_col") or "title", **common, **genres)
    return interactions, items


def _length_stats(lengths: np.ndarray) -> dict:
    return {"min": int(lengths.min()), "mean": round(float(lengths.mean()), 3), "median": float(np.median(lengths)),
            "p90": float(np.percentile(lengths, 90)), "max": int(lengths.max())}


def build_stats(split: SplitResult, source: Source, dataset, fp: str) -> dict:
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
        "dataset": dict(dataset),
        "format_version": FORMAT_VERSION,
        "fingerprint": fp,
        "prepared_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _prepare(dataset: dict, path: Path, cache: Path | None) -> Path:
    fp = fingerprint(dataset)
    source = locate(dataset, cache)
    interactions, items = read_source(source, dataset)
    split = leave_one_out(interactions, items, SplitOptions.from_config(dataset))
    new_items = hold_out_new_items(split, dataset)
    stats = build_stats(split, source, dataset, fp)
    if new_items is not None:
        stats["new_items"] = new_items
    stats = check_stats(stats)
    return write_prepared(path, split.train, split.val, split.test, split.items, split.users, stats)


def hold_out_new_items(split: SplitResult, dataset: dict) -> dict | None:
    """Apply ``dataset.new_items`` to ``split`` in place (see :mod:`recdistill.data.new_items`); returns what
    ``stats.json`` records of it, or None when the protocol is off."""
    share = check_new_items(dataset.get("new_items") or 0, str(dataset.get("new_items_by", "random")))
    if share == 0:
        return None
    by, seed = str(dataset.get("new_items_by", "random")), int(dataset.get("new_items_seed", 0))
    num_items = int(split.counts["items"])
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


def prepare_dataset(dataset: dict, data_dir, cache: Path | None = None) -> Path:
    """Read, split and write the dataset; returns the prepared folder (replaced atomically)."""
    path = prepared_path(data_dir, dataset)
    with prepare_lock(path):
        return _prepare(dataset, path, cache)


def _stale_reason(dataset: dict, path: Path) -> str | None:
    stats_file = path / "stats.json"
    if not stats_file.is_file():
        return f"{path} is not prepared yet"
    try:
        stored = json.loads(stats_file.read_text()).get("fingerprint")
    except (OSError, ValueError):
        stored = None
    current = fingerprint(dataset)
    if stored != current:
        return f"{path} was prepared with other settings or input files (fingerprint {stored} != {current})"
    return None


def ensure_prepared(dataset: dict, data_dir, cache: Path | None = None) -> Path:
    """The prepared folder for ``dataset`` under ``data_dir``, (re)preparing it when missing or out of date."""
    path = prepared_path(data_dir, dataset)
    if _stale_reason(dataset, path) is None:
        return path
    with prepare_lock(path):
        reason = _stale_reason(dataset, path)  # another process may have prepared it while we waited
        if reason is None:
            return path
        print(f"{reason}; preparing dataset={dataset['name']} ...", file=sys.stderr, flush=True)
        path = _prepare(dataset, path, cache)
        stats = json.loads((path / "stats.json").read_text())
        print(f"prepared {path}: {stats['users']:,} users, {stats['items']:,} items, {stats['interactions']:,} "
              f"interactions from {stats['source']}", file=sys.stderr, flush=True)
        return path
