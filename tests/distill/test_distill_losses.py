"""Each distillation loss term against values computed by hand on a tiny batch."""

import math

import pytest
import torch

from recdistill.distill.losses import (
    confidence_weights,
    consistency_weights,
    position_weights,
    ranking_distillation_loss,
    ranking_weights,
    sampled_bce_loss,
)


def sig(x):
    return 1.0 / (1.0 + math.exp(-x))


def test_position_weights_by_hand():
    valid = torch.tensor([[True, True, True], [True, True, False]])
    w = position_weights(valid, lam=1.0)
    e = [math.exp(-1), math.exp(-2), math.exp(-3)]
    assert w[0].tolist() == pytest.approx([x / sum(e) for x in e], rel=1e-6)
    assert w[1].tolist() == pytest.approx([e[0] / (e[0] + e[1]), e[1] / (e[0] + e[1]), 0.0], rel=1e-6)
    # lambda takes effect: a larger lambda flattens the decay
    flat = position_weights(valid[:1], lam=100.0)[0]
    assert float(flat.max() - flat.min()) < 0.01


def test_confidence_and_consistency_weights_by_hand():
    valid = torch.tensor([[True, True, False]])
    conf = torch.tensor([[0.6, 0.2, 0.2]])
    assert confidence_weights(conf, valid)[0].tolist() == pytest.approx([0.75, 0.25, 0.0])
    items = torch.tensor([[5, 7, 0]])
    student_topk = torch.tensor([[7, 9, 0]])  # the padding id 0 never counts
    assert consistency_weights(items, student_topk, valid)[0].tolist() == [0.0, 1.0, 0.0]


def test_combined_weights_by_hand_and_sum_to_one():
    items = torch.tensor([[5, 7, 9], [3, 4, 0]])
    conf = torch.tensor([[0.5, 0.3, 0.2], [0.9, 0.1, 0.0]])
    valid = items > 0
    student_topk = torch.tensor([[9, 1, 2], [4, 3, 8]])
    w = ranking_weights(items, conf, student_topk, valid, lam=1.0, a_pos=0.3, a_conf=0.5, a_cons=0.1)
    e = [math.exp(-1), math.exp(-2), math.exp(-3)]
    pos = [x / sum(e) for x in e]
    v = [0.3 * pos[k] + 0.5 * [0.5, 0.3, 0.2][k] + 0.1 * [0, 0, 1][k] for k in range(3)]
    assert w[0].tolist() == pytest.approx([x / sum(v) for x in v], rel=1e-6)
    pos2 = [e[0] / (e[0] + e[1]), e[1] / (e[0] + e[1])]
    v2 = [0.3 * pos2[k] + 0.5 * [0.9, 0.1][k] + 0.1 * 1 for k in range(2)]
    assert w[1].tolist() == pytest.approx([v2[0] / sum(v2), v2[1] / sum(v2), 0.0], rel=1e-6)
    assert torch.allclose(w.sum(-1), torch.ones(2))
    # random batches: every row sums to one, padding gets nothing
    g = torch.Generator().manual_seed(0)
    items = torch.randint(0, 30, (64, 10), generator=g)
    items[:, 0] = torch.randint(1, 30, (64,), generator=g)
    conf = torch.rand(64, 10, generator=g)
    w = ranking_weights(items, conf, torch.randint(1, 30, (64, 10), generator=g), items > 0)
    assert torch.allclose(w.sum(-1), torch.ones(64), atol=1e-6)
    assert (w[items == 0] == 0).all()


def test_ranking_distillation_loss_by_hand_with_negatives():
    s_items = torch.tensor([[2.0, -1.0], [0.5, 0.0]], requires_grad=True)
    s_neg = torch.tensor([[1.0, -2.0], [0.3, 0.7]])
    w = torch.tensor([[0.7, 0.3], [1.0, 0.0]])
    loss = ranking_distillation_loss(s_items, s_neg, w)
    neg0 = -(math.log(1 - sig(1.0)) + math.log(1 - sig(-2.0))) / 2
    neg1 = -(math.log(1 - sig(0.3)) + math.log(1 - sig(0.7))) / 2
    row0 = 0.7 * (-math.log(sig(2.0)) + neg0) + 0.3 * (-math.log(sig(-1.0)) + neg0)
    row1 = 1.0 * (-math.log(sig(0.5)) + neg1)
    assert loss.item() == pytest.approx((row0 + row1) / 2, rel=1e-6)
    loss.backward()
    # the negative term is what pushes scores of non-teacher items down (seed 003's missing piece)
    assert s_items.grad[0, 0] < 0 and s_items.grad[1, 1] == 0


def test_negatives_change_the_loss():
    s_items = torch.tensor([[1.0, 0.5]])
    w = torch.tensor([[0.5, 0.5]])
    low = ranking_distillation_loss(s_items, torch.tensor([[-3.0]]), w)
    high = ranking_distillation_loss(s_items, torch.tensor([[3.0]]), w)
    assert float(high - low) == pytest.approx(-math.log(1 - sig(3.0)) + math.log(1 - sig(-3.0)), rel=1e-6)


def test_empty_positions_give_zero_with_gradient_path():
    s = torch.zeros(0, 3, requires_grad=True)
    loss = ranking_distillation_loss(s, torch.zeros(0, 1), torch.zeros(0, 3))
    assert loss.item() == 0.0
    loss.backward()


def test_sampled_bce_by_hand():
    pos = torch.tensor([1.0, -0.5])
    neg = torch.tensor([[0.2, -1.0], [0.0, 2.0]])
    expect = (-math.log(sig(1.0)) - math.log(sig(-0.5))) / 2 + (
        -math.log(1 - sig(0.2)) - math.log(1 - sig(-1.0)) - math.log(1 - sig(0.0)) - math.log(1 - sig(2.0))) / 4
    assert float(sampled_bce_loss(pos, neg)) == pytest.approx(expect, rel=1e-6)
