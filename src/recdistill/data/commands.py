"""``recdistill data prepare [dataset=ml-100k|ml-1m|recbole|csv] [dataset.path=...] [key=value ...]``."""

from __future__ import annotations

import json

from recdistill.config.compose import compose


def prepare(args) -> int:
    from recdistill.data.prepare import prepare_dataset

    cfg = compose("prepare", getattr(args, "overrides", []), getattr(args, "config", []))
    path = prepare_dataset(cfg)
    stats = json.loads((path / "stats.json").read_text())
    lengths = stats["sequence_length"]
    print(f"source: {stats['source']}")
    print(f"users: {stats['users']:,}  items: {stats['items']:,}  interactions: {stats['interactions']:,} "
          f"(train {stats['train_interactions']:,}, val {stats['val_interactions']:,}, "
          f"test {stats['test_interactions']:,})")
    print(f"dropped users (< {cfg.dataset.min_user_interactions} interactions): {stats['dropped_users']:,}  "
          f"sparsity: {stats['sparsity']:.4f}  sequence length min/median/mean/p90/max: "
          f"{lengths['min']}/{lengths['median']:g}/{lengths['mean']:.1f}/{lengths['p90']:g}/{lengths['max']}")
    missing = stats["filtering"].get("items_without_metadata", 0)
    if missing:
        print(f"note: {missing:,} items have no title in the source; their original id is used as the title")
    print(f"prepared: {path.absolute()}")
    return 0
