"""Candidate scoring by likelihood: log P(answer | prompt) for every candidate (the answer: title + EOS, or
the encoder's published form, `PromptEncoder.answers`).

The hot path of evaluation and export. The prompts of a batch (left-padded so they end together) run
once with ``use_cache=True``; their key/value cache is then reused for every candidate, candidates of
many prompts going through together in chunks of ``chunk_size`` rows. Each chunk gets its own cache
built from the prompt's keys and values (``index_select`` by prompt row), because a transformers cache
grows in place when a forward appends to it.

:func:`score_full` runs every candidate with its whole prompt instead; a test checks the two agree and
``benchmarks/teacher/teacher_scoring.py`` measures the difference.
"""

from __future__ import annotations

import torch
from transformers import DynamicCache

from recdistill.teacher.model import ILoRATeacher

NORMS = ("sum", "mean")


def _continuations(answers: list[list[int]], candidates: torch.Tensor, pad_id: int):
    """Right-padded continuation ids ``[R, Lc]`` (each candidate's answer ids, ``PromptEncoder.answers``) and
    their mask, R = B * C rows."""
    rows = [answers[int(c)] for c in candidates.reshape(-1).tolist()]
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask


def _reduce(token_logp: torch.Tensor, mask: torch.Tensor, norm: str) -> torch.Tensor:
    total = (token_logp * mask).sum(-1)
    return total / mask.sum(-1).clamp(min=1) if norm == "mean" else total


def _cache_rows(cache: DynamicCache, rows: torch.Tensor, config) -> DynamicCache:
    layers = [(layer.keys.index_select(0, rows), layer.values.index_select(0, rows)) for layer in cache.layers]
    return DynamicCache(ddp_cache_data=layers, config=config)


@torch.no_grad()
def score_candidates(teacher: ILoRATeacher, batch: dict, answers: list[list[int]], pad_id: int,
                     chunk_size: int = 64, norm: str = "sum") -> torch.Tensor:
    """Scores ``[B, C]`` for ``batch["candidates"]`` (``answers[i]``: item i's continuation ids) given ``batch["prompt_ids"/"prompt_mask"/
    "prompt_slots"/"student_seq"]`` (prompts left-padded)."""
    device = teacher.embedding_layer.weight.device
    prompt_ids = batch["prompt_ids"].to(device)
    prompt_mask = batch["prompt_mask"].to(device)
    candidates = batch["candidates"]
    bsz, num_c = candidates.shape
    gate = teacher.expert_weights(batch["student_seq"].to(device))
    positions = (prompt_mask.cumsum(-1) - 1).clamp(min=0)
    out = teacher(prompt_ids, prompt_mask, batch["prompt_slots"].to(device), None, position_ids=positions,
                  use_cache=True, gate_weights=gate, logits_to_keep=1)
    first_logp = torch.log_softmax(out.logits[:, -1].float(), dim=-1)        # [B, V]
    cache = out.past_key_values
    prompt_len = prompt_mask.sum(-1)                                          # [B]
    cont, cont_mask = _continuations(answers, candidates, pad_id)
    cont, cont_mask = cont.to(device), cont_mask.to(device)
    owner = torch.arange(bsz, device=device).repeat_interleave(num_c)         # prompt row of each candidate
    scores = torch.empty(bsz * num_c, device=device)
    for start in range(0, bsz * num_c, chunk_size):
        rows = torch.arange(start, min(start + chunk_size, bsz * num_c), device=device)
        own = owner[rows]
        ids, mask = cont[rows], cont_mask[rows]
        width = int(mask.sum(-1).max())
        ids, mask = ids[:, :width], mask[:, :width]
        logp0 = first_logp[own].gather(1, ids[:, :1])                          # first title token
        if width > 1:
            feed, feed_mask = ids[:, :-1], mask[:, :-1]
            attn = torch.cat([prompt_mask[own], feed_mask], dim=1)
            pos = prompt_len[own, None] + torch.arange(width - 1, device=device)[None]
            gw = gate[own] if gate is not None else None
            if gw is not None:
                teacher.set_gate(gw)
            o = teacher.llm(input_ids=feed, attention_mask=attn, position_ids=pos,
                            past_key_values=_cache_rows(cache, own, teacher.base_config), use_cache=True)
            rest = torch.log_softmax(o.logits.float(), dim=-1).gather(2, ids[:, 1:, None]).squeeze(-1)
            token_logp = torch.cat([logp0, rest], dim=1)
        else:
            token_logp = logp0
        scores[rows] = _reduce(token_logp, mask.float(), norm)
    return scores.view(bsz, num_c)


@torch.no_grad()
def score_full(teacher: ILoRATeacher, batch: dict, answers: list[list[int]], pad_id: int,
               chunk_size: int = 64, norm: str = "sum") -> torch.Tensor:
    """The reference: every candidate runs with its whole prompt (no cache reuse). Rows are left-padded
    so every continuation ends at the last column, and logits are computed only for the last
    ``max continuation`` columns (as fair to this path as ``logits_to_keep=1`` is to the cached one)."""
    device = teacher.embedding_layer.weight.device
    candidates = batch["candidates"]
    bsz, num_c = candidates.shape
    gate = teacher.expert_weights(batch["student_seq"].to(device))
    cont, cont_mask = _continuations(answers, candidates, pad_id)
    keep = [batch["prompt_mask"][b] > 0 for b in range(bsz)]
    prompts = [(batch["prompt_ids"][b][keep[b]], batch["prompt_slots"][b][keep[b]]) for b in range(bsz)]
    scores = torch.empty(bsz * num_c, device=device)
    for start in range(0, bsz * num_c, chunk_size):
        rows = list(range(start, min(start + chunk_size, bsz * num_c)))
        seqs, slots, lens = [], [], []
        for r in rows:
            p_ids, p_slots = prompts[r // num_c]
            c = cont[r][cont_mask[r] > 0]
            seqs.append(torch.cat([p_ids, c])); slots.append(torch.cat([p_slots, torch.zeros_like(c)]))
            lens.append(len(c))
        width = max(len(x) for x in seqs)
        ids = pad_left_tensors(seqs, width, pad_id)
        sl = pad_left_tensors(slots, width, 0)
        mask = pad_left_tensors([torch.ones_like(x) for x in seqs], width, 0)
        own = torch.tensor([r // num_c for r in rows], device=device)
        gw = gate[own] if gate is not None else None
        mask = mask.to(device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        tail = max(lens)
        out = teacher(ids.to(device), mask, sl.to(device), None, position_ids=positions, gate_weights=gw,
                      logits_to_keep=tail + 1)
        logp = torch.log_softmax(out.logits[:, :-1].float(), dim=-1)      # predicts the last `tail` columns
        targets = ids[:, width - tail:].to(device)
        tok = logp.gather(2, targets[..., None]).squeeze(-1)               # [R, tail]
        tok_mask = torch.zeros_like(tok)
        for i, n in enumerate(lens):
            tok_mask[i, tail - n:] = 1
        scores[torch.tensor(rows, device=device)] = _reduce(tok, tok_mask, norm)
    return scores.view(bsz, num_c)


def score(teacher: ILoRATeacher, batch: dict, answers: list[list[int]], pad_id: int,
          chunk_size: int = 64, norm: str = "sum", kv_cache: bool = True) -> torch.Tensor:
    """Scores for evaluation and export: ``kv_cache=True`` (``teacher.eval.kv_cache``, the default) runs
    each prompt once and reuses its KV cache for every candidate; ``False`` runs every candidate with its
    whole prompt, the slow reference kept as a knob so sweeps can measure what the cache saves."""
    fn = score_candidates if kv_cache else score_full
    return fn(teacher, batch, answers, pad_id, chunk_size=chunk_size, norm=norm)


def pad_left_tensors(seqs: list[torch.Tensor], width: int, value: int) -> torch.Tensor:
    out = torch.full((len(seqs), width), value, dtype=torch.long)
    for i, x in enumerate(seqs):
        out[i, width - len(x):] = x
    return out
