"""The DROS term (distributionally robust optimisation for sequential recommendation, Yang et al., SIGIR
2023) as DLLM2Rec's released code adds it, to the base loss and to every teacher item of the
ranking-distillation term (``distill.dros``; off by default, on in the ``dllm2rec`` profile).

For a position with full-catalogue logits ``s_1 .. s_N``, a target ``t`` and item propensities ``p_j``:

    dros(t) = log( sum_j exp(p_j s_j^2 / beta) - exp(p_t s_t^2 / beta) + exp(p_t (s_t - 1)^2 / beta) )

i.e. a log-sum-exp over the catalogue in which the target's term ``p_t s_t^2`` is replaced by
``p_t (s_t - 1)^2``. The propensity of an item is ``((count + 1) / sum(count + 1)) ** 0.05`` with
``count`` its number of occurrences as a training target. The loss is ``alpha * mean_p dros(t_p)`` in
the base loss and ``alpha * mean_p sum_k w_pk dros(t_pk)`` in the ranking term (``w`` the ranking
weights), as in their code. We compute the log-sum-exp with the maximum factored out (their code adds
1e-24 inside the log and exponentiates directly, which overflows for large logits); otherwise the same.

In the ranking term their code multiplies a ``[B, 1]`` weight column by the ``[B]`` DROS values, which
broadcasts to ``[B, B]``, so its mean is ``mean_b w_bk * mean_b dros_bk``: weights and losses are averaged
separately and summed over k. ``distill.dros.ranking_form=published`` computes that
(:func:`ranking_dros`); ``per_sample`` (ours) weights each position's own value, ``mean_p sum_k w_pk dros_pk``.

It needs every position's logits over the whole catalogue, ``[P, N]`` at once, so it cannot run inside
the chunked fused cross-entropy: with DROS on the distillation step takes the plain path.
"""

from __future__ import annotations

import torch

PROPENSITY_POWER = 0.05  # DLLM2Rec's calcu_propensity_score
RANKING_FORMS = ("per_sample", "published")


def propensity(target_counts: torch.Tensor) -> torch.Tensor:
    """``[N]`` counts of each item (columns 1..N) as a training target -> ``[N]`` propensities."""
    smoothed = target_counts.double() + 1.0
    return (smoothed / smoothed.sum()).pow(PROPENSITY_POWER).float()


def target_counts(targets: torch.Tensor, num_items: int) -> torch.Tensor:
    """Occurrences of items ``1..num_items`` among ``targets`` (any shape; 0 = padding, ignored) -> ``[N]``."""
    flat = targets.reshape(-1).long()
    return torch.bincount(flat[flat > 0] - 1, minlength=num_items)[:num_items]


def dros_loss(logits: torch.Tensor, target_columns: torch.Tensor, ps: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """``dros`` per (row, target): ``logits[P, N]``, ``target_columns[P, K]`` (0-based columns) -> ``[P, K]``."""
    logits = logits.float()
    exponent = ps * logits.square() / beta                                   # [P, N]
    target_scores = logits.gather(1, target_columns)                         # [P, K]
    replaced = ps[target_columns] * (target_scores - 1.0).square() / beta    # [P, K]
    removed = exponent.gather(1, target_columns)                             # [P, K]
    top = torch.maximum(exponent.max(1, keepdim=True).values, replaced.max(1, keepdim=True).values).detach()
    total = torch.exp(exponent - top).sum(1, keepdim=True)                   # [P, 1]
    inner = (total - torch.exp(removed - top)).clamp_min(0.0) + torch.exp(replaced - top)
    return torch.log(inner) + top


def ranking_dros(weights: torch.Tensor, per_item: torch.Tensor, valid: torch.Tensor, form: str = "per_sample") -> torch.Tensor:
    """The DROS part of the ranking term, before ``alpha``: ``weights``, ``per_item`` (:func:`dros_loss` of
    the teacher items) and ``valid`` are ``[P, K]``.

    ``per_sample``: ``mean_p sum_k w_pk dros_pk``. ``published`` (DLLM2Rec's broadcast):
    ``sum_k (mean_p w_pk) (mean_p dros_pk)``, the DROS mean taken over the positions whose list has a k-th
    item (all of them in theirs, where every list holds K items).
    """
    if form == "per_sample":
        return (weights * per_item).sum(-1).mean()
    counts = valid.sum(0).clamp_min(1)
    mean_dros = (per_item * valid).sum(0) / counts
    return (weights.mean(0) * mean_dros).sum()
