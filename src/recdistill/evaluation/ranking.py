"""Top-K ranking metrics for next-item prediction with one relevant item per user.

Everything is computed from the **rank** of the target: the 0-based number of candidates placed before
it. Ties count against the target (a candidate scoring exactly the target's score is placed before it),
so a model that scores everything alike gets the worst rank, not the best.

With one relevant item per user:

* ``hr@k``     hit rate: 1 if rank < k;
* ``recall@k`` the share of the relevant items in the top k, which equals ``hr@k`` here (reported too,
  because other papers and tools name it so);
* ``ndcg@k``   ``1 / log2(rank + 2)`` if rank < k (the ideal DCG is 1);
* ``mrr@k``    ``1 / (rank + 1)`` if rank < k.

Two protocols, never mixed: **full** ranks the target against the whole catalogue (already-seen items
excluded when asked), keys ``<split>/ndcg@10``; **sampled** ranks it against N random items the user has
not seen (the protocol of the SASRec paper), keys ``<split>/sampled100_ndcg@10``.
"""

from __future__ import annotations

from typing import Iterable

import torch

METRIC_NAMES = ("hr", "ndcg", "recall", "mrr")


def rank_of_targets(scores: torch.Tensor, targets: torch.Tensor, exclude_rows: torch.Tensor | None = None,
                    exclude_cols: torch.Tensor | None = None) -> torch.Tensor:
    """Full-catalogue rank of each target.

    Args:
        scores: ``[B, C]`` scores over every candidate id (``-inf`` for ids that are never candidates,
            such as the padding id 0).
        targets: ``[B]`` the target's column in ``scores``.
        exclude_rows, exclude_cols: pairs ``(row, column)`` removed from the ranking (the items each user
            has already seen). The target itself is never removed, even if it appears among them.

    Returns:
        ``[B]`` int64 ranks, 0 = the target is first.
    """
    target_scores = scores.gather(1, targets.view(-1, 1))
    if exclude_rows is not None and exclude_rows.numel():
        scores = scores.clone()
        scores[exclude_rows, exclude_cols] = float("-inf")
        scores.scatter_(1, targets.view(-1, 1), target_scores)
    # rank = (candidates scoring >= the target) - the target itself
    return (scores >= target_scores).sum(1) - 1


def sampled_rank_of_targets(scores: torch.Tensor, targets: torch.Tensor, negatives: torch.Tensor) -> torch.Tensor:
    """Rank of each target among itself and its sampled negatives.

    ``negatives[B, N]`` holds candidate ids (0 = no candidate, used when a user has fewer than N unseen
    items; it never beats the target because id 0 scores ``-inf``)."""
    target_scores = scores.gather(1, targets.view(-1, 1))
    negative_scores = scores.gather(1, negatives)
    valid = negatives > 0
    return ((negative_scores >= target_scores) & valid).sum(1)


def metrics_from_ranks(ranks: torch.Tensor, ks: Iterable[int], prefix: str = "") -> dict[str, float]:
    """Mean HR, NDCG, Recall and MRR at each k over the users whose ranks are given.

    ``prefix`` is prepended to each name, e.g. ``"val/"`` -> ``val/ndcg@10`` or ``"test/sampled100_"``.
    """
    ranks = ranks.detach().double().cpu()
    out: dict[str, float] = {}
    if ranks.numel() == 0:
        return out
    for k in ks:
        hit = (ranks < k).double()
        out[f"{prefix}hr@{k}"] = float(hit.mean())
        out[f"{prefix}ndcg@{k}"] = float((hit / torch.log2(ranks + 2.0)).mean())
        out[f"{prefix}recall@{k}"] = float(hit.mean())
        out[f"{prefix}mrr@{k}"] = float((hit / (ranks + 1.0)).mean())
    return out
