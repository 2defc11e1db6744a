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

Two differences from DLLM2Rec's released code, on purpose: (1) their confidence weight is
``exp(-c)`` because their teacher's "confidence" is a distance (smaller is better); ours are softmax
probabilities (larger is better), so they are normalised directly; (2) their negative term is written
``log(sigmoid(1 - s))``, which is not ``log(1 - sigmoid(s))``; we use the latter, as the paper states.
The weights are constants (no gradient flows through them).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


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


def ranking_distillation_loss(
    teacher_item_scores: torch.Tensor,
    negative_scores: torch.Tensor,
    weights: torch.Tensor,
) -> torch.Tensor:
    """``mean_p sum_k w_pk * -(log sigmoid(s_pk) + mean_j log(1 - sigmoid(s_pj)))``.

    Args:
        teacher_item_scores: the student's logits for the teacher's items, ``[P, K]``.
        negative_scores: the student's logits for sampled negatives at the same positions, ``[P, n]``.
        weights: ``[P, K]`` from :func:`ranking_weights` (rows sum to 1; 0 for padding entries).

    Returns:
        A scalar; 0 (with a gradient path) when ``P == 0``.
    """
    if teacher_item_scores.shape[0] == 0:
        return teacher_item_scores.sum() * 0.0
    positive = -F.logsigmoid(teacher_item_scores)                      # -log sigmoid(s)
    negative = -F.logsigmoid(-negative_scores).mean(-1, keepdim=True)  # -log(1 - sigmoid(s)) = -log sigmoid(-s)
    per_position = (weights * (positive + negative)).sum(-1)
    return per_position.mean()


def sampled_bce_loss(positive_scores: torch.Tensor, negative_scores: torch.Tensor) -> torch.Tensor:
    """SASRec's BCE loss as the student computes it (``student.loss=bce``):
    ``mean_p -log sigmoid(s_pos) + mean_{p,j} -log(1 - sigmoid(s_neg_pj))`` (the two means are taken
    separately, so the number of negatives does not reweight positives against negatives).

    Args:
        positive_scores: ``[P]`` logits of the true next items.
        negative_scores: ``[P, n]`` logits of sampled negatives.
    """
    if positive_scores.numel() == 0:
        return positive_scores.sum() * 0.0
    return -F.logsigmoid(positive_scores).mean() - F.logsigmoid(-negative_scores).mean()


def _normalise(x: torch.Tensor) -> torch.Tensor:
    total = x.sum(-1, keepdim=True)
    return torch.where(total > 0, x / total.clamp_min(1e-12), x)
