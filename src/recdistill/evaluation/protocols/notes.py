"""Sentences the report writes under a protocol's table, shared by the protocols (runs are
``(label, numeric metrics)`` pairs, so this layer needs nothing of the report's)."""

from __future__ import annotations


def percent(fraction: float) -> str:
    """A share as the report writes one (report/format.py's rule, which this layer cannot import)."""
    if fraction == 0:
        return "0 %"
    value = 100 * fraction
    return f"{value:.1f} %" if abs(value) >= 1 else f"{value:.2g} %"


def users_line(runs: list[tuple[str, dict]], users_key: str) -> str:
    """How many users each split of each run was measured on (``<split>/<users_key>``)."""
    users = []
    for label, metrics in runs:
        counts = [f"{split} {int(metrics[f'{split}/{users_key}'])}" for split in ("val", "test")
                  if f"{split}/{users_key}" in metrics]
        if counts:
            users.append(f"{label}: {', '.join(counts)}")
    return "Users measured: " + ("; ".join(users) if users else "not recorded") + "."


def recorded_chance_line(runs: list[tuple[str, dict]], prefix: str) -> str:
    """What a random ranking scores, as the first run that recorded ``test/<prefix>chance_*`` measured it."""
    for label, metrics in runs:
        ndcg, hr = metrics.get(f"test/{prefix}chance_ndcg@10"), metrics.get(f"test/{prefix}chance_hr@10")
        if ndcg is not None:
            return f"Chance (a random ranking, test users of {label}): NDCG@10 {ndcg:.4f}, HR@10 {hr:.4f}."
    return "Chance level not recorded (runs written before it was)."


def default_notes(prefix: str, users_key: str):
    """The notes of a ranking protocol: users measured and the recorded chance level."""
    return lambda groups, runs: [users_line(runs, users_key), recorded_chance_line(runs, prefix)]
