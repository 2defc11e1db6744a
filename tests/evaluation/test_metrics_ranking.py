"""Ranking metrics against values worked out by hand."""

import math

import pytest
import torch

from recdistill.evaluation import metrics_from_ranks, rank_of_targets, sampled_rank_of_targets

NEG = float("-inf")


def test_rank_counts_better_items_and_ties_against_the_target():
    scores = torch.tensor([[NEG, 0.9, 0.5, 0.7, 0.1],
                           [NEG, 0.2, 0.2, 0.2, 0.2]])
    # row 0: target 2 (0.5) is beaten by items 1 and 3 -> rank 2
    # row 1: everything ties with the target -> the target is placed last among the 4 real items
    assert rank_of_targets(scores, torch.tensor([2, 1])).tolist() == [2, 3]


def test_seen_items_are_excluded_but_never_the_target():
    scores = torch.tensor([[NEG, 0.9, 0.5, 0.7, 0.1]])
    rows, cols = torch.tensor([0, 0]), torch.tensor([1, 2])  # items 1 and 2 already seen; 2 is the target
    assert rank_of_targets(scores, torch.tensor([2]), rows, cols).tolist() == [1]  # only item 3 is above
    assert scores[0, 1] == 0.9  # the caller's scores are not modified


def test_sampled_rank_ignores_padding_candidates():
    scores = torch.tensor([[NEG, 0.9, 0.5, 0.7, 0.1]])
    negatives = torch.tensor([[1, 4, 0]])  # 0 = no candidate
    assert sampled_rank_of_targets(scores, torch.tensor([2]), negatives).tolist() == [1]


def test_metrics_from_ranks_hand_computed():
    ranks = torch.tensor([0, 1, 4, 30])
    m = metrics_from_ranks(ranks, [1, 5, 10], prefix="val/")
    assert m["val/hr@1"] == pytest.approx(1 / 4)
    assert m["val/hr@5"] == pytest.approx(3 / 4)
    assert m["val/recall@5"] == m["val/hr@5"]
    assert m["val/ndcg@1"] == pytest.approx(1 / 4)
    assert m["val/ndcg@5"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(6)) / 4)
    assert m["val/mrr@5"] == pytest.approx((1 + 1 / 2 + 1 / 5) / 4)
    assert m["val/mrr@10"] == m["val/mrr@5"]
    assert set(m) == {f"val/{n}@{k}" for n in ("hr", "ndcg", "recall", "mrr") for k in (1, 5, 10)}


def test_sampled_prefix_keeps_protocols_apart():
    m = metrics_from_ranks(torch.tensor([0]), [10], prefix="test/sampled100_")
    assert set(m) == {"test/sampled100_hr@10", "test/sampled100_ndcg@10", "test/sampled100_recall@10",
                      "test/sampled100_mrr@10"}


def test_chance_levels_by_hand():
    from recdistill.evaluation.chance import chance_hr, chance_ndcg, full_candidates

    gains10 = sum(1 / math.log2(r + 2) for r in range(10))  # 4.5436
    assert chance_hr(20, 10) == pytest.approx(0.5)
    assert chance_ndcg(20, 10) == pytest.approx(gains10 / 20)  # 0.2272, the teacher's cand20 chance
    # fewer candidates than k: every ranking is a hit; users average
    assert chance_hr(torch.tensor([5, 20]), 10) == pytest.approx((1.0 + 0.5) / 2)
    five = sum(1 / math.log2(r + 2) for r in range(5)) / 5
    assert chance_ndcg(torch.tensor([5, 20]), 10) == pytest.approx((five + gains10 / 20) / 2)
    # 6 items; user 0 saw 2 and 3 (target 4): 4 candidates; user 1 saw 4, which is its target: all 6 stay
    counts = full_candidates(6, torch.tensor([4, 4]), torch.tensor([0, 0, 1]), torch.tensor([2, 3, 4]))
    assert counts.tolist() == [4, 6]
