"""Seeds, intervals and paired comparisons: the one place that turns per-seed numbers into a claim.

* ``summarize(values)``: mean, sample standard deviation and a t-based 95 % interval of the mean
  (mean ± t(0.975, n-1) · sd / √n). With one value no spread can be estimated, so the interval is ``None``
  and ``Summary.text()`` says so instead of printing ``± 0``.
* ``compare_paired(baseline, other)``: two arms run on the same seeds (the distilled student against the
  student alone). Seeds pair the runs (same data order, same initialisation of the shared parts), so the
  per-seed differences are what varies; we give their mean, sd and interval, and two tests of "mean
  difference = 0":
  - the **paired t-test** (``scipy.stats.ttest_rel``, exact two-sided p from the t distribution). It is the
    primary test: with 3-8 seeds it is the only common test that can reach small p at all, at the price of
    assuming roughly normal differences;
  - the **exact sign-flip permutation test** (``scipy.stats.permutation_test``, all 2^n sign patterns), which
    assumes only that the differences are symmetric under the null. Its smallest possible p is 2 / 2^n
    (0.25 with 3 seeds), so with few seeds it cannot be significant; we report it so a reader sees how much
    the t-test's normality assumption carries.

scipy does the distributions and tests (well-kept, exact); nothing here is written by hand but the
bookkeeping. Components take plain numbers: no config, no run folders.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from recdistill.errors import RecdistillError

CONFIDENCE = 0.95
ONE_SEED_NOTE = "one seed: no interval can be given"


@dataclass(frozen=True)
class Summary:
    """Mean, sample sd and a t-based interval of the mean over ``n`` values (seeds)."""

    n: int
    mean: float
    sd: float | None            # None with one value
    low: float | None           # interval of the mean; None with one value
    high: float | None
    confidence: float = CONFIDENCE

    @property
    def half_width(self) -> float | None:
        return None if self.low is None else (self.high - self.low) / 2

    def text(self, digits: int = 4) -> str:
        """``0.1234 ± 0.0056 (95 % CI 0.1178–0.1290, sd 0.0023, n=3)`` or the one-seed note."""
        if self.n == 1:
            return f"{self.mean:.{digits}f} ({ONE_SEED_NOTE})"
        return (f"{self.mean:.{digits}f} ± {self.half_width:.{digits}f} ({self.confidence:.0%} CI "
                f"{self.low:.{digits}f}–{self.high:.{digits}f}, sd {self.sd:.{digits}f}, n={self.n})")


def summarize(values: Sequence[float], confidence: float = CONFIDENCE) -> Summary:
    values = [float(v) for v in values]
    if not values:
        raise RecdistillError("no values to summarise (no seeds finished?)")
    if any(math.isnan(v) for v in values):
        raise RecdistillError(f"cannot summarise values with NaN: {values}")
    n, mean = len(values), float(np.mean(values))
    if n == 1:
        return Summary(1, mean, None, None, None, confidence)
    sd = float(np.std(values, ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, n - 1)) * sd / math.sqrt(n)
    return Summary(n, mean, sd, mean - half, mean + half, confidence)


@dataclass(frozen=True)
class PairedComparison:
    """``other`` minus ``baseline`` on the seeds both have."""

    seeds: tuple
    differences: tuple[float, ...]
    difference: Summary                 # of the per-seed differences
    t_test_p: float | None              # paired t-test, two-sided; None with <2 seeds or zero spread
    sign_flip_p: float | None           # exact sign-flip permutation test, two-sided; None with <2 seeds
    wins: int                           # seeds where other > baseline

    TEST = "paired t-test (two-sided)"

    def text(self, digits: int = 4) -> str:
        n = len(self.seeds)
        parts = [f"difference {self.difference.text(digits)}", f"better on {self.wins} of {n} seeds"]
        if self.t_test_p is not None:
            parts.append(f"{self.TEST} p={self.t_test_p:.3g}")
        elif n > 1:
            parts.append("t-test undefined (identical differences)")
        if self.sign_flip_p is not None:
            parts.append(f"exact sign-flip p={self.sign_flip_p:.3g} (smallest possible {2 / 2 ** n:.3g})")
        return "; ".join(parts)


def _mean_difference(x, y, axis):
    return np.mean(x - y, axis=axis)


def compare_paired(baseline: Mapping, other: Mapping, confidence: float = CONFIDENCE) -> PairedComparison:
    """Paired comparison over the seeds (keys) present in both mappings of seed -> value."""
    common = set(baseline) & set(other)
    try:
        seeds = tuple(sorted(common))
    except TypeError:  # mixed key types
        seeds = tuple(sorted(common, key=str))
    if not seeds:
        raise RecdistillError(f"no common seeds to pair: baseline has {sorted(baseline, key=str)}, "
                              f"the other arm {sorted(other, key=str)}")
    base = np.array([float(baseline[s]) for s in seeds])
    new = np.array([float(other[s]) for s in seeds])
    diffs = new - base
    t_p = sign_p = None
    if len(seeds) > 1:
        if np.ptp(diffs) > 1e-12 * max(1.0, float(np.abs(diffs).max())):  # else t is 0/0 (rounding noise)
            t_p = float(stats.ttest_rel(new, base).pvalue)
        sign_p = float(stats.permutation_test((new, base), _mean_difference, permutation_type="samples",
                                              n_resamples=np.inf, vectorized=True).pvalue)
    return PairedComparison(seeds, tuple(float(d) for d in diffs), summarize(diffs, confidence), t_p, sign_p,
                            int((diffs > 0).sum()))


def interval_text(d: dict) -> str:
    """A :func:`paired_interval` result as the reports write it: ``+0.0045 [-0.0062, +0.0153]``."""
    return f"{d['mean']:+.4f} [{d['ci95_low']:+.4f}, {d['ci95_high']:+.4f}]"


def paired_interval(baseline: Mapping, other: Mapping, confidence: float = CONFIDENCE) -> dict:
    """``other`` minus ``baseline`` over the seeds both have, as the result files write it: mean, the 95 %
    interval's ends and the per-seed differences."""
    c = compare_paired(baseline, other, confidence)
    return {"mean": c.difference.mean, "ci95_low": c.difference.low, "ci95_high": c.difference.high,
            "differences": list(c.differences)}
