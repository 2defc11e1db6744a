"""Ranking metrics over drawn candidate sets (the teacher's, the student's), and iLoRA / LLaRA's
generation metrics.

Metric names say they are over the candidate set (``cand20_``), so they never mix with the student's
full-catalogue metrics.
"""

from __future__ import annotations

import math

import torch

from recdistill.evaluation.llara import generation_metrics

LIKELIHOOD_KS = ((1, "hr"), (5, "hr"), (5, "ndcg"), (10, "ndcg"))


def target_ranks(scores: torch.Tensor, target_index: torch.Tensor) -> torch.Tensor:
    """0-based rank of the target among the candidates; ties count against it (pessimistic)."""
    target = scores.gather(1, target_index.view(-1, 1))
    better = (scores > target).sum(1)
    ties = (scores == target).sum(1) - 1
    return better + ties


def candidate_metrics(ranks: torch.Tensor, num_candidates: int) -> dict[str, float]:
    """HR@1, HR@5, NDCG@5, NDCG@10 over the candidates, averaged over users, and the number of users."""
    ranks = ranks.float()
    out = {}
    for k, name in LIKELIHOOD_KS:
        hit = ranks < k
        value = hit.float() if name == "hr" else torch.where(hit, 1.0 / torch.log2(ranks + 2.0), torch.zeros_like(ranks))
        out[f"cand{num_candidates}_{name}@{k}"] = float(value.mean()) if len(ranks) else math.nan
    out[f"cand{num_candidates}_users"] = float(len(ranks))  # the report states how many users it rests on
    return out


def judge_generation(texts: list[str], candidate_titles: list[list[str]], target_titles: list[str]) -> dict[str, float]:
    """iLoRA / LLaRA's reading of the answers (first line, lower-cased, exactly one candidate title
    contained; :mod:`recdistill.evaluation.llara`): ValidRatio, HR@1 over valid answers and over all."""
    m = generation_metrics(texts, candidate_titles, target_titles)
    return {"gen_valid_ratio": m["valid_ratio"], "gen_hr@1_valid": m["hr@1_valid"], "gen_hr@1": m["hr@1_all"],
            "gen_count": len(texts)}
