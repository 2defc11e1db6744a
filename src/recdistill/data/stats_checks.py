"""Invariants every ``stats.json`` must satisfy; a prepare that would break one stops instead."""

from __future__ import annotations

from recdistill.errors import DataError


def stats_problems(stats: dict) -> list[str]:
    """What is wrong with ``stats`` (an empty list when nothing is)."""
    problems = []
    users, items, interactions = stats["users"], stats["items"], stats["interactions"]
    pairs = stats.get("user_item_pairs", interactions)
    filtering = stats.get("filtering", {})

    def require(ok: bool, what: str) -> None:
        if not ok:
            problems.append(what)

    require(users >= 1 and items >= 1, f"users ({users}) and items ({items}) must be at least 1")
    require(stats["val_interactions"] == users and stats["test_interactions"] == users,
            "every user has exactly one validation and one test target")
    held_out = (stats.get("new_items") or {}).get("removed_train_interactions", 0)
    require(stats["train_interactions"] + held_out + 2 * users == interactions,
            "train + held-out new-item interactions + val + test = interactions")
    require(interactions >= 3 * users, "every kept user has at least 3 interactions")
    require(1 <= pairs <= min(interactions, users * items), "distinct user-item pairs within 1..min(interactions, "
                                                             "users x items)")
    sparsity = stats["sparsity"]
    require(sparsity is not None and 0.0 <= sparsity <= 1.0, f"sparsity {sparsity} in [0, 1]")
    lengths = stats["sequence_length"]
    require(3 <= lengths["min"] <= lengths["median"] <= lengths["max"] and lengths["min"] <= lengths["mean"] <=
            lengths["max"], "sequence lengths ordered min <= median, mean <= max, min >= 3")
    require(abs(lengths["mean"] * users - interactions) <= 0.001 * users + 1e-9, "mean length x users = interactions")
    raw = filtering.get("raw_interactions", interactions)
    removed = filtering.get("removed_duplicates", 0)
    require(0 <= removed <= filtering.get("raw_duplicate_rows", removed), "removed duplicates <= duplicate rows")
    require(interactions <= raw - removed, "interactions <= raw rows - removed duplicates")
    require(users <= filtering.get("raw_users", users) and items <= filtering.get("raw_items", items),
            "kept users and items <= raw users and items")
    require(stats.get("dropped_users", 0) >= 0, "dropped users >= 0")
    return problems


def check_stats(stats: dict) -> dict:
    """``stats`` itself, or a DataError naming the broken invariants (a bug, never the user's input)."""
    problems = stats_problems(stats)
    if problems:
        raise DataError("internal error, please report it: the prepared statistics break: " + "; ".join(problems))
    return stats
