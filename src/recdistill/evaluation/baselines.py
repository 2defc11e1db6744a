"""The obvious alternatives a gain must beat, on exactly the users and protocol the models are scored on
(full catalogue, seen items excluded, the popularity buckets and new items of :mod:`recdistill.evaluation.buckets`):

* ``popularity``: every item scored by its number of training interactions (a new item has none);
* ``content``: the mean of the history's item embeddings (LLM embeddings of the items' text, centred, unit length)
  against every item's, by cosine: knows every item from its text, nothing of collaborative signal;
* chance: reported with every bucket (``*_chance_ndcg@10``).

Deterministic: no seed changes them, so a paired difference against a model varies with the model only.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from recdistill.evaluation import metrics_from_ranks, rank_of_targets
from recdistill.evaluation.buckets import bucket_metrics
from recdistill.evaluation.chance import full_candidates

BASELINES = ("popularity", "content")


def _histories(data, split: str) -> list[np.ndarray]:
    return [data.history(split, int(u)) for u in data.users()]


def baseline_scores(name: str, data, split: str, item_embeddings: torch.Tensor | None = None) -> torch.Tensor:
    """``[users, N + 1]`` scores (column 0 is padding, ``-inf``)."""
    users = len(data.users())
    if name == "popularity":
        counts = torch.as_tensor(data.item_train_counts, dtype=torch.float32)
        scores = counts.unsqueeze(0).expand(users, -1).clone()
    elif name == "content":
        if item_embeddings is None:
            raise ValueError("the content baseline needs item embeddings (recdistill embed-items)")
        # centred first: raw LLM states share a large common direction that swamps the cosine
        raw = item_embeddings.float()
        items = F.normalize(raw - raw[1:].mean(0, keepdim=True), dim=1)
        items[0] = 0.0
        profile = torch.stack([items[torch.as_tensor(h, dtype=torch.long)].mean(0) if len(h) else
                               torch.zeros(items.shape[1]) for h in _histories(data, split)])
        scores = F.normalize(profile, dim=1) @ items.t()
    else:
        raise ValueError(f"unknown baseline {name!r}; choose one of {BASELINES}")
    scores[:, 0] = float("-inf")
    return scores


def baseline_metrics(name: str, data, split: str, item_embeddings: torch.Tensor | None = None,
                     ks=(10, 20)) -> dict[str, float]:
    """The baseline's ``<split>/...`` metrics, overall and per bucket, as a model's ``metrics.json`` holds them."""
    scores = baseline_scores(name, data, split, item_embeddings)
    targets = torch.as_tensor(data.val_target if split == "val" else data.test_target, dtype=torch.long)[1:]
    rows, cols = [], []
    for i, h in enumerate(_histories(data, split)):
        rows.append(np.full(len(h), i))
        cols.append(np.asarray(h, dtype=np.int64))
    seen_rows = torch.as_tensor(np.concatenate(rows), dtype=torch.long)
    seen_cols = torch.as_tensor(np.concatenate(cols), dtype=torch.long)
    ranks = rank_of_targets(scores, targets, seen_rows, seen_cols)
    candidates = full_candidates(data.num_items, targets, seen_rows, seen_cols)
    out = metrics_from_ranks(ranks, ks, prefix=f"{split}/")
    out[f"{split}/users"] = float(len(ranks))
    out.update(bucket_metrics(ranks, targets, candidates, data.item_train_counts, split))
    return out
