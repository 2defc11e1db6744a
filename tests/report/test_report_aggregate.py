"""Aggregation over seeds against numbers worked out by hand."""

from __future__ import annotations

import math

import pytest

from recdistill.errors import RecdistillError
from recdistill.report.aggregate import ONE_SEED_NOTE, compare_paired, summarize

T_975_DF2 = 4.302652729911275  # Student t, 97.5 % quantile, 2 degrees of freedom (printed tables: 4.303)


def test_summary_of_three_values_by_hand():
    s = summarize([1.0, 2.0, 3.0])
    assert s.n == 3 and s.mean == pytest.approx(2.0) and s.sd == pytest.approx(1.0)  # sample sd, ddof=1
    half = T_975_DF2 * 1.0 / math.sqrt(3)  # 2.4841
    assert (s.low, s.high) == pytest.approx((2.0 - half, 2.0 + half))
    assert "± 2.4841" in s.text() and "n=3" in s.text()


def test_one_seed_gives_no_interval_and_says_so():
    s = summarize([0.123])
    assert s.sd is None and s.low is None and s.high is None
    assert ONE_SEED_NOTE in s.text() and "±" not in s.text()


def test_paired_comparison_by_hand():
    # differences 0.02, 0.01, 0.03: mean 0.02, sd 0.01, t = 0.02 / (0.01 / sqrt 3) = 2 sqrt 3.
    # With 2 degrees of freedom the t CDF is 1/2 + t / (2 sqrt(2 + t^2)), so p = 1 - t / sqrt(2 + t^2)
    # = 1 - 3.4641 / 3.7417 = 0.07418. Sign flips: only all-plus and all-minus reach |mean| 0.02: p = 2/8.
    c = compare_paired({0: 0.10, 1: 0.12, 2: 0.11, 7: 0.5}, {0: 0.12, 1: 0.13, 2: 0.14})
    assert c.seeds == (0, 1, 2)  # seed 7 has no partner
    assert c.differences == pytest.approx((0.02, 0.01, 0.03))
    assert c.difference.mean == pytest.approx(0.02) and c.difference.sd == pytest.approx(0.01)
    t = 2 * math.sqrt(3)
    assert c.t_test_p == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-9)
    assert c.sign_flip_p == pytest.approx(0.25)
    assert c.wins == 3
    assert "paired t-test" in c.text() and "p=0.0742" in c.text()


def test_paired_sign_flip_p_with_mixed_signs():
    # differences +1, -1, +3, +1: mean 1; of the 16 sign patterns, |mean| >= 1 for: all with the 3 positive
    # (+3 and the two ±1 summing to >= 1 ...) enumerate by hand: sums of ±1 ±1 ±3 ±1 with |sum| >= 4:
    # +3 with (1,1,1) -> 6; +3 with two + one - -> 4 (3 ways); and the mirror images: 2 * (1 + 3) = 8 of 16.
    c = compare_paired({s: 0.0 for s in range(4)}, {0: 1.0, 1: -1.0, 2: 3.0, 3: 1.0})
    assert c.sign_flip_p == pytest.approx(8 / 16)
    assert c.wins == 3


def test_one_common_seed_and_identical_differences():
    c = compare_paired({0: 0.1}, {0: 0.2})
    assert c.t_test_p is None and c.sign_flip_p is None and ONE_SEED_NOTE in c.text()
    same = compare_paired({0: 0.1, 1: 0.2}, {0: 0.2, 1: 0.3})
    assert same.t_test_p is None and "undefined" in same.text()


def test_errors_are_clear():
    with pytest.raises(RecdistillError, match="no common seeds"):
        compare_paired({0: 1.0}, {1: 1.0})
    with pytest.raises(RecdistillError, match="no values"):
        summarize([])
