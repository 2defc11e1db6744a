"""Full-catalogue metrics per item-popularity bucket of the target, and for new items.

A user falls in the bucket of their target item, measured by that item's number of training interactions:

* ``new``: none (an item held out by ``dataset.new_items``, or one that only ever appears as a target);
* ``tail``: the least popular half of the items that have any (50 % of those items, by count);
* ``head``: the most popular 20 % of them;
* ``torso``: the rest.

Cut points are counts, found from the training data alone, and reported with the metrics
(``<split>/bucket_tail_max_count``, ``<split>/bucket_head_min_count``); ``warm`` is every user whose target
is not new. Each bucket reports NDCG@10 and HR@10, its user count and its chance level.
"""

from __future__ import annotations

import numpy as np
import torch

from recdistill.evaluation.chance import chance_ndcg
from recdistill.evaluation.ranking import metrics_from_ranks

HEAD_SHARE = 0.2
TAIL_SHARE = 0.5
BUCKETS = ("head", "torso", "tail", "new", "warm")


def cut_points(counts: np.ndarray) -> tuple[int, int]:
    """(tail_max, head_min): items with 1..tail_max interactions are tail, >= head_min head."""
    known = np.sort(np.asarray(counts[1:])[np.asarray(counts[1:]) > 0])
    if len(known) == 0:
        return 0, 1
    tail_max = int(known[max(int(np.ceil(TAIL_SHARE * len(known))) - 1, 0)])
    head_min = int(known[min(int(np.floor((1 - HEAD_SHARE) * len(known))), len(known) - 1)])
    return tail_max, max(head_min, tail_max + 1)


def bucket_masks(targets: torch.Tensor, counts: np.ndarray) -> dict[str, torch.Tensor]:
    c = torch.as_tensor(counts, dtype=torch.long)[targets.cpu().long()]
    tail_max, head_min = cut_points(counts)
    return {"head": c >= head_min, "torso": (c > tail_max) & (c < head_min), "tail": (c >= 1) & (c <= tail_max),
            "new": c == 0, "warm": c > 0}


def bucket_metrics(ranks: torch.Tensor, targets: torch.Tensor, candidates: torch.Tensor, counts: np.ndarray,
                   split: str) -> dict[str, float]:
    """NDCG@10, HR@10, users and chance per bucket; ``new`` and ``warm`` only when some target is new."""
    tail_max, head_min = cut_points(counts)
    out = {f"{split}/bucket_tail_max_count": float(tail_max), f"{split}/bucket_head_min_count": float(head_min)}
    masks = bucket_masks(targets, counts)
    has_new = bool(masks["new"].any())
    for name in BUCKETS:
        if name in ("new", "warm") and not has_new:
            continue
        mask = masks[name].to(ranks.device)
        out[f"{split}/{name}_users"] = float(mask.sum())
        if not mask.any():
            continue
        m = metrics_from_ranks(ranks[mask], [10])
        out[f"{split}/{name}_ndcg@10"] = m["ndcg@10"]
        out[f"{split}/{name}_hr@10"] = m["hr@10"]
        out[f"{split}/{name}_chance_ndcg@10"] = chance_ndcg(candidates[mask].cpu(), 10)
    return out
