"""The losses of DLLM2Rec-style distillation (Cui et al., RecSys 2024), written as plain functions of
tensors so each term can be checked against values computed by hand.

Notation, for one exported training position with the teacher's top-K list ``t_1 .. t_K`` (best first),
its confidences ``c_1 .. c_K``, the student's scores ``s(i)`` for item ``i`` and ``n`` sampled negatives
``j_1 .. j_n``:

* position weight     ``w_pos_k  = exp(-k / lambda) / sum_k' exp(-k' / lambda)``      (k = 1..K)
* confidence weight   ``w_conf_k = c_k / sum_k' c_k'``
* consistency weight  ``w_cons_k = 1 if t_k is in the student's current top-K else 0``
* combined weight     ``w_k = v_k / sum_k' v_k'`` with ``v_k = a_pos w_pos_k + a_conf w_conf_k + a_cons w_cons_k``
* ranking distillation, per position:
  ``L_rd = sum_k w_k * -( log sigmoid(s(t_k)) + mean_j log(1 - sigmoid(s(j))) )``
  averaged over the exported positions of the batch, and added to the usual loss as ``kd.weight * L_rd``.

Where DLLM2Rec's released code differs, the default is ours and the published form is an option:

* confidence weight: theirs is ``exp(-c) + 1e-8``, normalised, ``c`` being their teacher's (BIGRec's) L2
  distance; ours normalises the softmax of the teacher's top-K scores. For an export whose scores are
  ``-distance`` (``teacher.export.ranking=grounded``) the two agree except where ``exp(-c)`` falls near
  1e-8 (distances above about 18), where theirs turns uniform: :func:`exp_neg_distance_confidences`
  (``distill.kd.confidence=exp_neg_distance``);
* negative term: theirs is written ``log sigmoid(1 - s)``, which is not ``log(1 - sigmoid(s)) = log
  sigmoid(-s)`` (the paper's); ``negative_shift=1`` gives theirs (``distill.kd.negative_term=published``);
* base BCE: theirs is one mean over the concatenated positive and negative logits (``BCEWithLogitsLoss``),
  half of ours with one negative (``distill.base_loss_scale=published``).

The weights are constants (no gradient flows through them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# distill.kd.negative_term: the shift in log sigmoid(shift - s) for a negative's logit s
NEGATIVE_SHIFT = {"ours": 0.0, "published": 1.0}
# distill.base_loss_scale: how the sampled BCE averages its positive and negative terms
BASE_LOSS_FORMS = ("ours", "published")
# distill.kd.confidence: where w_conf comes from
CONFIDENCE_SOURCES = ("softmax", "exp_neg_distance")
# DLLM2Rec adds it to exp(-distance) before normalising (and so a row of far items gets uniform weights)
PUBLISHED_CONFIDENCE_EPSILON = 1e-8


def position_weights(valid: torch.Tensor, lam: float) -> torch.Tensor:
    """``w_pos``: ``exp(-rank / lambda)`` for ranks 1..K, zero where ``valid`` is false, normalised per row.

    Args:
        valid: bool ``[P, K]``, true where the teacher list has an item (lists may be shorter than K).
        lam: the decay ``lambda`` (> 0); small values put almost all weight on the teacher's first item.
    """
    ranks = torch.arange(1, valid.shape[-1] + 1, device=valid.device, dtype=torch.float32)
    raw = torch.exp(-ranks / float(lam)).expand_as(valid) * valid
    return _normalise(raw)


def confidence_weights(confidences: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``w_conf``: the teacher's confidences over the valid entries, normalised per row. A row whose
    confidences are all zero falls back to uniform over its valid entries."""
    raw = confidences.float().clamp_min(0) * valid
    empty = raw.sum(-1, keepdim=True) <= 0
    raw = torch.where(empty, valid.float(), raw)
    return _normalise(raw)


def consistency_weights(teacher_items: torch.Tensor, student_topk: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """``w_cons``: 1 where the teacher's item is also among the student's current top-K items, else 0.

    Args:
        teacher_items: ``[P, K]`` item ids.
        student_topk: ``[P, K']`` the student's highest-scoring item ids at the same positions.
    """
    hit = (teacher_items.unsqueeze(-1) == student_topk.unsqueeze(-2)).any(-1)
    return (hit & valid).float()


def ranking_weights(
    teacher_items: torch.Tensor,
    confidences: torch.Tensor,
    student_topk: torch.Tensor,
    valid: torch.Tensor,
    lam: float = 1.0,
    a_pos: float = 0.3,
    a_conf: float = 0.5,
    a_cons: float = 0.1,
) -> torch.Tensor:
    """The combined weight ``w = normalise(a_pos * w_pos + a_conf * w_conf + a_cons * w_cons)``.

    Each row sums to one over its valid entries (invalid entries get 0). ``[P, K]``, float32, no grad.
    """
    with torch.no_grad():
        mixed = (
            a_pos * position_weights(valid, lam)
            + a_conf * confidence_weights(confidences, valid)
            + a_cons * consistency_weights(teacher_items, student_topk, valid)
        )
        return _normalise(mixed * valid)


def exp_neg_distance_confidences(scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """DLLM2Rec's confidence before normalisation, ``exp(-c) + 1e-8`` with ``c = -score`` the teacher's
    distance (an export with ``teacher.export.ranking=grounded`` writes ``score = -L2 distance``), in
    float32 as theirs; 0 at padding entries. :func:`confidence_weights` normalises it."""
    raw = torch.exp(scores.float()) + PUBLISHED_CONFIDENCE_EPSILON
    return raw * valid


def ranking_distillation_loss(
    teacher_item_scores: torch.Tensor,
    negative_scores: torch.Tensor,
    weights: torch.Tensor,
    negative_shift: float = 0.0,
) -> torch.Tensor:
    """``mean_p sum_k w_pk * -(log sigmoid(s_pk) + mean_j log sigmoid(shift - s_pj))``; ``shift = 0`` is
    ``log(1 - sigmoid(s))`` (ours, the paper's), ``shift = 1`` DLLM2Rec's code.

    Args:
        teacher_item_scores: the student's logits for the teacher's items, ``[P, K]``.
        negative_scores: the student's logits for sampled negatives at the same positions, ``[P, n]``.
        weights: ``[P, K]`` from :func:`ranking_weights` (rows sum to 1; 0 for padding entries).
        negative_shift: ``NEGATIVE_SHIFT[distill.kd.negative_term]``.

    Returns:
        A scalar; 0 (with a gradient path) when ``P == 0``.
    """
    if teacher_item_scores.shape[0] == 0:
        return teacher_item_scores.sum() * 0.0
    positive = -F.logsigmoid(teacher_item_scores)                      # -log sigmoid(s)
    negative = negative_term(negative_scores, negative_shift).mean(-1, keepdim=True)
    per_position = (weights * (positive + negative)).sum(-1)
    return per_position.mean()


def negative_term(negative_scores: torch.Tensor, shift: float = 0.0) -> torch.Tensor:
    """``-log sigmoid(shift - s)`` elementwise: ``-log(1 - sigmoid(s))`` for ``shift = 0``."""
    return -F.logsigmoid(shift - negative_scores) if shift else -F.logsigmoid(-negative_scores)


def sampled_bce_loss(positive_scores: torch.Tensor, negative_scores: torch.Tensor, form: str = "ours") -> torch.Tensor:
    """SASRec's BCE loss (``student.loss=bce``).

    ``ours`` (as the student computes it): ``mean_p -log sigmoid(s_pos) + mean_{p,j} -log(1 - sigmoid(s_neg_pj))``,
    the two means taken separately so the number of negatives does not reweight positives against negatives.
    ``published`` (DLLM2Rec's ``BCEWithLogitsLoss`` over the concatenated logits): one mean over all ``P (1 + n)``
    terms, half of ours with one negative, which halves the base loss against the ranking term and DROS.

    Args:
        positive_scores: ``[P]`` logits of the true next items.
        negative_scores: ``[P, n]`` logits of sampled negatives.
        form: one of ``BASE_LOSS_FORMS`` (``distill.base_loss_scale``).
    """
    if positive_scores.numel() == 0:
        return positive_scores.sum() * 0.0
    positive, negative = -F.logsigmoid(positive_scores), -F.logsigmoid(-negative_scores)
    if form == "published":
        return torch.cat([positive.reshape(-1), negative.reshape(-1)]).mean()
    return positive.mean() + negative.mean()


def _normalise(x: torch.Tensor) -> torch.Tensor:
    total = x.sum(-1, keepdim=True)
    return torch.where(total > 0, x / total.clamp_min(1e-12), x)
