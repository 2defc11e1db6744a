"""The distillation module on tiny batches: the usual loss matches the student's, positions without
teacher outputs, the ranking term against the loss functions, embedding distillation's shape and effect,
the data alignment of teacher rows to window slots."""

import numpy as np
import pytest
import torch

from recdistill.config import compose
from recdistill.data.prepared import load_prepared
from recdistill.data.sequences import training_windows
from recdistill.distill.data import window_positions
from recdistill.student.distilled import DistilledSASRec
from recdistill.distill.losses import ranking_distillation_loss, ranking_weights
from recdistill.errors import ConfigError
from recdistill.recipes.distill import distill_module, validate_distill_config
from recdistill.student.module import sequence_loss

NUM_ITEMS, B, L, K = 12, 3, 6, 4


def make_cfg(*overrides):
    cfg = compose("distill", ["distill.teacher_outputs=unused", "student.max_len=6", "student.hidden_size=8",
                              "student.num_blocks=1", "student.dropout=0.0", *overrides])
    return cfg


def make_batch(with_teacher=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randint(1, NUM_ITEMS + 1, (B, L), generator=g)
    inputs[0, :2] = 0  # left padding
    targets = torch.randint(1, NUM_ITEMS + 1, (B, L), generator=g)
    targets[0, :2] = 0
    batch = {"inputs": inputs, "targets": targets, "users": torch.arange(1, B + 1),
             "negatives": torch.randint(1, NUM_ITEMS + 1, (B, L, 2), generator=g)}
    items = torch.randint(1, NUM_ITEMS + 1, (B, L, K), generator=g)
    conf = torch.softmax(torch.randn(B, L, K, generator=g), -1)
    if with_teacher:
        items[0, :2] = 0          # padded slots never have teacher outputs
        items[1, :3] = 0          # these positions have targets but no teacher output
        items[2, 4, 2:] = 0       # a shorter list
    else:
        items.zero_()
    batch["teacher_items"], batch["teacher_confidences"] = items, conf * (items > 0)
    return batch


def module(*overrides, llm=None):
    torch.manual_seed(0)
    return distill_module(make_cfg(*overrides), NUM_ITEMS, llm_embeddings=llm)


@pytest.mark.parametrize("loss", ["ce", "bce"])
def test_without_distillation_the_loss_is_the_students(loss):
    m = module(f"student.loss={loss}", "distill.kd.weight=0", "distill.ed.gamma=0")
    m.log = lambda *a, **k: None
    batch = make_batch()
    if loss == "bce":
        batch["negatives"] = batch["negatives"][..., :1]
    expect = sequence_loss(m.model, batch, loss)
    assert m.training_step(batch, 0).item() == pytest.approx(expect.item(), rel=1e-5)


@pytest.mark.parametrize("loss", ["ce", "bce"])
def test_positions_without_teacher_outputs_train_with_the_usual_loss_alone(loss):
    m = module(f"student.loss={loss}", "distill.ed.gamma=0")
    m.log = lambda *a, **k: None
    batch = make_batch(with_teacher=False)
    plain = module(f"student.loss={loss}", "distill.kd.weight=0", "distill.ed.gamma=0")
    plain.log = lambda *a, **k: None
    assert m.training_step(batch, 0).item() == pytest.approx(plain.training_step(batch, 0).item(), rel=1e-6)


@pytest.mark.parametrize("loss", ["ce", "bce"])
def test_ranking_term_matches_the_loss_functions_on_covered_positions(loss):
    m = module(f"student.loss={loss}", "distill.ed.gamma=0", "distill.kd.num_negatives=2", "student.num_negatives=1")
    batch = make_batch()
    m.model.eval()  # no dropout anyway; keeps the two forward passes identical
    hidden = m.model(batch["inputs"])
    rd, covered = m.ranking_distillation(batch, hidden)
    has = batch["teacher_items"][..., 0] > 0
    assert covered == int(has.sum()) == B * L - 2 - 3
    h = hidden[has]
    items = batch["teacher_items"][has]
    scores = (h @ m.model.all_item_embeddings().t())
    item_scores = scores.gather(1, items).masked_fill(items == 0, 0.0)
    neg_scores = scores.gather(1, batch["negatives"][has])
    w = ranking_weights(items, batch["teacher_confidences"][has], scores.topk(K, 1).indices, items > 0)
    assert rd.item() == pytest.approx(ranking_distillation_loss(item_scores, neg_scores, w).item(), rel=1e-5)
    # kd.weight scales the term
    m.log = lambda *a, **k: None
    m2 = module(f"student.loss={loss}", "distill.ed.gamma=0", "distill.kd.num_negatives=2", "distill.kd.weight=0")
    m2.log = lambda *a, **k: None
    m2.model.load_state_dict(m.model.state_dict())
    total, usual = m.training_step(batch, 0).item(), m2.training_step(batch, 0).item()
    assert total - usual == pytest.approx(0.8 * rd.item(), rel=1e-4)


def test_embedding_distillation_shape_and_effect():
    llm = torch.randn(NUM_ITEMS + 1, 24)
    torch.manual_seed(0)
    plain = DistilledSASRec(NUM_ITEMS, None, max_len=L, hidden_size=8, num_blocks=1, dropout=0.0)
    torch.manual_seed(0)
    fused = DistilledSASRec(NUM_ITEMS, llm, gamma=0.2, max_len=L, hidden_size=8, num_blocks=1, dropout=0.0)
    table = fused.all_item_embeddings()
    assert table.shape == (NUM_ITEMS + 1, 8)
    expect = fused.item_embedding.weight + 0.2 * fused.llm_projection(fused.llm_embeddings)
    assert torch.allclose(table, expect)
    ids = torch.tensor([[0, 3, 5]])
    assert torch.allclose(fused.embed_items(ids), table[ids])
    seq = torch.tensor([[0, 0, 1, 2, 3, 4]])
    assert fused(seq).shape == (1, L, 8)
    assert not torch.allclose(fused(seq), plain(seq))  # same id embeddings, the LLM part changes outputs
    # gamma takes effect, and gradients reach the projection
    fused.gamma = 0.0
    assert torch.allclose(fused(seq), plain(seq), atol=1e-6)
    fused.gamma = 0.2
    fused.score_all(fused.user_representation(seq))[0, 1:].sum().backward()
    assert fused.llm_projection[0].weight.grad.abs().sum() > 0
    assert "llm_embeddings" in fused.state_dict()  # kept with the checkpoint for test time
    with pytest.raises(Exception, match="another dataset"):
        DistilledSASRec(NUM_ITEMS + 1, llm, gamma=0.2, max_len=L, hidden_size=8)


def test_window_positions_align_with_training_windows(tiny_prepared):
    data = load_prepared(tiny_prepared)
    windows = training_windows(data.train, 4)
    positions = window_positions(data.train, 4)
    for w in range(len(windows)):
        user = windows.users[w]
        slots = positions[w] > 0
        assert np.array_equal(data.train[user][positions[w, slots]], windows.targets[w, slots])


@pytest.mark.parametrize("a_cons,every_position", [("0.1", False), ("0.0", False), ("0.1", True)])
def test_fused_ranking_term_has_the_gradients_of_the_plain_form(a_cons, every_position):
    """training_step computes L_rd inside the fused CE pass; the plain form (CE + ranking_distillation)
    must give the same loss and the same parameter gradients."""
    from recdistill.layers.fused_ce import linear_cross_entropy

    llm = torch.randn(NUM_ITEMS + 1, 5)
    fused = module("distill.ed.gamma=0.2", "distill.kd.num_negatives=2", f"distill.kd.a_cons={a_cons}", llm=llm)
    fused.log = lambda *a, **k: None
    fused.model.eval()
    batch = make_batch()
    if every_position:  # teacher rows at every target position: the fused term reads chunk logits in place
        batch["teacher_items"][1, :3] = torch.arange(1, K + 1)
        batch["teacher_confidences"][1, :3] = 1.0 / K
    with fused.model.shared_item_table():
        loss = fused._training_step(batch)
    fused_grads = torch.autograd.grad(loss, [p for p in fused.parameters() if p.requires_grad])
    with fused.model.shared_item_table():
        hidden = fused.model(batch["inputs"])
        mask = batch["targets"] > 0
        usual = linear_cross_entropy(hidden[mask], fused.model.all_item_embeddings()[1:], batch["targets"][mask] - 1)
        rd, _ = fused.ranking_distillation(batch, hidden)
        plain = usual + 0.8 * rd
    plain_grads = torch.autograd.grad(plain, [p for p in fused.parameters() if p.requires_grad])
    assert loss.item() == pytest.approx(plain.item(), rel=1e-5)
    for got, want in zip(fused_grads, plain_grads):
        assert torch.allclose(got, want, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("loss", ["ce", "bce"])
def test_average_over_all_positions_divides_by_every_target_position(loss):
    batch = make_batch()
    totals = {}
    for how in ("teacher_positions", "all_positions"):
        m = module(f"student.loss={loss}", "distill.ed.gamma=0", f"distill.kd.average_over={how}")
        m.log = lambda *a, **k: None
        m.model.eval()
        totals[how] = m.training_step(batch, 0).item()
    plain = module(f"student.loss={loss}", "distill.ed.gamma=0", "distill.kd.weight=0")
    plain.log = lambda *a, **k: None
    plain.model.eval()
    usual = plain.training_step(batch, 0).item()
    teacher_rows = int((batch["teacher_items"][..., 0] > 0).sum())
    target_rows = int((batch["targets"] > 0).sum())
    # same per-row terms, another denominator
    assert (totals["all_positions"] - usual) == pytest.approx(
        (totals["teacher_positions"] - usual) * teacher_rows / target_rows, rel=1e-4)
    with pytest.raises(ConfigError, match="average_over"):  # the recipe refuses it, once, before any module
        validate_distill_config(make_cfg("distill.kd.average_over=users"))
