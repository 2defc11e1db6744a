"""The shared layers: the fused full-catalogue cross-entropy and the CPU dropout, against the plain forms."""

import pytest
import torch
import torch.nn.functional as F

from recdistill.layers.dropout import CPUFriendlyDropout
from recdistill.layers.fused_ce import linear_cross_entropy


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_fused_cross_entropy_matches_the_plain_loss_and_gradients(chunk):
    torch.manual_seed(0)
    hidden = torch.randn(50, 8, requires_grad=True)
    weight = torch.randn(13, 8, requires_grad=True)
    targets = torch.randint(0, 13, (50,))
    plain = F.cross_entropy(hidden @ weight.t(), targets)
    plain_grads = torch.autograd.grad(plain * 3.0, [hidden, weight])
    fused = linear_cross_entropy(hidden, weight, targets, chunk=chunk)
    fused_grads = torch.autograd.grad(fused * 3.0, [hidden, weight])  # an upstream scale reaches both
    assert torch.allclose(fused, plain, atol=1e-6)
    for got, want in zip(fused_grads, plain_grads):
        assert torch.allclose(got, want, atol=1e-6)


def test_fused_cross_entropy_through_a_slice_and_without_grad():
    torch.manual_seed(1)
    table = torch.randn(10, 4, requires_grad=True)   # row 0 = padding, as in SASRec
    hidden = torch.randn(6, 4)
    targets = torch.randint(1, 10, (6,))
    fused = linear_cross_entropy(hidden, table[1:], targets - 1, chunk=4)
    fused.backward()
    assert torch.all(table.grad[0] == 0) and table.grad[1:].abs().sum() > 0
    with torch.no_grad():
        again = linear_cross_entropy(hidden, table[1:], targets - 1)
    assert torch.allclose(again, F.cross_entropy(hidden @ table[1:].t().detach(), targets - 1), atol=1e-6)


def test_fused_cross_entropy_rejects_bad_shapes():
    with pytest.raises(ValueError, match=r"hidden \[P, H\]"):
        linear_cross_entropy(torch.zeros(3, 4), torch.zeros(5, 3), torch.zeros(3, dtype=torch.long))


def test_cpu_dropout_keeps_the_expectation_and_is_off_in_eval():
    torch.manual_seed(0)
    drop = CPUFriendlyDropout(0.25)
    x = torch.ones(200_000)
    y = drop(x)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.25) < 0.01                 # about p of the values are zeroed
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.75))
    assert abs(y.mean().item() - 1.0) < 0.02
    x = torch.randn(64, 32, requires_grad=True)
    torch.manual_seed(1)
    y = drop(x)
    torch.manual_seed(1)
    keep = torch.rand_like(x) >= 0.25           # the same uniforms: the mask is u >= p, scaled by 1 / (1 - p)
    assert torch.equal(y, x * keep * (1.0 / 0.75))  # bit for bit the earlier bool-mask formula
    y.sum().backward()
    assert torch.equal(x.grad, keep * (1.0 / 0.75))
    drop.eval()
    assert drop(x) is x
    with pytest.raises(ValueError, match="dropout must be in"):
        CPUFriendlyDropout(1.0)


def test_dropout_linear_matches_autograd_with_the_same_mask():
    from recdistill.layers.dropout_linear import dropout_linear

    torch.manual_seed(0)
    x = torch.randn(2, 5, 6, requires_grad=True)
    weight = torch.randn(3, 6, requires_grad=True)
    keep = torch.rand(2, 5, 6) >= 0.3
    want = F.linear(x * keep / 0.7, weight)
    got = dropout_linear(x, weight, 0.3, training=True, keep=keep)
    assert torch.allclose(got, want, atol=1e-6)
    upstream = torch.randn_like(want)
    want_grads = torch.autograd.grad(want, [x, weight], upstream)
    got_grads = torch.autograd.grad(got, [x, weight], upstream)
    for g, w in zip(got_grads, want_grads):
        assert torch.allclose(g, w, atol=1e-5)
    # off in eval and at p = 0; on in training with a drawn mask (some inputs dropped)
    assert torch.equal(dropout_linear(x, weight, 0.3, training=False), F.linear(x, weight))
    assert torch.equal(dropout_linear(x, weight, 0.0, training=True), F.linear(x, weight))
    ones = torch.ones(4000, 1)
    dropped = dropout_linear(ones, torch.ones(1, 1), 0.3, training=True)
    assert 0.25 < (dropped == 0).float().mean().item() < 0.35


def test_fused_cross_entropy_hands_each_chunk_its_logits_and_adds_the_extra_term():
    """The extra hook sees the raw logits of rows start:end (here it takes the top-5 of chosen rows, as
    distillation's consistency term does) and its value and sparse gradient join the loss."""
    torch.manual_seed(2)
    hidden = torch.randn(20, 8, requires_grad=True)
    weight = torch.randn(30, 8, requires_grad=True)
    targets = torch.randint(0, 30, (20,))
    rows = torch.rand(20) > 0.5
    tops = []

    def extra(logits, start, end):
        tops.append(logits[rows[start:end]].topk(5, dim=1).indices)
        local = torch.arange(end - start)
        cols = torch.zeros_like(local)                      # extra term: 0.1 * mean of column 0's logits
        return 0.1 * logits[:, 0].sum() / 20, local, cols, torch.full((end - start,), 0.1 / 20)

    loss = linear_cross_entropy(hidden, weight, targets, chunk=6, extra=extra)
    top = torch.cat(tops)
    want = (hidden @ weight.t())[rows].topk(5, dim=1).indices
    assert torch.equal(top, want)
    plain = F.cross_entropy(hidden @ weight.t(), targets) + 0.1 * (hidden @ weight.t())[:, 0].mean()
    assert torch.allclose(loss, plain, atol=1e-6)
    for got, expected in zip(torch.autograd.grad(loss, [hidden, weight]), torch.autograd.grad(plain, [hidden, weight])):
        assert torch.allclose(got, expected, atol=1e-6)
