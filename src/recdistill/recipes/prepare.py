"""``recdistill data prepare`` and the prepared data every other recipe trains on."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig

from recdistill.data.prepare import ensure_prepared, prepare_dataset
from recdistill.data.settings import DatasetSettings
from recdistill.data.sources import cache_dir
from recdistill.recipes.config import load_config
from recdistill.recipes.dataset_settings import dataset_settings


@dataclass
class PrepareResult:
    path: Path                  # the prepared folder
    stats: dict                 # its stats.json
    settings: DatasetSettings   # what it was prepared with


def _arguments(cfg: DictConfig) -> tuple[DatasetSettings, str, Path]:
    paths = cfg.get("paths") or {}
    return dataset_settings(cfg), str(cfg.paths.data_dir), cache_dir(paths.get("cache_dir"))


def ensure_prepared_from(cfg: DictConfig) -> Path:
    """The prepared folder for ``cfg.dataset`` under ``paths.data_dir``, (re)prepared when missing or stale."""
    return ensure_prepared(*_arguments(cfg))


def prepare(cfg: DictConfig, force: bool = True) -> PrepareResult:
    """Read, split and write the dataset (``force``), or reuse the folder when it is up to date."""
    args = _arguments(cfg)
    path = Path(prepare_dataset(*args) if force else ensure_prepared(*args))
    return PrepareResult(path, json.loads((path / "stats.json").read_text()), args[0])


def print_prepared(result: PrepareResult) -> None:
    stats, lengths = result.stats, result.stats["sequence_length"]
    min_user_interactions = result.settings.min_user_interactions
    print(f"source: {stats['source']}")
    print(f"users: {stats['users']:,}  items: {stats['items']:,}  interactions: {stats['interactions']:,} "
          f"(train {stats['train_interactions']:,}, val {stats['val_interactions']:,}, "
          f"test {stats['test_interactions']:,})")
    print(f"dropped users (< {min_user_interactions} interactions): {stats['dropped_users']:,}  "
          f"sparsity: {stats['sparsity']:.4f}  sequence length min/median/mean/p90/max: "
          f"{lengths['min']}/{lengths['median']:g}/{lengths['mean']:.1f}/{lengths['p90']:g}/{lengths['max']}")
    missing = stats["filtering"].get("items_without_metadata", 0)
    if missing:
        print(f"note: {missing:,} items have no title in the source; their original id is used as the title")
    print(f"prepared: {result.path.absolute()}")


def prepare_command(args) -> int:
    """``recdistill data prepare [dataset=<format>] [dataset.path=...] [key=value ...]`` (formats:
    :func:`~recdistill.data.formats.registry.known_formats`)."""
    cfg = load_config("prepare", getattr(args, "overrides", []), getattr(args, "config", []))
    print_prepared(prepare(cfg))
    return 0
