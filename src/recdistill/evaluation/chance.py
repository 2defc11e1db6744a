"""What a random ranking scores, so every metric table can state its chance level.

With ``C`` candidates and the target at a uniformly random rank, ``E[HR@k] = min(k, C) / C`` and
``E[NDCG@k] = (1 / C) * sum_{r < min(k, C)} 1 / log2(r + 2)``. Averaged over users, each with their own
number of candidates (the catalogue minus their history, or 1 + their sampled negatives).
"""

from __future__ import annotations

import math

import torch


def chance_hr(candidates: torch.Tensor | int, k: int) -> float:
    c = torch.as_tensor(candidates, dtype=torch.float64).clamp_min(1)
    return float((c.clamp_max(k) / c).mean())


def chance_ndcg(candidates: torch.Tensor | int, k: int) -> float:
    c = torch.as_tensor(candidates, dtype=torch.float64).clamp_min(1)
    gains = torch.tensor([1.0 / math.log2(r + 2) for r in range(k)], dtype=torch.float64).cumsum(0)
    reach = (c.clamp_max(k).long() - 1).clamp_min(0)
    return float((gains[reach] / c).mean())


def full_candidates(num_items: int, targets: torch.Tensor, seen_rows: torch.Tensor | None = None,
                    seen_cols: torch.Tensor | None = None) -> torch.Tensor:
    """``[B]`` items each user's target is ranked against in the full protocol: ids 1..num_items minus
    the user's seen items (the target itself always stays)."""
    removed = torch.zeros(len(targets), num_items + 1, dtype=torch.bool, device=targets.device)
    if seen_rows is not None and seen_rows.numel():
        removed[seen_rows, seen_cols] = True
    removed[:, 0] = True
    removed[torch.arange(len(targets), device=targets.device), targets] = False
    return (num_items + 1) - removed.sum(1)
