"""Mean and 95 % confidence interval over repeated seeded draws (Student's t, from scipy)."""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


def mean_ci95(values) -> tuple[float, float]:
    """(mean, half-width of the 95 % t interval); the half-width is nan for a single value."""
    x = np.asarray([v for v in values if not math.isnan(v)], dtype=float)
    if len(x) == 0:
        return math.nan, math.nan
    if len(x) == 1:
        return float(x[0]), math.nan
    half = stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))
    return float(x.mean()), float(half)


def summarize(per_draw: list[dict[str, float]]) -> dict[str, float]:
    """``{name: mean, name_ci95: half-width}`` for every metric name of the draws."""
    out = {}
    for name in per_draw[0]:
        mean, half = mean_ci95([d[name] for d in per_draw])
        out[name], out[f"{name}_ci95"] = mean, half
    return out


def per_user_ranking(ranks) -> dict[str, np.ndarray]:
    """HR@1 and NDCG@10 of each user from the target's 0-based rank among the candidates."""
    ranks = np.asarray(ranks, dtype=np.float64)
    return {"hr@1": (ranks < 1).astype(np.float64), "ndcg@10": np.where(ranks < 10, 1.0 / np.log2(ranks + 2.0), 0.0)}


def summarize_over_users(ranks) -> dict[str, dict[str, float]]:
    """One candidate draw, users as the units: ``{metric: {mean, ci95_low, ci95_high, n}}`` for HR@1 and
    NDCG@10 (the same t interval as :func:`mean_ci95`)."""
    out = {}
    for name, values in per_user_ranking(ranks).items():
        mean, half = mean_ci95(values)
        out[name] = {"mean": mean, "ci95_low": mean - half, "ci95_high": mean + half, "n": int(len(values))}
    return out
