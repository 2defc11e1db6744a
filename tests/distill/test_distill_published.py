"""DLLM2Rec's code's forms where ours differ, each an option (docs/distillation.md, "DLLM2Rec as published"):
the base BCE as one mean (``distill.base_loss_scale``), DROS in the ranking term as their broadcast computes
it (``distill.dros.ranking_form``), the negative term ``log sigmoid(1 - s)`` (``distill.kd.negative_term``),
negatives outside the 10-item window (``distill.kd.negatives_avoid``) and ``exp(-distance)`` confidences
(``distill.kd.confidence``). Each against a hand computation and a transcription of their code."""

import math

import numpy as np
import pytest
import torch

from recdistill.data.datamodule import TrainCollate
from recdistill.data.sequences import ItemSets, training_windows
from recdistill.distill.data import PrecedingItems, window_positions
from recdistill.distill.dros import dros_loss, ranking_dros
from recdistill.distill.losses import (confidence_weights, exp_neg_distance_confidences, ranking_distillation_loss,
                                       ranking_weights, sampled_bce_loss)
from recdistill.errors import ConfigError
from recdistill.recipes.distill import validate_distill_config
from test_distill_module import K, NUM_ITEMS, make_batch, make_cfg, module


def nls(x):
    """-log sigmoid(x)"""
    return math.log1p(math.exp(-x))


# 1. the base loss

def test_published_base_bce_is_one_mean_over_positives_and_negatives_by_hand():
    pos, neg = torch.tensor([0.5, -1.0]), torch.tensor([[2.0], [0.0]])
    terms = [nls(0.5), nls(-1.0), nls(-2.0), nls(0.0)]
    assert sampled_bce_loss(pos, neg, "published").item() == pytest.approx(sum(terms) / 4, rel=1e-6)
    ours = (nls(0.5) + nls(-1.0)) / 2 + (nls(-2.0) + nls(0.0)) / 2
    assert sampled_bce_loss(pos, neg).item() == pytest.approx(ours, rel=1e-6)
    # with one negative, theirs is half of ours
    assert sampled_bce_loss(pos, neg, "published").item() == pytest.approx(ours / 2, rel=1e-6)
    # their code: BCEWithLogitsLoss over cat((pos, neg)) and cat((ones, zeros))
    scores, labels = torch.cat([pos[:, None], neg]), torch.cat([torch.ones(2, 1), torch.zeros(2, 1)])
    theirs = torch.nn.BCEWithLogitsLoss()(scores, labels)
    assert sampled_bce_loss(pos, neg, "published").item() == pytest.approx(theirs.item(), rel=1e-6)
    # with n negatives: one mean over the P (1 + n) terms
    neg2 = torch.tensor([[2.0, 1.0], [0.0, -3.0]])
    terms2 = [nls(0.5), nls(-1.0), nls(-2.0), nls(-1.0), nls(0.0), nls(3.0)]
    assert sampled_bce_loss(pos, neg2, "published").item() == pytest.approx(sum(terms2) / 6, rel=1e-6)


def test_published_base_loss_in_the_step_and_refused_without_bce():
    batch = make_batch()
    batch["negatives"] = batch["negatives"][..., :1]
    totals = {}
    for form in ("ours", "published"):
        m = module("student.loss=bce", "distill.kd.weight=0", "distill.ed.gamma=0", f"distill.base_loss_scale={form}")
        m.log = lambda *a, **k: None
        m.model.eval()
        totals[form] = m.training_step(batch, 0).item()
    assert totals["published"] == pytest.approx(totals["ours"] / 2, rel=1e-5)
    with pytest.raises(ConfigError, match="distill.base_loss_scale=published .* needs student.loss=bce"):
        validate_distill_config(make_cfg("student.loss=ce", "distill.base_loss_scale=published"))
    with pytest.raises(ConfigError, match="distill.base_loss_scale='half' is not valid; choose one of: ours, published"):
        validate_distill_config(make_cfg("distill.base_loss_scale=half"))


# 2. DROS inside the ranking term

def test_ranking_dros_per_sample_and_published_by_hand():
    w = torch.tensor([[0.7, 0.3], [0.4, 0.6]])
    d = torch.tensor([[1.0, 2.0], [3.0, 5.0]])
    valid = torch.ones(2, 2, dtype=torch.bool)
    per_sample = ((0.7 * 1 + 0.3 * 2) + (0.4 * 3 + 0.6 * 5)) / 2
    published = (0.7 + 0.4) / 2 * (1 + 3) / 2 + (0.3 + 0.6) / 2 * (2 + 5) / 2
    assert ranking_dros(w, d, valid, "per_sample").item() == pytest.approx(per_sample)
    assert ranking_dros(w, d, valid, "published").item() == pytest.approx(published)
    # their code: weight[:, k:k+1] ([B, 1]) times loss_dro_rd ([B]) broadcasts to [B, B], then .mean()
    theirs = sum((w[:, k:k + 1] * d[:, k]).mean() for k in range(2))
    assert ranking_dros(w, d, valid, "published").item() == pytest.approx(theirs.item())
    # a shorter list: its missing entry leaves the DROS mean of that column (weights there are 0)
    short = torch.tensor([[True, True], [True, False]])
    w_short = torch.tensor([[0.7, 0.3], [1.0, 0.0]])
    expect = (0.7 + 1.0) / 2 * (1 + 3) / 2 + (0.3 + 0.0) / 2 * 2
    assert ranking_dros(w_short, d, short, "published").item() == pytest.approx(expect)


def test_published_ranking_dros_in_the_module():
    overrides = ["student.loss=bce", "distill.ed.gamma=0", "distill.kd.num_negatives=1", "distill.dros.enabled=true",
                 "distill.dros.alpha=0.5", "distill.dros.ranking_form=published"]
    batch = make_batch()
    ps = torch.rand(NUM_ITEMS, generator=torch.Generator().manual_seed(1)) + 0.5
    m = module(*overrides)
    m.dros_ps = ps
    hidden = m.model(batch["inputs"])
    has = batch["teacher_items"][..., 0] > 0
    items = batch["teacher_items"][has]
    scores = hidden[has] @ m.model.all_item_embeddings().t()
    w = ranking_weights(items, batch["teacher_confidences"][has], scores.topk(K, 1).indices, items > 0)
    per_item = dros_loss(scores[:, 1:], (items - 1).clamp_min(0), ps, 1.0)
    valid = (items > 0).float()
    published = sum(w[:, k].mean() * (per_item[:, k] * valid[:, k]).sum() / valid[:, k].sum() for k in range(K))
    plain = ranking_distillation_loss(scores.gather(1, items).masked_fill(items == 0, 0.0),
                                      scores.gather(1, batch["negatives"][has][:, :1]), w)
    rd, _ = m.ranking_distillation(batch, hidden, with_dros=True)
    assert rd.item() == pytest.approx((plain + 0.5 * published).item(), rel=1e-5)


# 3. the negative term

def test_published_negative_term_by_hand_and_as_their_code_writes_it():
    pos, neg = torch.tensor([[1.0, -0.5]]), torch.tensor([[0.25]])
    w = torch.tensor([[0.6, 0.4]])
    # -log sigmoid(1 - s) for the negative (theirs); -log sigmoid(-s) (ours)
    theirs_by_hand = 0.6 * (nls(1.0) + nls(1 - 0.25)) + 0.4 * (nls(-0.5) + nls(1 - 0.25))
    ours_by_hand = 0.6 * (nls(1.0) + nls(-0.25)) + 0.4 * (nls(-0.5) + nls(-0.25))
    assert ranking_distillation_loss(pos, neg, w, negative_shift=1.0).item() == pytest.approx(theirs_by_hand, rel=1e-6)
    assert ranking_distillation_loss(pos, neg, w).item() == pytest.approx(ours_by_hand, rel=1e-6)
    # DLLM2Rec main.py: -(log(sigmoid(pos)) + log(sigmoid(1 - neg))), weighted per teacher item, summed over k
    their_code = sum((w[:, k:k + 1] * -(torch.log(torch.sigmoid(pos[:, k:k + 1])) + torch.log(torch.sigmoid(1 - neg))))
                     .mean() for k in range(2))
    assert ranking_distillation_loss(pos, neg, w, negative_shift=1.0).item() == pytest.approx(their_code.item(), rel=1e-6)


def test_fused_ranking_term_with_the_published_negative_term_has_the_plain_gradients():
    from recdistill.layers.fused_ce import linear_cross_entropy

    fused = module("distill.ed.gamma=0", "distill.kd.num_negatives=2", "distill.kd.negative_term=published")
    assert fused.negative_shift == 1.0
    fused.log = lambda *a, **k: None
    fused.model.eval()
    batch = make_batch()
    with fused.model.shared_item_table():
        loss = fused._training_step(batch)
    params = [p for p in fused.parameters() if p.requires_grad]
    fused_grads = torch.autograd.grad(loss, params)
    with fused.model.shared_item_table():
        hidden = fused.model(batch["inputs"])
        mask = batch["targets"] > 0
        usual = linear_cross_entropy(hidden[mask], fused.model.all_item_embeddings()[1:], batch["targets"][mask] - 1)
        rd, _ = fused.ranking_distillation(batch, hidden)
        plain = usual + 0.8 * rd
    plain_grads = torch.autograd.grad(plain, params)
    assert loss.item() == pytest.approx(plain.item(), rel=1e-5)
    for got, want in zip(fused_grads, plain_grads):
        assert torch.allclose(got, want, atol=1e-6, rtol=1e-4)


# 4. the negatives' pool

def long_history_train():
    """User 1 has seen 13 of 15 items; user 2 a short history."""
    return [np.zeros(0, np.int64), np.arange(1, 14, dtype=np.int64), np.array([3, 9, 4, 12], dtype=np.int64)]


def test_preceding_items_are_the_window_before_each_target():
    train, max_len, size = long_history_train(), 4, 3
    windows = training_windows(train, max_len)
    positions = window_positions(train, max_len)
    before = PrecedingItems(train, windows.users, positions, size)(torch.arange(len(windows)))
    for w in range(len(windows)):
        seq = train[windows.users[w]]
        for slot in range(max_len):
            p = positions[w, slot]
            got = before[w, slot].tolist()
            if p == 0:
                assert got == [0] * size
                continue
            want = seq[max(0, p - size):p].tolist()
            assert got == [0] * (size - len(want)) + want
            assert seq[p - 1] == windows.inputs[w, slot]   # the window ends with the slot's input


def test_window_negatives_avoid_the_window_and_target_but_not_older_history():
    train, max_len, num_items = long_history_train(), 4, 15
    windows = training_windows(train, max_len)
    positions = window_positions(train, max_len)
    before = PrecedingItems(train, windows.users, positions, max_len)
    collate = TrainCollate(windows, num_items, 6, None, avoided_items=before)
    rows = list(range(len(windows)))
    older_history_drawn = 0
    for _ in range(30):
        batch = collate(rows)
        window = before(torch.as_tensor(rows))
        for w in rows:
            history = set(train[windows.users[w]].tolist())
            for slot in range(max_len):
                if batch["targets"][w, slot] == 0:
                    continue
                drawn = set(batch["negatives"][w, slot].tolist())
                assert not drawn & set(window[w, slot].tolist())
                assert int(batch["targets"][w, slot]) not in drawn
                older_history_drawn += len(drawn & history)
    assert older_history_drawn > 0
    # the default pool never draws a history item
    history_keys = ItemSets(train).sorted_keys(num_items)
    default = TrainCollate(windows, num_items, 6, history_keys)(rows)
    for w in rows:
        history = set(train[windows.users[w]].tolist())
        assert not set(default["negatives"][w].reshape(-1).tolist()) & history


def test_the_default_draw_is_unchanged():
    """negatives_avoid=history draws exactly what the student's collate draws (same generator calls)."""
    train, max_len, num_items = long_history_train(), 4, 15
    windows = training_windows(train, max_len)
    keys = ItemSets(train).sorted_keys(num_items)
    torch.manual_seed(3)
    a = TrainCollate(windows, num_items, 2, keys)([0, 1, 2])["negatives"]
    torch.manual_seed(3)
    b = TrainCollate(windows, num_items, 2, keys, avoided_items=None)([0, 1, 2])["negatives"]
    assert torch.equal(a, b)


# 5. the confidence weight

def test_exp_neg_distance_confidences_by_hand():
    scores = torch.tensor([[-1.0, -2.0, 0.0], [-30.0, -40.0, -35.0]])   # minus distances; a padded third entry
    valid = torch.tensor([[True, True, False], [True, True, True]])
    raw = exp_neg_distance_confidences(scores, valid)
    assert raw[0].tolist() == pytest.approx([math.exp(-1) + 1e-8, math.exp(-2) + 1e-8, 0.0], rel=1e-6)
    w = confidence_weights(raw, valid)
    e1, e2 = math.exp(-1) + 1e-8, math.exp(-2) + 1e-8
    assert w[0].tolist() == pytest.approx([e1 / (e1 + e2), e2 / (e1 + e2), 0.0], rel=1e-6)
    # close items: the same as the softmax of the scores; far ones (exp(-d) far below 1e-8): uniform, as theirs
    assert w[0, :2].tolist() == pytest.approx(torch.softmax(scores[0, :2], 0).tolist(), rel=1e-6)
    assert w[1].tolist() == pytest.approx([1 / 3] * 3, rel=1e-4)


def test_a_grounded_export_says_so_in_its_manifest_and_likelihood_exports_keep_their_identity():
    from omegaconf import OmegaConf

    from recdistill.recipes.export import _ranking_identity

    assert _ranking_identity(OmegaConf.create({"export": {"ranking": "grounded"}})) == {"ranking": "grounded"}
    assert _ranking_identity(OmegaConf.create({"export": {"ranking": "likelihood"}})) == {}
