"""DLLM2Rec's published options: the DROS term (by hand and against a direct transcription of their
formula), in the distillation step's base and ranking losses; embedding distillation on the inputs only
with an untied output table; the export's title pooling."""

import math

import pytest
import torch

from recdistill.distill.dros import dros_loss, propensity, target_counts
from recdistill.student.distilled import DistilledSASRec
from recdistill.distill.losses import ranking_distillation_loss, ranking_weights
from recdistill.errors import ConfigError
from recdistill.teacher_outputs.llm_ranker import pool_title_states
from test_distill_module import K, L, NUM_ITEMS, make_batch, module


def test_dros_by_hand():
    # logits 0, 1, 2; propensities 1; beta 1; target the second item:
    # exp(0) + exp(1) + exp(4) - exp(1) + exp((1 - 1)^2) = 2 + e^4
    value = dros_loss(torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[1]]), torch.ones(3), beta=1.0)
    assert value.item() == pytest.approx(math.log(2 + math.e ** 4), rel=1e-6)
    # beta 2, propensities 0.5: exponents p s^2 / beta = 0, 0.25, 1; target the first: (0 - 1)^2 * 0.25
    value = dros_loss(torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[0]]), torch.full((3,), 0.5), beta=2.0)
    assert value.item() == pytest.approx(math.log(math.exp(0.25) + math.exp(0.25) + math.exp(1.0)), rel=1e-6)


def test_dros_equals_their_formula_and_stays_finite():
    g = torch.Generator().manual_seed(0)
    logits, ps = torch.randn(5, 30, generator=g) * 2, torch.rand(30, generator=g)
    targets = torch.randint(0, 30, (5, 3), generator=g)
    ours = dros_loss(logits, targets, ps, beta=1.5)
    for k in range(3):  # DLLM2Rec main.py, written out directly (A - B + C)
        t = targets[:, k:k + 1]
        a = torch.exp(logits * logits * ps / 1.5).sum(1)
        b = torch.exp(torch.gather(logits * logits * ps, 1, t).squeeze(1) / 1.5)
        c = torch.exp(torch.gather((logits - 1) * (logits - 1) * ps, 1, t).squeeze(1) / 1.5)
        assert torch.allclose(ours[:, k], torch.log(a - b + c + 1e-24), rtol=1e-5)
    assert torch.isfinite(dros_loss(torch.full((1, 4), 60.0), torch.tensor([[2]]), torch.ones(4))).all()


def test_propensity_by_hand():
    counts = target_counts(torch.tensor([[0, 2, 3], [3, 0, 0]]), num_items=3)
    assert counts.tolist() == [0, 1, 2]
    assert propensity(counts).tolist() == pytest.approx([(1 / 6) ** 0.05, (2 / 6) ** 0.05, (3 / 6) ** 0.05])


@pytest.mark.parametrize("loss", ["ce", "bce"])
def test_dros_in_the_step_base_and_ranking_terms(loss):
    overrides = [f"student.loss={loss}", "distill.ed.gamma=0", "distill.kd.num_negatives=2", "distill.dros.enabled=true",
                 "distill.dros.alpha=0.5", "distill.dros.beta=2.0", "student.num_negatives=1"]
    batch = make_batch()
    ps = torch.rand(NUM_ITEMS, generator=torch.Generator().manual_seed(1)) + 0.5
    on = module(*overrides)
    on.dros_ps, on.log = ps, (lambda *a, **k: None)
    off = module(*overrides[:-4], "student.num_negatives=1")
    off.log = lambda *a, **k: None
    off.model.load_state_dict(on.model.state_dict())
    hidden = on.model(batch["inputs"])
    mask = batch["targets"] > 0
    logits = (hidden[mask] @ on.model.all_item_embeddings().t())[:, 1:]
    base_dros = dros_loss(logits, (batch["targets"][mask] - 1).unsqueeze(-1), ps, 2.0).mean()
    has = batch["teacher_items"][..., 0] > 0
    items = batch["teacher_items"][has]
    h = hidden[has]
    scores = h @ on.model.all_item_embeddings().t()
    w = ranking_weights(items, batch["teacher_confidences"][has], scores.topk(K, 1).indices, items > 0)
    rd_dros = (w * dros_loss(scores[:, 1:], (items - 1).clamp_min(0), ps, 2.0)).sum(-1).mean()
    rd_plain = ranking_distillation_loss(scores.gather(1, items).masked_fill(items == 0, 0.0),
                                         scores.gather(1, batch["negatives"][has][:, :2]), w)
    expect_rd = rd_plain + 0.5 * rd_dros
    rd, _ = on.ranking_distillation(batch, hidden, with_dros=True)
    assert rd.item() == pytest.approx(expect_rd.item(), rel=1e-5)
    # whole step: off's loss (fused CE path or BCE) + alpha * base DROS + kd.weight * alpha * ranking DROS
    total, plain = on.training_step(batch, 0).item(), off.training_step(batch, 0).item()
    assert total - plain == pytest.approx(0.5 * base_dros.item() + 0.8 * 0.5 * rd_dros.item(), rel=1e-4)


def test_untied_embedding_distillation_touches_inputs_only():
    llm = torch.randn(NUM_ITEMS + 1, 24)
    torch.manual_seed(0)
    model = DistilledSASRec(NUM_ITEMS, llm, gamma=0.2, tie="untied", max_len=L, hidden_size=8, num_blocks=1, dropout=0.0)
    ids = torch.tensor([[0, 3, 5]])
    projected = model.item_embedding.weight + 0.2 * model.llm_projection(model.llm_embeddings)
    assert torch.allclose(model.embed_inputs(ids), projected[ids])
    # the output side is its own table, no LLM part
    assert torch.equal(model.all_item_embeddings(), model.output_embedding.weight)
    assert torch.allclose(model.embed_items(ids), model.output_embedding.weight[ids])
    seq = torch.tensor([[0, 0, 1, 2, 3, 4]])
    model.score_all(model.user_representation(seq))[0, 1:].sum().backward()
    assert model.llm_projection[0].weight.grad.abs().sum() > 0 and model.output_embedding.weight.grad.abs().sum() > 0
    assert model.item_embedding.weight.grad.abs().sum() > 0  # through the inputs only
    with pytest.raises(ConfigError, match="distill.ed.tie"):
        DistilledSASRec(NUM_ITEMS, llm, tie="both", max_len=L, hidden_size=8)


def test_untied_module_trains_a_step():
    m = module("distill.ed.tie=untied", "distill.ed.normalize=none", llm=torch.randn(NUM_ITEMS + 1, 16))
    m.log = lambda *a, **k: None
    loss = m.training_step(make_batch(), 0)
    loss.backward()
    assert torch.isfinite(loss) and m.model.output_embedding.weight.grad.abs().sum() > 0


def test_title_pooling_mean_and_last_token():
    states = torch.arange(2 * 3 * 2, dtype=torch.float32).view(2, 3, 2)  # two titles, 3 slots, width 2
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    assert pool_title_states(states, mask, "last").tolist() == [[2.0, 3.0], [10.0, 11.0]]
    assert pool_title_states(states, mask, "mean").tolist() == [[1.0, 2.0], [8.0, 9.0]]
