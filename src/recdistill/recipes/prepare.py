"""``recdistill data prepare`` and the prepared data every other recipe trains on."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from recdistill.config import check_choice, check_positive
from recdistill.data.duplicates import DUPLICATE_POLICIES
from recdistill.data.new_items import check_new_items
from recdistill.data.prepare import ensure_prepared, prepare_dataset
from recdistill.data.sources import cache_dir
from recdistill.errors import ConfigError
from recdistill.recipes.config import load_config

FORMATS = ("ml-100k", "ml-1m", "recbole", "csv")


@dataclass
class PrepareResult:
    path: Path          # the prepared folder
    stats: dict         # its stats.json


def validate_dataset(cfg: DictConfig) -> None:
    """Check the dataset knobs; each error names the key and what is allowed."""
    check_choice(cfg, "dataset.format", FORMATS)
    if cfg.dataset.get("duplicates") is not None:
        check_choice(cfg, "dataset.duplicates", DUPLICATE_POLICIES)
    value = cfg.dataset.get("min_user_interactions")
    if not isinstance(value, int) or isinstance(value, bool) or value < 3:
        raise ConfigError(f"dataset.min_user_interactions={value!r} is not valid; expected a whole number >= 3 "
                          "(leave-one-out needs a train, a validation and a test item)")
    value = cfg.dataset.get("min_item_interactions")
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"dataset.min_item_interactions={value!r} is not valid; expected a whole number >= 0")
    value = cfg.dataset.get("limit")
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
        raise ConfigError(f"dataset.limit={value!r} is not valid; expected a whole number of users >= 1, or null")
    if cfg.dataset.get("rating_threshold") is not None:
        check_positive(cfg, "dataset.rating_threshold", allow_zero=True)
    check_new_items(cfg.dataset.get("new_items") or 0, str(cfg.dataset.get("new_items_by", "random")))
    if not str(cfg.dataset.get("name") or "").strip() or "/" in str(cfg.dataset.name):
        raise ConfigError(f"dataset.name={cfg.dataset.get('name')!r} is not valid; expected a folder name")


def _arguments(cfg: DictConfig) -> tuple[dict, str, Path]:
    validate_dataset(cfg)
    paths = cfg.get("paths") or {}
    return (OmegaConf.to_container(cfg.dataset, resolve=True), str(cfg.paths.data_dir),
            cache_dir(paths.get("cache_dir")))


def ensure_prepared_from(cfg: DictConfig) -> Path:
    """The prepared folder for ``cfg.dataset`` under ``paths.data_dir``, (re)prepared when missing or stale."""
    return ensure_prepared(*_arguments(cfg))


def prepare(cfg: DictConfig, force: bool = True) -> PrepareResult:
    """Read, split and write the dataset (``force``), or reuse the folder when it is up to date."""
    args = _arguments(cfg)
    path = Path(prepare_dataset(*args) if force else ensure_prepared(*args))
    return PrepareResult(path, json.loads((path / "stats.json").read_text()))


def print_prepared(result: PrepareResult, min_user_interactions) -> None:
    stats, lengths = result.stats, result.stats["sequence_length"]
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
    """``recdistill data prepare [dataset=ml-100k|ml-1m|recbole|csv] [dataset.path=...] [key=value ...]``."""
    cfg = load_config("prepare", getattr(args, "overrides", []), getattr(args, "config", []))
    print_prepared(prepare(cfg), cfg.dataset.min_user_interactions)
    return 0
