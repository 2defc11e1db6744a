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
