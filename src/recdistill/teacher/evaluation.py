"""Ranking metrics over the candidates, and iLoRA / LLaRA's generation metrics.

Metric names say they are over the candidate set (``cand20_``), so they never mix with the student's
full-catalogue metrics.
"""

from __future__ import annotations

import math

import torch

from recdistill.protocols.llara import generation_metrics

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
    contained; :mod:`recdistill.protocols.llara`): ValidRatio, HR@1 over valid answers and over all."""
    m = generation_metrics(texts, candidate_titles, target_titles)
    return {"gen_valid_ratio": m["valid_ratio"], "gen_hr@1_valid": m["hr@1_valid"], "gen_hr@1": m["hr@1_all"],
            "gen_count": len(texts)}


@torch.no_grad()
def generate_answers(teacher, batch: dict, tokenizer, max_new_tokens: int) -> list[str]:
    """Greedy generation from the left-padded prompts (the gate set per sample for the whole call)."""
    device = teacher.embedding_layer.weight.device
    mask = batch["prompt_mask"].to(device)
    gate = teacher.expert_weights(batch["student_seq"].to(device))
    if gate is not None:
        teacher.set_gate(gate)
    embeds = teacher.embed(batch["prompt_ids"].to(device), batch["prompt_slots"].to(device))
    out = teacher.llm.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=max_new_tokens,
                               do_sample=False, pad_token_id=tokenizer.pad_token_id,
                               eos_token_id=tokenizer.eos_token_id)
    # With inputs_embeds, generate returns only the new tokens.
    return tokenizer.batch_decode(out, skip_special_tokens=True)
