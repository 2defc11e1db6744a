"""distill.kd.reliability: the rules keep exactly the positions they say, and nothing else gets a weight."""

import numpy as np
import pytest

from recdistill.distill.reliability import reliable, target_buckets, teacher_better_buckets
from recdistill.errors import ConfigError

ITEMS = np.array([[3, 4, 5], [6, 7, 0], [1, 2, 3], [9, 8, 7]])
TARGETS = np.array([4, 5, 3, 9])


def test_teacher_hit_keeps_only_rows_whose_list_holds_the_target():
    assert reliable("teacher_hit", ITEMS, TARGETS).tolist() == [True, False, True, True]
    assert reliable("none", ITEMS, TARGETS).all()


def test_teacher_hit_never_matches_padding():
    assert not reliable("teacher_hit", np.array([[0, 0]]), np.array([0])).any()


def test_bucket_rule_follows_the_teacher_check():
    counts = np.array([0, 50, 40, 30, 20, 10, 5, 3, 2, 1, 0])   # item 10 has no training interaction
    check = {"teacher": {"head": {"ndcg@10": 0.1}, "tail": {"ndcg@10": 0.5}, "torso": {"ndcg@10": 0.2}},
             "student": {"head": {"ndcg@10": 0.3}, "tail": {"ndcg@10": 0.2}, "torso": {"ndcg@10": 0.2}}}
    better = teacher_better_buckets(check)
    assert better == {"tail"}
    targets = np.arange(1, 11)
    keep = reliable("teacher_buckets", np.zeros((10, 2), np.int64), targets, counts, better)
    assert keep.tolist() == (target_buckets(targets, counts) == "tail").tolist()
    assert keep.any() and not keep.all()


def test_bad_rule_and_missing_check_are_clear_errors():
    with pytest.raises(ConfigError, match="reliability"):
        reliable("sometimes", ITEMS, TARGETS)
    with pytest.raises(ConfigError, match="teacher check"):
        teacher_better_buckets({"teacher": {}})
